"""`sweep run CONFIG --executor ray`: W `sweep worker`s as Ray tasks (`pip install 'sweep[ray]'`).

Each task trains, in its Ray worker process, what is left of the sweep's registered runs
(`launch.worker.work`), taking runs through claims like any worker. A worker process that dies
(killed, out of memory) is retried by Ray, up to MAX_RETRIES times: the retry takes the dead
worker's run over from its checkpoint (on the same machine a claim whose pid is gone is stale at
once; from another node, after `claims.stale_after_s()`). Every node must see the store at the same
path and have sweep installed. Results are read from the store, never from the tasks.
"""

from __future__ import annotations

from pathlib import Path

from sweep.config import ExecutorConfig
from sweep.errors import SweepError
from sweep.launch.slurm import INTERRUPTED, check_registered, run_worker

# Times Ray starts a task again after its worker process died (a system failure; an exception the
# task raises is never retried: it would raise again).
MAX_RETRIES = 3
STORE_ERROR = 1  # `sweep worker`'s exit code when the store could not be written
CRASHED = 137  # 128 + SIGKILL: the worker's process died more often than Ray retries it
CANCEL_WAIT_S = 60.0  # how long Ctrl-C waits for the workers to put their runs back to pending


def _ray():
    try:
        import ray
    except ImportError:
        raise SweepError("--executor ray needs ray: pip install 'sweep[ray]'") from None
    return ray


def ray_worker(store_root: str, sweep: str, config: ExecutorConfig) -> int:
    """One Ray task: a worker in this Ray worker process. Its exit code as `sweep worker` gives it."""
    outcome = run_worker(Path(store_root), sweep, config)
    if outcome.store_error:
        print(f"error: {outcome.store_error}; make room and start the workers again", flush=True)
        return STORE_ERROR
    return INTERRUPTED if outcome.interrupted else 0


def connect(ray, address: str) -> bool:
    """Join the Ray cluster at `address`, or ('') the one running here if any, else start one on
    this machine's CPUs and GPUs. Whether this call started it (and so should shut it down)."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address or "auto")
        return False
    except ConnectionError as err:
        if address:
            raise SweepError(f"executor.address: no Ray cluster at {address} ({err})") from None
    ray.init()
    return True


def _check_feasible(ray, config: ExecutorConfig) -> None:
    """On a cluster started here, refuse tasks bigger than the machine: Ray would wait for them forever."""
    resources = ray.cluster_resources()
    for name, wanted in (("CPU", config.cpus_per_task), ("GPU", config.gpus_per_node)):
        have = resources.get(name, 0)
        if wanted > have:
            key = "cpus_per_task" if name == "CPU" else "gpus_per_node"
            raise SweepError(
                f"executor.{key}: each worker asks for {wanted} {name}s, and the Ray cluster started "
                f"on this machine has {have:g}"
            )


def run_on_ray(store_root: Path, sweep: str, config: ExecutorConfig) -> list[int]:
    """Train the sweep's registered runs on `config.workers` Ray tasks and wait for them. Each
    worker's exit code: 0 (nothing left for it), STORE_ERROR, INTERRUPTED or CRASHED. Ctrl-C
    cancels the tasks, whose runs go back to pending, and raises KeyboardInterrupt."""
    ray = _ray()
    store_root = Path(store_root).resolve()  # Ray workers start in other directories
    check_registered(store_root, sweep)
    started = connect(ray, config.address)
    try:
        if started:
            _check_feasible(ray, config)
        task = ray.remote(num_cpus=config.cpus_per_task, num_gpus=config.gpus_per_node, max_retries=MAX_RETRIES)(
            ray_worker
        )
        refs = [task.remote(str(store_root), sweep, config) for _ in range(config.workers)]
        try:
            return [_exit_code(ray, ref) for ref in refs]
        except KeyboardInterrupt:
            for ref in refs:
                ray.cancel(ref)  # raises KeyboardInterrupt in the task: its run goes back to pending
            ray.wait(refs, num_returns=len(refs), timeout=CANCEL_WAIT_S)
            raise
    finally:
        if started:
            ray.shutdown()


def _exit_code(ray, ref) -> int:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, SweepError):  # bad input, found by every worker alike
            raise err.cause from None
        raise
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.OutOfMemoryError):
        return CRASHED
