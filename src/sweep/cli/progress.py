"""What a sweep shows on a terminal while it runs: rich progress bars. Elsewhere (batch jobs, nohup, CI)
it prints plain timestamped lines (`launch.lines.PlainReporter`). Both implement `runner.Reporter`; the
console comes from the CLI."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sweep.config import RunSpec
from sweep.launch.lines import outcome_text
from sweep.runner import Task


class RichReporter:
    """A bar for the sweep (runs done of total; time left from the FLOPs left) and one per run in flight."""

    def __init__(self, console: Console):
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.run_tasks: dict[str, int] = {}
        self.run_done_flops: dict[str, float] = {}
        self.finished_flops = 0.0
        self.runs_done = 0

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def sweep_started(self, specs: list[RunSpec], todo: list[RunSpec], work_flops: float) -> None:
        self.console.print(
            f"sweep [bold]{specs[0].sweep}[/]: {len(specs)} runs, "
            f"{len(specs) - len(todo)} already finished, {len(todo)} to train"
        )
        # Progress in FLOPs trained (trunks and cooldowns), so the time left accounts for big runs being slow.
        self.todo_count = len(todo)
        self.sweep_task = self.progress.add_task("sweep", total=work_flops or 1, info=f"runs 0/{len(todo)}")

    def _update_sweep(self) -> None:
        self.progress.update(
            self.sweep_task,
            completed=self.finished_flops + sum(self.run_done_flops.values()),
            info=f"runs {self.runs_done}/{self.todo_count}",
        )

    def run_started(self, task: Task, index: int, count: int) -> None:
        self.run_tasks[task.name] = self.progress.add_task(task.name, total=task.spec.tokens, info="")

    def run_progress(self, task: Task, row: dict) -> None:
        spec = task.spec
        info = f"{row['tokens']:,}/{spec.tokens:,} tokens  loss {row['train_loss']:.3f}"
        self.progress.update(self.run_tasks[task.name], completed=min(row["tokens"], spec.tokens), info=info)
        trained = (row["step"] - task.start_step) / max(1, spec.steps - task.start_step)
        self.run_done_flops[task.name] = task.flops * min(1.0, max(0.0, trained))
        self._update_sweep()

    def run_finished(self, task: Task, record: dict) -> None:
        self.runs_done += task.kind != "trunk"
        self.finished_flops += task.flops
        self.run_done_flops.pop(task.name, None)
        bar = self.run_tasks.pop(task.name, None)
        if bar is not None:
            self.progress.remove_task(bar)
        self._update_sweep()
        self.progress.console.print(f"{task.name}: {outcome_text(record)}", highlight=False)
