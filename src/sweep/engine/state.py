"""The state of a run in training: what a checkpoint holds and what `train` resumes from, defined
once. Its fields are the keys of a checkpoint file and give the type `checkpoint.load` checks each
against; on disk it is a plain dict (`to_dict`), so files stay readable with
`torch.load(weights_only=True)`."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass

import torch


@dataclass(kw_only=True)  # keyword-only, so the fields keep the order of the keys files have always had
class TrainState:
    """A run's training after `step` optimizer steps: given to `train` as `resume`, it continues from
    there, and on CPU the rest of the curve is the one an uninterrupted run draws."""

    step: int  # optimizer steps taken
    model: dict  # the unwrapped model's state dict: no DDP `module.` prefix, so it resumes in any process count
    optimizer: dict  # AdamW's state dict
    generator: torch.Tensor  # the RNG state of the random-window sampler (`data.order: random`)
    first_loss: float | None  # the first logged training loss, which divergence is judged against
    train_loss: float | None  # the last logged training loss
    val_loss: float | None  # the last validation loss
    strikes: int  # logging intervals in a row with the loss above 1.5x its start (`loop.EXPLODING_STRIKES`)
    # Σ of each step's mean loss × batch_tokens, in nats (`prequential.CodeLength`); None: not counted.
    # The one optional field: states saved before prequential code lengths were counted lack it.
    prequential_nats: float | None = None
    elapsed_s: float  # training time of every attempt so far

    def to_dict(self) -> dict:
        """The plain dict a checkpoint file holds, a key per field. Its tensors are this state's own,
        not copies: save it before training goes on."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, saved: dict) -> TrainState:
        """The state `saved` holds (check it with `field_problem` first). Other keys, such as the owner a
        file names, are not the state's; a missing optional field takes its default."""
        return cls(**{field.name: saved[field.name] for field in dataclasses.fields(cls) if field.name in saved})


_FIELD_TYPES = typing.get_type_hints(TrainState)  # the annotations above as types: `float | None` and so on


def field_problem(saved: dict) -> str | None:
    """Why `saved` is no `TrainState.to_dict()`, or None: it lacks a field that has no default, or a
    field holds a value of another type. The fields without default are checked first."""
    for field in sorted(dataclasses.fields(TrainState), key=lambda field: field.default is not dataclasses.MISSING):
        if field.name not in saved:
            if field.default is dataclasses.MISSING:
                return f"it lacks {field.name!r}"
            continue
        value = saved[field.name]
        if isinstance(value, bool) or not isinstance(value, _FIELD_TYPES[field.name]):  # True is an int to Python
            return f"its {field.name} is a {type(value).__name__}"
    return None
