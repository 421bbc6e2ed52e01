"""Figures are written as real PNG files, and a missing part skips its figure instead of failing."""

import numpy as np
import pandas as pd

from sweep.laws import ChinchillaParams, allocate, fit_report, predict_loss, prepare_table
from sweep.laws.plots import write_plots

TRUTH = ChinchillaParams(E=1.82, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def isoflop_table():
    rows = []
    for flops in (1e16, 1e17, 1e18):
        params_opt, _ = allocate(flops, TRUTH)
        for params in params_opt * np.geomspace(0.25, 4, 5):
            tokens = flops / (6 * params)
            rows.append({"params": params, "tokens": tokens, "loss": float(predict_loss(params, tokens, TRUTH))})
    return prepare_table(pd.DataFrame(rows))


def test_every_figure_is_a_non_empty_png(tmp_path):
    report = fit_report(isoflop_table(), bootstrap=5, holdout=1)
    written = write_plots(report, tmp_path / "plots")
    assert [path.name for path in written] == [
        "loss_vs_params.png",
        "loss_vs_tokens.png",
        "loss_vs_flops.png",
        "isoflop.png",
        "allocation.png",
        "predicted_vs_actual.png",
    ]
    for path in written:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert path.stat().st_size > 10_000  # axes, points and curves, not a blank canvas


def test_missing_parts_are_skipped(tmp_path):
    # A 3 x 2 grid: no IsoFLOP levels, no L(D), no cost columns, no bootstrap.
    rows = [
        {"params": params, "tokens": tokens, "loss": float(predict_loss(params, tokens, TRUTH))}
        for params in (1e6, 3e6, 1e7)
        for tokens in (1e8, 1e9)
    ]
    report = fit_report(prepare_table(pd.DataFrame(rows)), bootstrap=0)
    assert report.isoflop is None and "tokens" not in report.power_laws
    names = [path.name for path in write_plots(report, tmp_path)]
    assert "isoflop.png" not in names
    assert "loss_vs_tokens.png" in names and "allocation.png" in names
