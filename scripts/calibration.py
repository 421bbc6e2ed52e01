"""How often do `sweep fit --holdout`'s 95% intervals cover the held-out runs? Measured on synthetic
sweeps shaped like real small ones, where the truth is known.

    nice -n 10 python scripts/calibration.py [--worlds 200] [--bootstrap 200] [--seed 0] [--workers 1] [--json PATH]

Each world (deterministic by --seed and its index):
- a true law: Chinchilla's E + A/N^α + B/D^β with α, β ~ U(0.25, 0.6), E ~ U(0.5, 2), and A, B set
  so that at the grid's centre the two terms share R ~ E·U(0.3, 1.5) in proportions U(0.3, 0.7),
  so both matter over the grid. In about 30% of worlds the truth is a mildly wrong form instead
  (10% each): the law plus an N·D interaction term worth 5-15% of R at the centre; exponents that
  drift with scale, α(N) = α + γ·ln(N/N_centre) (likewise β), |γ| ~ U(0.01, 0.03); or Kaplan's
  joint form [(N_c/N)^(α_N/α_D) + D_c/D]^α_D, α_D ~ U(0.08, 0.2), α_N/α_D ~ U(0.7, 1.4), with the
  same loss and term shares at the centre;
- a design of 9-20 points: 3-5 sizes spanning 30x from N_0 ~ logU(1e4, 1e7), and either a grid
  with 3-6 token counts spanning 16x from D_0 = N_0·logU(5, 50), or a tokens-per-parameter ladder
  D = r·N with 3-6 ratios spanning 8x from r_0 ~ logU(2, 10);
- multiplicative noise: loss · exp(σ z), σ ~ U(0.005, 0.01);
- the 1 or 2 highest-compute points held out; the rest are fit as `sweep fit` fits them.
For each held-out point it records whether each 95% interval covers (a) the observed noisy loss,
what a user checks, and (b) the noiseless truth, and the interval's width relative to the loss:
- old: the parameter-only interval sweep printed before (a bootstrap resampling points, percentile
  interval of the prediction), reproduced here as it was;
- new ci: the Chinchilla law's own interval from its parametric bootstrap (parameters only);
- new interval: its prediction interval, what `--holdout` checks against (see sweep/laws/bootstrap.py);
- new interval, --form auto: the same from the form the rollout check chose, `sweep fit`'s default.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from sweep.errors import InputError
from sweep.laws.allocation import DEFAULT_COMPUTE_TOLERANCE
from sweep.laws.bootstrap import bootstrap, interval
from sweep.laws.forms import ChinchillaParams, KaplanParams, chinchilla, kaplan_loss, predict_loss
from sweep.laws.forms.joint import FORMS
from sweep.laws.predict import bootstrapped_laws, predict_loss_at
from sweep.laws.rollout import choose_form, rollout

TRUTHS = ("chinchilla", "interaction", "drifting exponents", "kaplan")
TRUTH_SHARES = (0.7, 0.1, 0.1, 0.1)
METHODS = ("old", "new ci", "new interval", "new interval, --form auto")


@dataclass(frozen=True)
class World:
    truth: str
    design: str
    params: np.ndarray  # (n,), sorted by C = 6ND
    tokens: np.ndarray
    true_loss: np.ndarray
    loss: np.ndarray  # observed
    noise: float
    holdout: int


def make_world(rng: np.random.Generator) -> World:
    alpha, beta = rng.uniform(0.25, 0.6, 2)
    irreducible = rng.uniform(0.5, 2.0)
    n_sizes, n_budgets = 0, 0
    while not 9 <= n_sizes * n_budgets <= 20:
        n_sizes, n_budgets = int(rng.integers(3, 6)), int(rng.integers(3, 7))
    smallest = np.exp(rng.uniform(np.log(1e4), np.log(1e7)))
    sizes = smallest * np.geomspace(1.0, 30.0, n_sizes)
    design = str(rng.choice(["grid", "ladder"]))
    if design == "grid":
        budgets = smallest * np.exp(rng.uniform(np.log(5), np.log(50))) * np.geomspace(1.0, 16.0, n_budgets)
        params, tokens = (axis.ravel() for axis in np.meshgrid(sizes, budgets))
    else:
        ratios = np.exp(rng.uniform(np.log(2), np.log(10))) * np.geomspace(1.0, 8.0, n_budgets)
        params, ratio = (axis.ravel() for axis in np.meshgrid(sizes, ratios))
        tokens = params * ratio
    params_centre, tokens_centre = np.exp(np.log(params).mean()), np.exp(np.log(tokens).mean())
    reducible, share = irreducible * rng.uniform(0.3, 1.5), rng.uniform(0.3, 0.7)
    law = ChinchillaParams(
        E=irreducible,
        A=share * reducible * params_centre**alpha,
        B=(1 - share) * reducible * tokens_centre**beta,
        alpha=alpha,
        beta=beta,
    )
    truth = str(rng.choice(TRUTHS, p=TRUTH_SHARES))
    if truth == "interaction":
        strength = rng.uniform(0.05, 0.15) * reducible
        params_term, tokens_term = law.A / params**alpha, law.B / tokens**beta
        centre = (law.A / params_centre**alpha) * (law.B / tokens_centre**beta)
        true_loss = predict_loss(params, tokens, law) + strength * params_term * tokens_term / centre
    elif truth == "drifting exponents":
        drift = rng.choice([-1.0, 1.0]) * rng.uniform(0.01, 0.03)
        true_loss = (
            law.E
            + law.A * params ** -(alpha + drift * np.log(params / params_centre))
            + law.B * tokens ** -(beta + drift * np.log(tokens / tokens_centre))
        )
    elif truth == "kaplan":
        alpha_tokens, ratio = rng.uniform(0.08, 0.2), rng.uniform(0.7, 1.4)
        bracket = (irreducible + reducible) ** (1.0 / alpha_tokens)  # the centre's loss, raised to 1/α_D
        kaplan = KaplanParams(
            N_c=params_centre * (share * bracket) ** (1.0 / ratio),
            D_c=tokens_centre * (1 - share) * bracket,
            alpha_N=ratio * alpha_tokens,
            alpha_D=alpha_tokens,
        )
        true_loss = kaplan_loss(params, tokens, kaplan)
    else:
        true_loss = predict_loss(params, tokens, law)
    noise = rng.uniform(0.005, 0.01)
    loss = true_loss * np.exp(noise * rng.standard_normal(len(params)))
    order = np.argsort(params * tokens, kind="stable")
    return World(
        truth=truth,
        design=design,
        params=params[order],
        tokens=tokens[order],
        true_loss=true_loss[order],
        loss=loss[order],
        noise=float(noise),
        holdout=int(rng.integers(1, 3)),
    )


def old_intervals(params, tokens, loss, fit, targets, n_samples: int, seed: int) -> list[tuple[float, float] | None]:
    """The interval sweep printed before: refit on resamples of the points (as weights, from the
    full-data optimum and its best grid starts), the percentile interval of each target's prediction."""
    starts = chinchilla.refit_starts(params, tokens, loss, fit)

    def refit(counts: np.ndarray) -> dict[str, float]:
        drawn = counts > 0
        if min(len(np.unique(params[drawn])), len(np.unique(tokens[drawn]))) < 2 or drawn.sum() < 5:
            return dict.fromkeys(("E", "A", "B", "alpha", "beta"), np.nan)
        resampled = chinchilla.fit_chinchilla(params, tokens, loss, weights=counts, starts=starts, n_refined=3)
        return asdict(resampled.params)

    columns = bootstrap(refit, len(params), n_samples, seed)
    finite = np.all([np.isfinite(column) for column in columns.values()], axis=0)
    laws = [
        ChinchillaParams(**{name: column[index] for name, column in columns.items()})
        for index in np.flatnonzero(finite)
    ]
    if not laws:
        return [None] * len(targets)
    with np.errstate(over="ignore", invalid="ignore"):
        return [interval(np.array([predict_loss(n, d, law) for law in laws])) for n, d in targets]


def new_intervals(form_name: str, points: pd.DataFrame, targets, n_samples: int, seed: int):
    """(prediction interval, ci) per target, as `sweep fit --holdout` computes them for this form."""
    form = FORMS[form_name]
    fit = form.fit(*(points[column].to_numpy() for column in ("params", "tokens", "loss")))
    laws, _ = bootstrapped_laws(form, fit, points, n_samples, seed, "non_embedding", "6ND")
    estimates = [predict_loss_at(laws, n, d).loss for n, d in targets]
    return [(estimate.interval, estimate.ci) for estimate in estimates]


def measure(task: tuple[int, int, int]) -> list[dict]:
    """Every held-out point of world `index` with each method's coverage."""
    index, seed, n_samples = task
    world_seed, bootstrap_seed = np.random.SeedSequence([seed, index]).generate_state(2)
    world = make_world(np.random.default_rng(world_seed))
    fitted = len(world.params) - world.holdout
    points = pd.DataFrame(
        {
            "params": world.params[:fitted],
            "tokens": world.tokens[:fitted],
            "loss": world.loss[:fitted],
            "flops": 6 * world.params[:fitted] * world.tokens[:fitted],
        }
    )
    targets = list(zip(world.params[fitted:], world.tokens[fitted:], strict=True))
    fit = FORMS["chinchilla"].fit(points["params"].to_numpy(), points["tokens"].to_numpy(), points["loss"].to_numpy())
    old = old_intervals(
        *(points[c].to_numpy() for c in ("params", "tokens", "loss")), fit, targets, n_samples, int(bootstrap_seed)
    )
    new = new_intervals("chinchilla", points, targets, n_samples, int(bootstrap_seed))
    try:
        chosen = choose_form(rollout(points, DEFAULT_COMPUTE_TOLERANCE))
    except InputError:  # too few points for a rollout fold: sweep fit falls back to chinchilla too
        chosen = "chinchilla"
    auto = new if chosen == "chinchilla" else new_intervals(chosen, points, targets, n_samples, int(bootstrap_seed))
    rows = []
    for offset, (old_interval, (new_interval, new_ci), (auto_interval, _)) in enumerate(
        zip(old, new, auto, strict=True)
    ):
        point = fitted + offset
        observed, true = float(world.loss[point]), float(world.true_loss[point])
        intervals = dict(zip(METHODS, (old_interval, new_ci, new_interval, auto_interval), strict=True))
        rows.append(
            {
                "world": index,
                "truth": world.truth,
                "design": world.design,
                "n_fitted": fitted,
                "extrapolation": float(6 * world.params[point] * world.tokens[point] / points["flops"].max()),
                "auto_form": chosen,
                **{
                    method: None
                    if bounds is None
                    else {
                        "observed": bool(bounds[0] <= observed <= bounds[1]),
                        "truth": bool(bounds[0] <= true <= bounds[1]),
                        "width": (bounds[1] - bounds[0]) / observed,
                    }
                    for method, bounds in intervals.items()
                },
            }
        )
    return rows


def summary(rows: list[dict]) -> dict:
    """Per method: coverage of the observed and the true loss (all, right form, wrong form), median
    relative width, and how many points got no interval."""
    groups = {
        "all": rows,
        "right form": [row for row in rows if row["truth"] == "chinchilla"],
        "wrong form": [row for row in rows if row["truth"] != "chinchilla"],
    }
    result = {}
    for method in METHODS:
        result[method] = {"no_interval": sum(row[method] is None for row in rows)}
        for group, selected in groups.items():
            measured = [row[method] for row in selected if row[method] is not None]
            for target in ("observed", "truth"):
                result[method][f"{target}, {group}"] = (
                    float(np.mean([m[target] for m in measured])) if measured else None
                )
        result[method]["median_width"] = float(np.median([row[method]["width"] for row in rows if row[method]]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worlds", type=int, default=200)
    parser.add_argument("--bootstrap", type=int, default=200, help="refits per interval, as sweep fit --bootstrap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="processes; results do not depend on it")
    parser.add_argument("--json", type=str, default=None, help="also write every held-out point and the summary here")
    args = parser.parse_args()

    start = time.perf_counter()
    tasks = [(index, args.seed, args.bootstrap) for index in range(args.worlds)]
    if args.workers > 1:
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            rows = [row for world in pool.imap(measure, tasks) for row in world]
    else:
        rows = [row for task in tasks for row in measure(task)]
    elapsed = time.perf_counter() - start
    result = summary(rows)

    truths = {truth: len({row["world"] for row in rows if row["truth"] == truth}) for truth in TRUTHS}
    chosen = {form: sum(row["auto_form"] == form for row in rows) for form in FORMS}
    print(
        f"{args.worlds} worlds ({', '.join(f'{count} {truth}' for truth, count in truths.items())}), "
        f"{len(rows)} held-out points, {args.bootstrap} bootstrap refits per interval, seed {args.seed}; "
        f"{elapsed / 60:.1f} min on {args.workers} worker(s), {os.cpu_count()} cores"
    )
    print(f"--form auto chose, per held-out point: {', '.join(f'{form} {count}' for form, count in chosen.items())}")
    columns = [
        f"{target}, {group}" for target in ("observed", "truth") for group in ("all", "right form", "wrong form")
    ]
    print("coverage of the 95% intervals:")
    print(f"| {'interval':<26} | " + " | ".join(f"{column:>20}" for column in columns) + " | median width | none |")
    print("|" + "---|" * (len(columns) + 3))
    for method, figures in result.items():
        cells = ["-" if figures[column] is None else f"{100 * figures[column]:.1f}%" for column in columns]
        print(
            f"| {method:<26} | "
            + " | ".join(f"{cell:>20}" for cell in cells)
            + f" | {100 * figures['median_width']:11.2f}% | {figures['no_interval']:4d} |"
        )
    if args.json:
        with open(args.json, "w") as file:
            json.dump(
                {"arguments": vars(args), "elapsed_s": elapsed, "summary": result, "points": rows}, file, indent=1
            )


if __name__ == "__main__":
    main()
