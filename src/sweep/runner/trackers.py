"""Experiment trackers: each run's metrics rows, as the store records them, mirrored to W&B or TensorBoard.

`train.log: [wandb, tensorboard]` (or `sweep run --log`) opens one tracker run per run the store
holds: a plain run, a wsd trunk and each wsd branch alike, named by its run (or trunk) id, grouped by
sweep. A tracker starts each attempt from the rows that attempt keeps (`Store.start_metrics`: a
checkpoint's rows, or for a branch its trunk's up to the branch point) and then gets every new row, so
its run always holds exactly what metrics.jsonl holds: a resumed run replaces what its killed attempt
logged, and a branch shows its whole curve from step 1. `sweep export` replays a finished store the
same way (`export.py`).

The packages are imported only when a tracker is asked for (`require` checks them before anything
trains). A tracker's own failure never reaches training: `Trackers` warns once and drops it.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol

from sweep.config import TRACKERS
from sweep.errors import SweepError, require_package

# tracker -> (the package it imports, the pip extra that installs it)
PACKAGES = {"wandb": ("wandb", "wandb"), "tensorboard": ("tensorboard", "tensorboard")}
# WANDB_MODE values under which nothing leaves the machine and a run's files are its whole record
WANDB_LOCAL_MODES = ("offline", "dryrun")


def require(names: tuple[str, ...], where: str = "train.log") -> None:
    """Every tracker in `names` is known and its package importable."""
    for name in names:
        if name not in PACKAGES:
            raise SweepError(f"{where}: {name!r} is not a tracker; choose from {', '.join(TRACKERS)}")
        module, extra = PACKAGES[name]
        require_package(module, extra, f"{where}: {name}")


def parse_trackers(values: list[str]) -> tuple[str, ...]:
    """`--log wandb,tensorboard` or `--log wandb --log tensorboard` as train.log's tuple; `--log ''`
    gives none (turns the config's trackers off)."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    for name in names:
        if name not in TRACKERS:
            raise SweepError(
                f"--log: {name!r} is not a tracker; choose from {', '.join(TRACKERS)} (comma-separated or repeated)"
            )
    return tuple(dict.fromkeys(names))


@dataclass(frozen=True)
class TrackedRun:
    """What a tracker knows of one run of the store; it writes its files under `directory`."""

    name: str  # the run id, or a wsd trunk's id: the tracker run's name and id
    sweep: str  # the tracker run's group
    kind: str  # 'run', 'trunk' or 'branch' (`runner.plan.Task.kind`)
    config: dict  # the run's spec (`RunSpec.to_dict`)
    directory: Path


class Tracker(Protocol):
    def log(self, row: dict) -> None: ...
    def finish(self, record: dict) -> None: ...  # the run ended: `record` is its result.json
    def close(self) -> None: ...  # the attempt stopped (interrupted, taken over); it will be trained again


def _scalars(row: dict) -> dict:
    """The numbers of a metrics row besides its step (tokens, flops, train_loss, val_loss, lr, elapsed_s)."""
    return {
        key: value
        for key, value in row.items()
        if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


class WandbTracker:
    """One W&B run: id and name the run id, group the sweep, job type the kind, config the spec.
    Offline unless WANDB_MODE says otherwise; then `wandb sync <run dir>/wandb/offline-run-*` uploads it.
    Silent: no banner, no captured console (rich's progress keeps the terminal), and no login prompt
    (`wandb.setup(silent)` turns W&B's terminal input off; with WANDB_MODE=online and no key, init
    fails and `Trackers` warns). Its files go to <directory>/wandb/."""

    def __init__(self, run: TrackedRun):
        import wandb

        mode = os.environ.get("WANDB_MODE") or "offline"
        if mode in WANDB_LOCAL_MODES:  # this attempt's run replaces the earlier attempts' (module docstring)
            for earlier in (run.directory / "wandb").glob(f"offline-run-*-{run.name}"):
                shutil.rmtree(earlier, ignore_errors=True)
        run.directory.mkdir(parents=True, exist_ok=True)
        wandb.setup(wandb.Settings(silent=True))  # W&B reads `silent` for its terminal once, at setup
        # resume 'allow': an online run of this id (an earlier attempt) continues instead of clashing.
        self.run = wandb.init(
            dir=run.directory,
            project=None if os.environ.get("WANDB_PROJECT") else "sweep",
            group=run.sweep,
            name=run.name,
            id=run.name,
            job_type=run.kind,
            config=run.config,
            mode=mode,
            resume="allow",
            reinit="create_new",
            settings=wandb.Settings(console="off", silent=True),
        )

    def log(self, row: dict) -> None:
        if row["step"] >= self.run.step:  # a resumed online run already holds the steps below
            self.run.log(_scalars(row), step=row["step"])

    def finish(self, record: dict) -> None:
        self.run.summary.update({key: value for key, value in record.items() if value is not None})
        self.run.finish(exit_code=0 if record.get("status") == "done" else 1)

    def close(self) -> None:
        self.run.finish(exit_code=1)


class TensorBoardTracker:
    """Event files in <directory>/tensorboard/ (torch's SummaryWriter): a scalar per metrics number at
    the row's step, the spec as text, and at the end the final loss and bpb as final/loss, final/bpb.
    Each attempt rewrites the directory, so the events hold the rows it keeps and no step twice."""

    def __init__(self, run: TrackedRun):
        from torch.utils.tensorboard import SummaryWriter

        directory = run.directory / "tensorboard"
        shutil.rmtree(directory, ignore_errors=True)
        self.writer = SummaryWriter(log_dir=str(directory))
        self.writer.add_text("spec", json.dumps(run.config, sort_keys=True))

    def log(self, row: dict) -> None:
        for key, value in _scalars(row).items():
            self.writer.add_scalar(key, value, global_step=row["step"])

    def finish(self, record: dict) -> None:
        for key in ("loss", "bpb"):
            if record.get(key) is not None:
                self.writer.add_scalar(f"final/{key}", record[key], global_step=record.get("steps"))
        self.writer.close()

    def close(self) -> None:
        self.writer.close()


OPENERS: dict[str, Callable[[TrackedRun], Tracker]] = {"wandb": WandbTracker, "tensorboard": TensorBoardTracker}


class Trackers:
    """The trackers of one attempt at one run. Every call reaches each tracker still open; one that
    raises (its own error: a full disk, a W&B service gone) is warned about once and dropped, and
    training goes on, its metrics.jsonl untouched."""

    def __init__(
        self,
        names: tuple[str, ...],
        run: TrackedRun,
        kept: Iterable[dict] = (),
        openers: dict[str, Callable[[TrackedRun], Tracker]] = OPENERS,
    ):
        self.run = run
        self.open: dict[str, Tracker] = {}
        for name in names:
            tracker = self._call(name, None, lambda name=name: openers[name](run))
            if tracker is not None:
                self.open[name] = tracker
        for row in kept:
            self.log(row)

    def _call(self, name: str, tracker: Tracker | None, call: Callable):
        try:
            return call()
        except Exception as err:  # noqa: BLE001 - a tracker's failure is never the run's
            self.open.pop(name, None)
            warnings.warn(
                f"train.log: {name} failed for {self.run.name} ({type(err).__name__}: {err}); "
                "training goes on without it",
                RuntimeWarning,
                stacklevel=3,
            )
            if tracker is not None:
                try:
                    tracker.close()
                except Exception:  # noqa: BLE001, S110 - already dropped and warned about
                    pass
            return None

    def log(self, row: dict) -> None:
        for name, tracker in list(self.open.items()):
            self._call(name, tracker, lambda tracker=tracker: tracker.log(row))

    def after(self, write: Callable[[dict], None]) -> Callable[[dict], None]:
        """`train`'s log callback: `write` (the store's, which may stop the run) first, then the trackers."""

        def log(row: dict) -> None:
            write(row)
            self.log(row)

        return log

    def finish(self, record: dict) -> None:
        for name, tracker in list(self.open.items()):
            self._call(name, tracker, lambda tracker=tracker: tracker.finish(record))
        self.open.clear()

    def close(self) -> None:
        for name, tracker in list(self.open.items()):
            self._call(name, None, tracker.close)
        self.open.clear()
