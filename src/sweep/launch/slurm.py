"""`sweep run CONFIG --executor slurm`: W `sweep worker`s as one SLURM job array, through submitit
(`pip install 'sweep[slurm]'`).

Each job trains, in its own process, what is left of the sweep's registered runs (`launch.worker.work`),
taking runs through claims like any worker, so the array needs no coordinator: its jobs may start,
die, be requeued or be added to in any order, and a run a dead job held is taken over from its
checkpoint by the next worker that finds the claim stale. Results are read from the store, never
from the jobs.

Stopping a job: SLURM sends SIGUSR2 shortly before a job's time limit (submitit's `--signal=USR2@90`),
and SIGTERM when it is cancelled or preempted. Either stops the worker as Ctrl-C does: the run in
flight goes back to pending and keeps its checkpoint (`runner.task._train_claimed`). After SIGUSR2 the
job then goes through submitit's own handler, which calls `SweepJob.checkpoint` and requeues it; the
next attempt's worker resumes the run. (submitit itself only logs SIGTERM, and SLURM kills the job
when its grace time ends: stopping at once keeps every file of the run whole.)
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sweep.config import ExecutorConfig
from sweep.errors import StoreWriteError, SweepError
from sweep.store import store_specs

if TYPE_CHECKING:
    import submitit

    from sweep.runner import SweepOutcome

INTERRUPTED = 130  # what `sweep worker` exits with when it was stopped


def _submitit():
    try:
        import submitit
    except ImportError:
        raise SweepError("--executor slurm needs submitit: pip install 'sweep[slurm]'") from None
    return submitit


def check_registered(store_root: Path, sweep: str) -> None:
    """Refuse to start workers for a sweep with no runs registered in the store: they would find nothing."""
    if not store_specs(store_root, sweep):
        raise SweepError(
            f"{store_root}: sweep {sweep!r} has no runs registered; register them with "
            "sweep run CONFIG --store STORE --submit-only"
        )


def run_worker(store_root: Path, sweep: str, config: ExecutorConfig) -> SweepOutcome:
    """One worker in this process, as a batch job or a Ray task runs it: `launch.worker.work` with
    plain progress lines on stdout. On CPU it trains one run at a time on `threads` (or all
    `cpus_per_task`) threads; with GPUs, one run per GPU it sees."""
    from sweep.engine import resolve_device
    from sweep.launch.lines import PlainReporter
    from sweep.launch.worker import work
    from sweep.runner import Options

    # A worker that was given no GPU trains on CPU, even where it could see the machine's GPUs.
    device = config.device if config.gpus_per_node or config.device != "auto" else "cpu"
    workers = 1 if resolve_device(device).type == "cpu" else 0  # 0: one per visible GPU
    return work(
        store_root, sweep, device, PlainReporter(), Options(), workers, 1, config.threads or config.cpus_per_task
    )


def summary(outcome: SweepOutcome) -> dict:
    """What a worker reports back: how many runs it trained, found finished, left to others, lost."""
    return {
        "done": len(outcome.done),
        "skipped": outcome.skipped,
        "taken": len(outcome.taken),
        "failed": len(outcome.failed),
        "diverged": len(outcome.diverged),
    }


class _StopOnSignal:
    """While installed: the first SIGTERM or preemption signal (submitit's SIGUSR2) raises
    KeyboardInterrupt in the main thread, which stops the worker cleanly. Later signals are only
    recorded, so they cannot break the run's cleanup. `requeue` is submitit's handler once the
    preemption signal came."""

    def __init__(self, preempt: signal.Signals):
        self.preempt, self.stopped_by, self.requeue = preempt, None, None

    def _handle(self, signum, frame) -> None:
        if signum == self.preempt and callable(self.submitit_handler):
            self.requeue = functools.partial(self.submitit_handler, signum, frame)
        if self.stopped_by is None:
            self.stopped_by = signal.Signals(signum).name
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self):
        self.submitit_handler = signal.getsignal(self.preempt)
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, self.preempt)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@dataclass(frozen=True)
class SweepJob:
    """One job of the array: a `sweep worker` on the store. submitit calls it in the job's process
    and requeues it through `checkpoint` (its Checkpointable protocol, met without importing
    submitit here); the state to resume is all in the store."""

    store_root: Path
    sweep: str
    config: ExecutorConfig

    def __call__(self) -> dict:
        from submitit import JobEnvironment

        stop = _StopOnSignal(signal.Signals["SIG" + JobEnvironment.USR_SIG])
        outcome = None
        with stop.installed():
            try:
                outcome = run_worker(self.store_root, self.sweep, self.config)
            except KeyboardInterrupt:  # stopped outside a run; none is left claimed
                pass
        if stop.stopped_by:
            print(
                f"worker stopped by {stop.stopped_by}: the run in flight is back to pending, with its checkpoint",
                flush=True,
            )
        if stop.requeue is not None:
            stop.requeue()  # submitit: checkpoint(), requeue the job, exit without a result
        if outcome is None or outcome.interrupted:
            sys.exit(INTERRUPTED)
        if outcome.store_error:
            raise StoreWriteError(f"{outcome.store_error}; make room and submit workers again")
        return summary(outcome)

    def checkpoint(self, *args, **kwargs):
        """The same job again: the next attempt takes up what the store says is left."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def cluster_for(name: str) -> str:
    """submitit's executor for `executor.cluster`: 'auto' is slurm when sbatch is on PATH."""
    if name == "auto":
        name = "slurm" if shutil.which("sbatch") else "local"
    missing = [command for command in ("sbatch", "srun") if name == "slurm" and not shutil.which(command)]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise SweepError(
            f"executor.cluster: slurm, but {' and '.join(missing)} {verb} not on PATH; run on a SLURM "
            "login node, or set executor.cluster: local to run the jobs on this machine"
        )
    return name


def job_parameters(config: ExecutorConfig, sweep: str) -> dict:
    """`AutoExecutor.update_parameters` for the array; settings left at 0 or '' are the cluster's."""
    parameters = {
        "name": f"sweep-{sweep}",
        "timeout_min": config.timeout_min,
        "cpus_per_task": config.cpus_per_task,
        "slurm_array_parallelism": config.array_parallelism or config.workers,
    }
    if config.gpus_per_node:
        parameters["gpus_per_node"] = config.gpus_per_node
    if config.mem_gb:
        parameters["mem_gb"] = config.mem_gb
    if config.partition:
        parameters["slurm_partition"] = config.partition
    if config.sbatch:
        parameters["slurm_additional_parameters"] = dict(setting.split("=", 1) for setting in config.sbatch)
    return parameters


def submit_slurm(store_root: Path, sweep: str, config: ExecutorConfig) -> list[submitit.Job]:
    """Submit `config.workers` workers on the sweep's registered runs as one job array (one job when
    W is 1), with submitit's files in <store>/.submitit/<sweep>/. The submitit Jobs, at once: the
    jobs train on without this process."""
    submitit = _submitit()
    from submitit.core.utils import FailedJobError

    store_root = Path(store_root).resolve()  # the jobs may start in another directory
    check_registered(store_root, sweep)
    executor = submitit.AutoExecutor(folder=store_root / ".submitit" / sweep, cluster=cluster_for(config.cluster))
    executor.update_parameters(**job_parameters(config, sweep))
    try:
        return executor.submit_array([SweepJob(store_root, sweep, config) for _ in range(config.workers)])
    except FailedJobError as err:  # sbatch refused: a partition, account or qos it does not know
        raise SweepError(f"sbatch refused the workers: {str(err).strip() or err.__cause__}") from None
