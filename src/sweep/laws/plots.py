"""Figures of a `FitReport`, written as PNG files with matplotlib's Agg renderer.

Figures are built on `matplotlib.figure.Figure` directly, never pyplot, so nothing touches global
backend state or opens a window. A figure whose data is missing (no IsoFLOP fit, say) is skipped.
Each compression variant with δ > 0 somewhere gets `degradation_<variant>.png`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from sweep.columns import DELTA_PREFIX, describe
from sweep.errors import cut
from sweep.laws.allocation import EmpiricalAllocation, compute_levels
from sweep.laws.degradation import FORMULA, degradation
from sweep.laws.fitreport import FitReport
from sweep.laws.forms.equations import allocate, allocation_of, power_law, predict_loss, quiet_floats
from sweep.laws.forms.powerlaw import points_for
from sweep.laws.predict import form_of

MAX_CURVES = 6  # fitted curves per figure; more distinct D (or N) values are thinned to this many
LABELS = {"params": "parameters N", "tokens": "tokens D", "flops": "compute C (FLOPs)"}
SYMBOLS = {"params": "N", "tokens": "D", "flops": "C"}


@quiet_floats
def write_plots(report: FitReport, out_dir: str | Path) -> list[Path]:
    """Write every figure the report has data for into `out_dir`; return the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Callable[[Figure, FitReport], bool]] = {
        "loss_vs_params": lambda figure, report: _loss_vs_size(figure, report, "params", "tokens"),
        "loss_vs_tokens": lambda figure, report: _loss_vs_size(figure, report, "tokens", "params"),
        "loss_vs_flops": _loss_vs_flops,
        "isoflop": _isoflop,
        "allocation": _allocation,
        "predicted_vs_actual": _predicted_vs_actual,
    }
    for variant in report.degradation.variants:
        figures[f"degradation_{variant}"] = lambda figure, report, variant=variant: _degradation(
            figure, report, variant
        )
    written = []
    for name, draw in figures.items():
        figure = Figure(figsize=(7, 5), layout="constrained")
        FigureCanvasAgg(figure)
        if draw(figure, report):
            path = out_dir / f"{name}.png"
            figure.savefig(path, dpi=110)
            written.append(path)
    return written


def _thinned(values: np.ndarray) -> np.ndarray:
    """At most MAX_CURVES of the distinct values, spread evenly over their range."""
    distinct = np.unique(values)
    if len(distinct) <= MAX_CURVES:
        return distinct
    return distinct[np.round(np.linspace(0, len(distinct) - 1, MAX_CURVES)).astype(int)]


def _span(values: np.ndarray, widen: float = 1.5, count: int = 100) -> np.ndarray:
    return np.geomspace(values.min() / widen, values.max() * widen, count)


def _log_axes(axes, x_label: str) -> None:
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel(x_label)
    axes.set_ylabel("loss (nats/token)")
    axes.grid(True, which="both", alpha=0.25)


def _loss_vs_size(figure: Figure, report: FitReport, size: str, other: str) -> bool:
    """Loss against N (or D), coloured by the other variable, with the Chinchilla curve at each of a
    few values of the other, and L(N) (or L(D)) fit on the largest-D (largest-N) runs."""
    points, axes = report.points, figure.add_subplot()
    colours = LogNorm(vmin=points[other].min(), vmax=points[other].max() * 1.0001)
    scatter = axes.scatter(points[size], points["loss"], c=points[other], norm=colours, cmap="viridis", s=22)
    figure.colorbar(scatter, ax=axes, label=LABELS[other])
    grid = _span(points[size].to_numpy())
    for value in _thinned(points[other].to_numpy()):
        at = {size: grid, other: value}
        curve = predict_loss(at["params"], at["tokens"], report.chinchilla.params)
        axes.plot(grid, curve, color=scatter.cmap(colours(value)), linewidth=1)
    if size in report.power_laws:
        law = report.power_laws[size].saturating
        symbol = SYMBOLS[size]
        label = f"L({symbol}) = {law.E:.3g} + {law.A:.3g}·{symbol}^-{law.alpha:.3g}"
        axes.plot(grid, power_law(grid, law), "k--", linewidth=1.2, label=label)
        axes.legend(loc="upper right", fontsize=8)
    _mark_held_out(axes, report, size)
    _log_axes(axes, LABELS[size])
    axes.set_title(f"Loss vs {LABELS[size]}; lines: Chinchilla fit at fixed {other}")
    return True


def _mark_held_out(axes, report: FitReport, x_column: str) -> None:
    if len(report.held_out):
        held = report.held_out
        axes.scatter(
            held[x_column], held["loss"], marker="s", facecolors="none", edgecolors="red", s=40, label="held out"
        )
        axes.legend(loc="upper right", fontsize=8)


def _loss_vs_flops(figure: Figure, report: FitReport) -> bool:
    points, axes = report.points, figure.add_subplot()
    axes.scatter(points["flops"], points["loss"], color="0.65", s=18, label="runs")
    frontier = points_for(points, "flops")
    axes.plot(frontier["flops"], frontier["loss"], "o-", color="C0", markersize=5, linewidth=0.8, label="frontier")
    grid = _span(points["flops"].to_numpy(), widen=3.0)
    if "flops" in report.power_laws:
        law = report.power_laws["flops"].saturating
        axes.plot(grid, power_law(grid, law), "k--", label=f"L(C) = {law.E:.3g} + {law.A:.3g}·C^-{law.alpha:.3g}")
    optimal_loss = predict_loss(*allocate(grid, report.chinchilla.params), report.chinchilla.params)
    axes.plot(grid, optimal_loss, color="C3", linewidth=1, label="Chinchilla at N_opt(C), D_opt(C)")
    axes.legend(loc="upper right", fontsize=8)
    _mark_held_out(axes, report, "flops")
    _log_axes(axes, LABELS["flops"])
    axes.set_title("Loss vs compute")
    return True


def _isoflop(figure: Figure, report: FitReport) -> bool:
    """Each compute level's runs and fitted parabola in ln N, with its minimum (Hoffmann et al. Fig. 3)."""
    if report.isoflop is None:
        return False
    points, axes = report.points, figure.add_subplot()
    levels = compute_levels(points["flops"].to_numpy(), report.compute_tolerance)
    level_flops = points.groupby(levels)["flops"].apply(lambda flops: np.exp(np.log(flops).mean()))
    for index, optimum in enumerate(report.isoflop.optima):
        colour = f"C{index % 10}"
        level = int(np.argmin(np.abs(np.log(level_flops.to_numpy() / optimum.flops))))
        rows = points[levels == level_flops.index[level]]
        axes.scatter(rows["params"], rows["loss"], color=colour, s=20, label=f"C = {optimum.flops:.2g}")
        curvature, slope, intercept = optimum.parabola
        grid = _span(rows["params"].to_numpy(), widen=1.3)
        axes.plot(grid, curvature * np.log(grid) ** 2 + slope * np.log(grid) + intercept, color=colour, linewidth=1)
        axes.scatter([optimum.params], [optimum.loss], color=colour, marker="*", s=140, edgecolors="black", zorder=3)
    axes.set_xscale("log")
    axes.set_xlabel(LABELS["params"])
    axes.set_ylabel("loss (nats/token)")
    axes.grid(True, which="both", alpha=0.25)
    axes.legend(fontsize=7, ncols=2)
    axes.set_title("IsoFLOP profiles (Approach 2); stars: parabola minima")
    return True


def _allocation(figure: Figure, report: FitReport) -> bool:
    """N_opt(C) and D_opt(C): the Chinchilla allocation with its 95% bootstrap band, and the
    measured optima of Approaches 1 and 2 with their power-law fits."""
    if not np.isfinite(allocation_of(report.chinchilla.params).G):
        return False  # the fitted law has no optimum (an exponent at 0)
    flops = report.points["flops"]
    grid = np.geomspace(flops.min(), flops.max() * 100.0, 80)  # the data and two decades beyond
    optimum = allocate(grid, report.chinchilla.params)
    # Refits with no optimum (an exponent at 0) or an overflowing G have no allocation to draw.
    usable = [sample for sample in report.chinchilla_samples if np.isfinite(allocation_of(sample).G)]
    sampled = [allocate(grid, sample) for sample in usable]  # each (N_opt, D_opt), (80,)
    empirical = {"Approach 1": report.approach1, "IsoFLOP": report.isoflop}
    for column, (name, label) in enumerate((("params", "N_opt"), ("tokens", "D_opt"))):
        axes = figure.add_subplot(1, 2, column + 1)
        axes.plot(grid, optimum[column], color="C3", label="Chinchilla fit (eq. 4)")
        if sampled:
            band = np.percentile(np.array([s[column] for s in sampled]), [2.5, 97.5], axis=0)  # (2, 80)
            axes.fill_between(grid, band[0], band[1], color="C3", alpha=0.2, label="95% bootstrap")
        for index, (method, allocation) in enumerate(empirical.items()):
            if allocation is not None:
                _empirical_allocation(axes, method, allocation, name, grid, f"C{index}")
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel(LABELS["flops"])
        axes.set_ylabel(label)
        axes.grid(True, which="both", alpha=0.25)
        axes.legend(fontsize=7)
    figure.suptitle("Compute-optimal allocation")
    return True


def _empirical_allocation(axes, method: str, allocation: EmpiricalAllocation, name: str, grid, colour) -> None:
    flops = [optimum.flops for optimum in allocation.optima]
    measured = [getattr(optimum, name) for optimum in allocation.optima]
    exponent, coefficient = (
        (allocation.a, allocation.params_coefficient)
        if name == "params"
        else (allocation.b, allocation.tokens_coefficient)
    )
    axes.scatter(flops, measured, color=colour, s=24, zorder=3)
    axes.plot(
        grid, coefficient * grid**exponent, "--", color=colour, linewidth=1, label=f"{method}: ∝ C^{exponent:.3f}"
    )


def _predicted_vs_actual(figure: Figure, report: FitReport) -> bool:
    """Measured loss against the chosen law's prediction (the one held-out points are predicted with)."""
    axes = figure.add_subplot()
    form = form_of(report.laws)
    for rows, style in (
        (report.points, {"color": "C0", "label": "fit"}),
        (report.held_out, {"color": "red", "marker": "s", "label": "held out"}),
    ):
        if len(rows):
            axes.scatter(rows["loss"], form.loss(rows["params"], rows["tokens"], report.laws.law), s=22, **style)
    every = np.concatenate([report.points["loss"], report.held_out["loss"]])
    limits = [every.min() * 0.98, every.max() * 1.02]
    axes.plot(limits, limits, "k:", linewidth=1)
    axes.set_xlabel("measured loss")
    axes.set_ylabel(f"prediction of the {form.name} law")
    axes.legend(fontsize=8)
    axes.set_title("Predicted vs measured loss")
    return True


def _degradation(figure: Figure, report: FitReport, variant: str) -> bool:
    """δ against D at each N (left) and against N at each D (right), on log axes, with the fitted law
    δ = C·D^γ_D/N^γ_N as lines at those N (D). Points with δ <= 0 have no place on a log axis."""
    points = report.points
    delta = points[DELTA_PREFIX + variant].to_numpy(dtype=float)
    shown = points[delta > 0]
    if shown.empty:
        return False
    fit = report.degradation.fits.get(variant)
    for column, (size, other) in enumerate((("tokens", "params"), ("params", "tokens"))):
        axes = figure.add_subplot(1, 2, column + 1)
        colours = LogNorm(vmin=points[other].min(), vmax=points[other].max() * 1.0001)
        scatter = axes.scatter(
            shown[size], shown[DELTA_PREFIX + variant], c=shown[other], norm=colours, cmap="viridis", s=22
        )
        figure.colorbar(scatter, ax=axes, label=LABELS[other])
        if fit is not None:
            grid = _span(points[size].to_numpy())
            for value in _thinned(points[other].to_numpy()):
                at = {size: grid, other: value}
                axes.plot(
                    grid,
                    degradation(at["params"], at["tokens"], fit.law),
                    color=scatter.cmap(colours(value)),
                    linewidth=1,
                )
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel(LABELS[size])
        axes.set_ylabel("δ (nats/token)")
        axes.grid(True, which="both", alpha=0.25)
        axes.set_title(f"δ vs {SYMBOLS[size]} at fixed {SYMBOLS[other]}", fontsize=9)
    hidden = len(points) - len(shown)
    law = (
        f"{FORMULA}: C = {fit.law.C:.3g}, γ_D = {fit.law.gamma_D:.3g}, γ_N = {fit.law.gamma_N:.3g}; {fit.trend()}"
        if fit is not None
        else "no law fit: " + cut(report.degradation.why_not[variant], 120)
    )
    not_shown = f"; not shown: {hidden} of {len(points)} points (δ <= 0 or not measured)" if hidden else ""
    figure.suptitle(f"δ after {describe(variant)} ({variant}){not_shown}\n{law}", fontsize=9)
    return True
