"""Checkpoints of a run in training: model, optimizer, data-sampler and RNG state, step.

Written atomically (temporary file, fsync, rename), so a kill during a save leaves the previous
checkpoint whole. Read with `torch.load(weights_only=True)`: only tensors and plain containers,
never arbitrary pickled code.

A file holds a `TrainState` as a plain dict (`TrainState.to_dict`) and names its owner: the run it
belongs to, or the wsd trunk for a trunk's checkpoint and branch points. `load` takes a file only as a
state its owner can resume: every field of a `TrainState`, each of its type, a step the run can resume
from, and the tensors of the run's model. Anything else is
damaged (copied from another run, saved by an older sweep that named no owner, written by hand): a
warning says what is wrong, and training starts without it.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch

from sweep.engine.state import TrainState, field_problem
from sweep.model.gpt import GPT
from sweep.model.shape import ModelShape
from sweep.store.atomic import atomic_write


def save(path: Path, state: TrainState, *, owner: str) -> None:
    """Save `state` as `owner`'s: a run id, or a trunk id for a trunk's states."""
    _save_owned(path, state.to_dict(), owner)


def save_weights(path: Path, weights: dict, *, owner: str) -> None:
    """Save a model's state dict as `owner`'s, under the key "model" (a run's final weights, model.pt)."""
    _save_owned(path, {"model": weights}, owner)


def _save_owned(path: Path, contents: dict, owner: str) -> None:
    atomic_write(path, lambda f: _save_to(f, {**contents, "owner": owner}), binary=True)


class _Writes:
    """A file that remembers the OSError its last write raised: torch.save's zip writer reports a
    failed write (a full disk) as a RuntimeError about file positions."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.file.flush()


def _save_to(file, state: dict) -> None:
    writes = _Writes(file)
    try:
        torch.save(state, writes)
    except RuntimeError:
        if writes.error is not None:
            raise writes.error from None
        raise


def load(path: Path, *, owner: str, shape: ModelShape, steps: range | None = None) -> TrainState | None:
    """The state at `path` if `owner` can resume from it: saved as `owner`'s, of a model of `shape`, at
    one of `steps` (None: at any step). None if there is none or it is unreadable or damaged (a
    warning says which); then training starts without it."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint means starting over
        warnings.warn(f"{path}: unreadable checkpoint ({type(err).__name__}); the run starts from step 0", stacklevel=2)
        return None
    if problem := _problem(state, owner, shape, steps):
        warnings.warn(f"{path}: damaged: {problem}; training does not resume from it", stacklevel=2)
        return None
    return TrainState.from_dict(state)


def _problem(state, owner: str, shape: ModelShape, steps: range | None) -> str | None:
    """Why `state` is no state `owner` can resume from, or None."""
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a training state"
    if not isinstance(state.get("owner"), str):
        return "it names no owner (saved by a sweep from before checkpoints did)"
    if state["owner"] != owner:
        return f"it belongs to {state['owner']}, not {owner}"
    if problem := field_problem(state):
        return problem
    if steps is not None and state["step"] not in steps:
        return f"its step {state['step']} is not one this run resumes from ({steps.start} to {steps.stop - 1})"
    if not all(isinstance(tensor, torch.Tensor) for tensor in state["model"].values()):
        return "its model holds values that are not tensors"
    found, expected = {name: tuple(tensor.shape) for name, tensor in state["model"].items()}, _tensor_shapes(shape)
    for name in sorted(found.keys() | expected.keys(), key=str):
        if found.get(name) != expected.get(name):
            return (
                f"its model's {name} is {found.get(name, 'missing')}, where this run's model has "
                f"{expected.get(name, 'no such tensor')}"
            )
    return None


@functools.cache
def _tensor_shapes(shape: ModelShape) -> dict[str, tuple[int, ...]]:
    """The name and shape of each tensor of `GPT(shape)`'s state dict, from a model on the meta
    device: shapes without allocating or initialising any weights."""
    with torch.device("meta"):
        model = GPT(shape)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
