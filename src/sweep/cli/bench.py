"""Timing training on this machine: `sweep bench` (speed against its own measured matmul peak, through the
functions `sweep run` uses, `runner.bench`) and the plan `sweep run --dry-run` prints, each run's time
estimated from a few timed steps of its shape."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from sweep.cli.app import Device, console, guarded
from sweep.errors import SweepError


@guarded
def bench(
    device: Device = typer.Option(Device.auto, "--device", help="cpu or cuda (auto: cuda if present)."),
    reference: bool = typer.Option(False, "--reference", help="Also time the classic eager fp32 loop (CPU)."),
    seconds: float = typer.Option(3.0, "--seconds", min=0.1, help="Timed seconds per ladder size."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads of the one-process rows (0 = all cores)."),
    workers: int = typer.Option(
        0,
        "--workers",
        min=0,
        help="CPU: single-thread workers measured at once (0 = one per core, as sweep run packs; 1 = none).",
    ),
    compiling: Optional[bool] = typer.Option(
        None, "--compile/--no-compile", help="torch.compile the models (default: on CUDA only, as train.compile: auto)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of a table."),
):
    """Measure training speed against this machine's own matmul peak, through the path sweep run uses."""
    import torch

    from sweep.cli.tables import bench_table
    from sweep.engine import resolve_device
    from sweep.runner.bench import run_bench

    if device is Device.cuda and not torch.cuda.is_available():
        raise SweepError("--device cuda: torch sees no CUDA device on this machine")
    if workers > 1 and device is Device.cuda:
        raise SweepError("--workers: the pooled measurement is for CPUs; on CUDA one process is measured")
    result = run_bench(
        resolve_device(device.value), reference, seconds, threads, workers, "auto" if compiling is None else compiling
    )
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        console.print(bench_table(result))


def print_plan(specs, todo, store, corpus, device, plan, compile_setting) -> None:
    """`--dry-run`: the grid with each run's estimated time, from timing a few steps of each shape."""
    import pandas as pd

    from sweep.cli.tables import flops_summary, plan_table
    from sweep.config.trunks import trunks
    from sweep.engine import compiles
    from sweep.runner.bench import bench_shape
    from sweep.store import spec_columns

    step_seconds = {}
    rows = []
    for spec in specs:
        if spec.shape not in step_seconds:  # the step `train` runs, at the threads a run will get
            timing = bench_shape(
                spec.shape, corpus, device, spec.train.dtype, spec.train.batch_tokens, seconds=0, compiling=False
            )  # compiling a shape can take minutes
            step_seconds[spec.shape] = sum(timing["step_s"].values())
        # Each evaluation reads val_tokens forward only: about a third of a training step's work per token.
        # Every compressed variant is one more evaluation, at the end.
        evaluations = spec.train.evals + 1 + len(spec.eval.quantize) + len(spec.eval.prune)
        eval_steps = evaluations * spec.data.val_tokens / spec.train.batch_tokens / 3
        status = store.status(spec)["status"] if store.root.is_dir() else "pending"
        rows.append(
            {
                **spec_columns(spec),
                "shape": spec.shape.name,
                "status": status,
                "est_s": (spec.steps - spec.branch_step + eval_steps) * step_seconds[spec.shape],
            }
        )
    trunk_s = sum(max(trunk.branch_steps) * step_seconds[trunk.branches[0].shape] for trunk in trunks(todo))
    console.print(plan_table(pd.DataFrame(rows), plan.processes, trunk_s))
    console.print(flops_summary(specs), highlight=False)
    eager = "eager " if compiles(compile_setting, device) else ""
    console.print(
        f"estimates time 3 {eager}training steps of each shape on {device.type} with {plan.threads} "
        "thread(s); nothing was written",
        highlight=False,
    )
