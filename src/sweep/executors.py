"""Run many `RunSpec`s against a store: skip what is finished, train the rest, record every outcome.

A run that raises is recorded as failed and the sweep goes on; Ctrl-C puts the current run back to
pending and stops, leaving every finished run as it was.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
import traceback
from dataclasses import dataclass, field
from typing import Protocol

import torch

import sweep
from sweep.config import RunSpec
from sweep.data import Corpus
from sweep.flops import training_flops
from sweep.store import FINISHED, Store, spec_columns
from sweep.train import RunResult, train


class Reporter(Protocol):
    def sweep_started(self, specs: list[RunSpec], todo: list[RunSpec]) -> None: ...
    def run_started(self, spec: RunSpec, index: int, count: int) -> None: ...
    def run_progress(self, spec: RunSpec, row: dict) -> None: ...
    def run_finished(self, spec: RunSpec, record: dict) -> None: ...


@dataclass
class SweepOutcome:
    total: int
    skipped: int = 0  # finished before this invocation
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not (self.failed or self.diverged or self.interrupted)


def pending(specs: list[RunSpec], store: Store) -> list[RunSpec]:
    return [spec for spec in specs if store.status(spec)["status"] not in FINISHED]


def run_local(specs: list[RunSpec], store: Store, corpus: Corpus, device: torch.device,
              reporter: Reporter) -> SweepOutcome:
    """Train every unfinished spec in this process, one after another."""
    for spec in specs:
        store.register(spec)
    todo = pending(specs, store)
    outcome = SweepOutcome(total=len(specs), skipped=len(specs) - len(todo))
    reporter.sweep_started(specs, todo)
    for index, spec in enumerate(todo):
        reporter.run_started(spec, index, len(todo))
        store.set_status(spec, "running", attempt=True)
        store.start_metrics(spec)
        try:
            result = train(spec, corpus, device, log=lambda row, s=spec: store.append_metrics(s, row),
                           progress=lambda row, s=spec: reporter.run_progress(s, row))
            record = result_record(spec, result, corpus, device)
        except KeyboardInterrupt:
            store.set_status(spec, "pending", reason="interrupted")
            outcome.interrupted = True
            break
        except Exception as err:  # noqa: BLE001 - any error in one run is that run's failure
            record = failure_record(spec, err, corpus, device)
        store.finish(spec, record)
        {"done": outcome.done, "failed": outcome.failed, "diverged": outcome.diverged}[record["status"]].append(spec.run_id)
        reporter.run_finished(spec, record)
    return outcome


def environment(corpus: Corpus, device: torch.device) -> dict:
    """Where and with what a run was trained."""
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {
        "device": device.type,
        "device_name": device_name,
        "threads": torch.get_num_threads(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "sweep": sweep.__version__},
        "corpus": {"source": corpus.source, "sha256": corpus.sha256, "train_tokens": len(corpus.train),
                   "val_tokens": len(corpus.val), "train_documents": corpus.train_documents,
                   "val_documents": corpus.val_documents},
        "finished_at": time.time(),
    }


def result_record(spec: RunSpec, result: RunResult, corpus: Corpus, device: torch.device) -> dict:
    """The result.json of a run that ended by itself (done or diverged)."""
    fields = dataclasses.asdict(result)
    loss = fields.pop("loss")
    return {
        **spec_columns(spec),
        **fields,
        "tokens_target": spec.tokens,
        "tokens": result.tokens,
        **training_flops(spec.shape, result.tokens),
        "loss": loss,
        "bpb": loss / math.log(2) if loss is not None else None,
        "epochs": result.tokens / len(corpus.train),
        **environment(corpus, device),
    }


def failure_record(spec: RunSpec, err: BaseException, corpus: Corpus, device: torch.device) -> dict:
    return {
        **spec_columns(spec),
        "status": "failed",
        "reason": f"{type(err).__name__}: {err}",
        "traceback": "".join(traceback.format_exception(err)),
        **environment(corpus, device),
    }

