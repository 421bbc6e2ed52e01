"""Run many `RunSpec`s against a store: skip what is finished, train the rest, record every outcome.

Two engines: `run_local` trains one task after another in this process (`runner.local`); `run_pool`
keeps several worker processes busy (`runner.pool`). Both schedule with the same `Plan`
(`runner.plan`), train each task under a fenced claim (`runner.task`) and count what ended the same
way (`runner.outcome`). A run that raises is recorded as failed and the sweep goes on; Ctrl-C puts the
runs in flight back to pending and stops, leaving every finished run as it was. Also here: how many
workers a machine trains with (`runner.packing`), experiment trackers, `sweep bench` and `sweep export`.

Names with a leading underscore are shared between this package's modules, not used outside it.
"""

from sweep.runner.local import execute, run_local
from sweep.runner.outcome import Reporter, SweepOutcome, SweepState, register, sweep_state
from sweep.runner.packing import Workers, packing, plan_workers
from sweep.runner.plan import Options, Task, pending
from sweep.runner.pool import run_pool

__all__ = [
    "Options",
    "Reporter",
    "SweepOutcome",
    "SweepState",
    "Task",
    "Workers",
    "execute",
    "packing",
    "pending",
    "plan_workers",
    "register",
    "run_local",
    "run_pool",
    "sweep_state",
]
