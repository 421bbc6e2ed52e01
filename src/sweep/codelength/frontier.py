"""A language model as a lossless compressor: the length of the code for its D training tokens.

Two codes, in bits, for the D tokens a run trained on (loss in nats per token). Byte tokens are
assumed throughout, so a token is a byte and bits per byte = bits / D; a frame whose bpb column says
otherwise (a BPE tokenizer) is refused rather than divided by the wrong count.

- Two-part code (Delétang et al. 2023, "Language Modeling Is Compression", arXiv 2309.10668, their
  adjusted compression rate): send the model, then the data arithmetic-coded by it,
      total_bits = D·L / ln 2 + params_total × bits_per_param.
  The final validation loss L stands in for the final model's code length per training token, which
  the runs do not measure; with each training token read once the two are close. The model is
  counted whole (embeddings too) at `bits_per_param`, 16 by default (bf16 weights); the arithmetic
  coder's at most 2 bits of overhead are left out. Small models code the data badly, large ones cost
  more to send, so at each D one N is shortest, and it grows with D.
- Prequential code (Blier & Ollivier 2018, "The Description Length of Deep Learning Models", arXiv
  1802.07044): each batch is coded by the model trained on the batches before it, then trained on,
  so the decoder retrains the same model as it decodes and no model is sent. Runs trained in epoch
  order carry it as `prequential_bits`; the architecture, seed and optimizer settings the decoder
  needs are a few bytes and left out.

Runs that share (N, D) (seeds, learning rates) are each a code anyone could send, so each (N, D)
keeps its shortest: the best run, not a mean over seeds (no code has a mean's length). Telling the
decoder which of k runs costs log2(k) bits, left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from sweep.errors import InputError
from sweep.laws.forms import quiet_floats

LN2 = math.log(2)
BF16_BITS = 16
RUN_COLUMNS = ("params", "params_total", "tokens", "loss")
SIZE = ["params", "params_total", "tokens"]  # what makes two runs the same (N, D) code
PREQUENTIAL = "prequential_bits"


def compression_table(lm_bpb: float, lm_label: str, compressor_bpb: Mapping[str, float | None]) -> pd.DataFrame:
    """Rows (code, bpb, note) of "bits per byte on the same training bytes", shortest first: each
    compressor's (None: not installed, listed last) and the language model's prequential code. The
    caller gives the compressors the bytes the run whose code `lm_bpb` is (the best run's) trained on."""
    rows = [{"code": lm_label, "bpb": lm_bpb, "note": "prequential: no model to send, the decoder retrains it"}]
    for name, bpb in compressor_bpb.items():
        missing = bpb is None
        rows.append({"code": name, "bpb": np.nan if missing else bpb, "note": "not installed" if missing else ""})
    return pd.DataFrame(rows).sort_values("bpb", kind="stable", na_position="last").reset_index(drop=True)


def description_lengths(frame: pd.DataFrame, bits_per_param: float = BF16_BITS) -> pd.DataFrame:
    """`frame` with the two-part code of each run: data_bits = D·L / ln 2, model_bits = params_total ×
    bits_per_param, total_bits, total_bpb = total_bits / D (a run without a loss gets NaN)."""
    missing = [column for column in RUN_COLUMNS if column not in frame.columns]
    if missing:
        raise InputError(f"description lengths need the columns {', '.join(missing)}")
    if not bits_per_param >= 0:
        raise InputError(f"bits per parameter must be >= 0, not {bits_per_param}")
    _require_byte_tokens(frame)
    runs = frame.copy()
    runs["data_bits"] = runs["tokens"] * runs["loss"] / LN2
    runs["model_bits"] = runs["params_total"] * float(bits_per_param)
    runs["total_bits"] = runs["data_bits"] + runs["model_bits"]
    runs["total_bpb"] = runs["total_bits"] / runs["tokens"]
    return runs


def _require_byte_tokens(frame: pd.DataFrame) -> None:
    """With byte tokens bpb = loss / ln 2 (`data.bits_per_byte`); anything else has tokens of several bytes."""
    if "bpb" not in frame.columns:
        return
    measured = frame[np.isfinite(frame["loss"])]  # a bpb of None (tokens of unknown bytes) fails too
    if not np.allclose(measured["bpb"], measured["loss"] / LN2, rtol=1e-6):
        raise InputError("description lengths per byte need byte tokens, and these runs' bpb is not loss / ln 2")


def best_codes(frame: pd.DataFrame, bits_per_param: float = BF16_BITS) -> pd.DataFrame:
    """One row per (N, D), sorted by D then N: the shortest two-part code of its runs (loss,
    data_bits, model_bits, total_bits, total_bpb), n_runs, and beside it the shortest prequential
    code, prequential_bits and prequential_bpb (NaN where no run has one)."""
    runs = description_lengths(frame, bits_per_param)
    runs = runs[np.isfinite(runs["total_bits"])].reset_index(drop=True)
    if runs.empty:
        raise InputError("no run has a loss: no description length to compute")
    groups = runs.groupby(SIZE)
    two_part = [*SIZE, "loss", "data_bits", "model_bits", "total_bits", "total_bpb"]
    codes = runs.loc[groups["total_bits"].idxmin(), two_part].set_index(SIZE)
    codes["n_runs"] = groups.size()
    codes["prequential_bits"] = groups[PREQUENTIAL].min() if PREQUENTIAL in runs.columns else np.nan
    codes["prequential_bpb"] = codes["prequential_bits"] / codes.index.get_level_values("tokens")
    return codes.reset_index().sort_values(["tokens", "params"], kind="stable").reset_index(drop=True)


def frontier(frame: pd.DataFrame, bits_per_param: float = BF16_BITS) -> pd.DataFrame:
    """For each D, the (N, D) code of `best_codes` with the least total_bits, with runner_up_params
    (the next shortest N) and margin_bits (its total minus the winner's; NaN with one N at that D)."""
    # Sorted by N within each D first (best_codes), so a tie goes to the smaller N.
    ranked = best_codes(frame, bits_per_param).sort_values(["tokens", "total_bits"], kind="stable")
    by_tokens = ranked.groupby("tokens")
    best, runner_up = by_tokens.nth(0).set_index("tokens"), by_tokens.nth(1).set_index("tokens")
    best["runner_up_params"] = runner_up["params"]
    best["margin_bits"] = runner_up["total_bits"] - best["total_bits"]
    return best.reset_index()


@quiet_floats
def plot_frontier(frame: pd.DataFrame, path: str | Path, bits_per_param: float = BF16_BITS) -> Path:
    """Total description length per byte against N, one line per D (dashed: the prequential code,
    where runs have it), each D's shortest N starred and the frontier drawn through the stars
    (Delétang et al. 2023, Fig. 2). Log axes: the model's cost spans decades across D."""
    # matplotlib loads here, not with the law math: it is slow to import (see sweep.laws.__init__).
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    from sweep.laws.plots import LABELS

    codes, best = best_codes(frame, bits_per_param), frontier(frame, bits_per_param)
    figure = Figure(figsize=(7, 5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colours = LogNorm(vmin=codes["tokens"].min(), vmax=codes["tokens"].max() * 1.0001)
    for tokens, at_tokens in codes.groupby("tokens"):
        colour = colormaps["viridis"](colours(tokens))  # dark to light as D grows, as in plots.py
        label = f"D = {tokens:.3g}"
        axes.plot(at_tokens["params"], at_tokens["total_bpb"], "o-", color=colour, markersize=4, label=label)
        prequential = at_tokens[np.isfinite(at_tokens["prequential_bpb"])]
        if len(prequential):
            axes.plot(prequential["params"], prequential["prequential_bpb"], "--", color=colour, linewidth=1)
    axes.plot(best["params"], best["total_bpb"], "k-", linewidth=1.2, label="frontier: shortest N per D")
    axes.scatter(best["params"], best["total_bpb"], marker="*", s=140, color="gold", edgecolors="black", zorder=3)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel(f"{LABELS['params']} (non-embedding; the model's bits count all of them)")
    axes.set_ylabel(f"bits per byte: data + model at {bits_per_param:g} bits/param")
    axes.grid(True, which="both", alpha=0.25)
    axes.legend(fontsize=7)
    axes.set_title("Two-part description length (dashed: prequential)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
