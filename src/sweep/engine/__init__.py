"""Training one run: `train(spec, corpus, device, callbacks) -> RunResult`, one readable loop
(`loop`), with its learning-rate schedules (`schedules`), device and dtype policy (`device`), the
pieces of a step (`steps`), peak memory (`memory`), when a prequential code length is counted
(`prequential`), the one `TrainState` a checkpoint holds (`state`) and its files (`checkpoint`),
DDP (`distributed`) and post-training compression (`compress`). It knows nothing of store paths,
the CLI or other runs.
"""

from sweep.engine.device import compiles, configure_device, resolve_device, resolve_dtype, setup_process, step_module
from sweep.engine.loop import RunResult, train
from sweep.engine.memory import PeakMemory
from sweep.engine.prequential import prequential_reason
from sweep.engine.schedules import eval_steps, lr_at, schedule_lr, wsd_lr_at
from sweep.engine.state import TrainState
from sweep.engine.steps import (
    accumulate_gradients,
    evaluate,
    forward_backward,
    make_optimizer,
    micro_batch_rows,
    optimizer_step,
)

__all__ = [
    "PeakMemory",
    "RunResult",
    "TrainState",
    "accumulate_gradients",
    "compiles",
    "configure_device",
    "eval_steps",
    "evaluate",
    "forward_backward",
    "lr_at",
    "make_optimizer",
    "micro_batch_rows",
    "optimizer_step",
    "prequential_reason",
    "resolve_device",
    "resolve_dtype",
    "schedule_lr",
    "setup_process",
    "step_module",
    "train",
    "wsd_lr_at",
]
