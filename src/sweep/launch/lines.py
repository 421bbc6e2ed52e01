"""What a sweep prints where there is no terminal (batch jobs, nohup, CI, a SLURM or Ray worker's log):
one timestamped line per event, written as it happens. Implements `runner.Reporter`."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from sweep.config import RunSpec
from sweep.runner import Task


def outcome_text(record: dict) -> str:
    """How a run ended, in one line. Bits per byte are unknown (None) for a token file's ids, whose
    bytes the run never saw: then the line says so rather than inventing a number."""
    if record["status"] == "done":
        bpb = "bpb –" if record.get("bpb") is None else f"{record['bpb']:.3f} bpb"
        return (
            f"done: loss {record['loss']:.4f} ({bpb}) in {record['wall_s']:.1f} s, "
            f"{record['tokens_per_s']:,.0f} tokens/s"
        )
    return f"{record['status']}: {record.get('reason')}"


class PlainReporter:
    """One timestamped line per event; nothing that needs a terminal."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream  # None: sys.stdout at the time of each line, as print has it

    def _line(self, text: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}", file=self.stream or sys.stdout, flush=True)

    def sweep_started(self, specs: list[RunSpec], todo: list[RunSpec], work_flops: float) -> None:
        self._line(
            f"sweep {specs[0].sweep}: {len(specs)} runs, {len(specs) - len(todo)} already finished, "
            f"{len(todo)} to train"
        )

    def run_started(self, task: Task, index: int, count: int) -> None:
        self._line(f"task {index + 1}/{count} {task.name}: start")

    def run_progress(self, task: Task, row: dict) -> None:
        if "val_loss" in row:
            self._line(
                f"  {task.name}: step {row['step']}/{row['steps']} tokens {row['tokens']:,} "
                f"train {row['train_loss']:.4f} val {row['val_loss']:.4f}"
            )

    def run_finished(self, task: Task, record: dict) -> None:
        self._line(f"  {task.name}: {outcome_text(record)}")
