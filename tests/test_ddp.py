"""One run's batch split into micro-batches, and one run trained across 2 processes with DDP (gloo, on
CPU), each against one process taking the whole batch at once: the same curve up to rounding, the
same checkpoints, one writer."""

import dataclasses
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import tiny_config

from sweep.config import expand, parse_config
from sweep.data import get_batch, load_corpus, stdlib_root
from sweep.engine import TrainState, accumulate_gradients, distributed, micro_batch_rows, setup_process, train
from sweep.errors import ConfigError, SweepError
from sweep.model.gpt import GPT

CPU = torch.device("cpu")
STEPS = 40
RESUME_STEP = 20  # where the checkpoints the resume tests start from are taken
CALLBACKS = ("log", "progress", "save_checkpoint", "final_weights", "save_snapshot")
# A change of rounding (sums split or reordered) moves the first losses by about 1e-7, and training
# grows that, as any change of rounding does: running the reference on 2 threads instead of 1 moves its
# loss at step 40 by the same 2.7e-4. Measured over this file's comparisons: the first 10 logged losses
# within 1.9e-7 of the reference (2.9e-7 with micro-batches of 512), whole curves within 2.7e-4, the 20
# steps after a resume within 8.1e-8.
EARLY_TOLERANCE, CURVE_TOLERANCE = 1e-6, 1e-3


def _spec(**train):
    """The smaller tiny size, fp32 so rounding is all that differs, one thread, 40 steps of 32 windows."""
    raw = tiny_config(str(stdlib_root() / "email" / "**" / "*.py"), tokens=[STEPS * 1024])
    raw["model"]["sizes"] = raw["model"]["sizes"][:1]
    raw["train"].update({"dtype": "fp32", "threads": 1, "compile": False, **train})
    config = parse_config(raw)
    corpus = load_corpus(config.data)
    [spec] = expand(config, corpus.sha256)
    return spec, corpus


def _curve(rows: list[dict], after: int = 0) -> list[float]:
    """Every logged training loss after step `after`, then the last validation loss."""
    return [row["train_loss"] for row in rows if row["step"] > after] + [rows[-1]["val_loss"]]


def _assert_same_curve(rows: list[dict], reference: list[dict], after: int = 0) -> None:
    """`rows` draw `reference`'s curve after step `after`, to the tolerances above."""
    got, expected = _curve(rows, after), _curve(reference, after)
    assert len(got) == len(expected) == STEPS - after + 1
    differences = [abs(x - y) / abs(y) for x, y in zip(got, expected)]
    assert max(differences[:10]) < EARLY_TOLERANCE and max(differences) < CURVE_TOLERANCE


def _recording(calls: list, checkpoint_path) -> dict:
    """Callbacks for `train` that note each call; save_checkpoint writes the state at RESUME_STEP, as a
    checkpoint file holds it (states hold live tensors, so it is written when given)."""

    def save(state):
        calls.append("save_checkpoint")
        if state.step == RESUME_STEP:
            torch.save(state.to_dict(), checkpoint_path)

    return {
        "log": lambda row: calls.append(("log", row)),
        "progress": lambda row: calls.append("progress"),
        "save_checkpoint": save,
        "final_weights": lambda weights: calls.append("final_weights"),
        "save_snapshot": lambda state: calls.append("save_snapshot"),
    }


def _rows(calls: list) -> list[dict]:
    return [call[1] for call in calls if isinstance(call, tuple)]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The reference: one process, the whole batch at once; its checkpoint at RESUME_STEP."""
    spec, corpus = _spec(checkpoint_every=1e-9)
    setup_process(CPU, spec.train.threads)  # once for this process, as sweep does before it trains
    calls, path = [], tmp_path_factory.mktemp("one") / "checkpoint.pt"
    train(spec, corpus, CPU, **_recording(calls, path), snapshot_steps=frozenset({RESUME_STEP}))
    return _rows(calls), path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, out, single_checkpoint) -> None:
    """One of 2 ranks, set up as torchrun would: a fresh DDP run (micro-batches of 256 tokens, 2 per
    rank per step, so no_sync is taken) saving its checkpoint, a run resumed from the checkpoint one
    process saved, and one at an absurd learning rate. Each rank's callback calls and results are
    written to rank{rank}.pt."""
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    assert distributed.init_from_env() == (rank, 2, rank)
    spec, corpus = _spec(checkpoint_every=1e-9, micro_batch_tokens=256)
    setup_process(CPU, spec.train.threads)
    fresh, resumed = [], []
    result = train(
        spec,
        corpus,
        distributed.device_for_rank(CPU),
        **_recording(fresh, out / "ddp-checkpoint.pt"),
        snapshot_steps=frozenset({RESUME_STEP}),
    )
    state = TrainState.from_dict(torch.load(single_checkpoint, weights_only=True))
    train(spec, corpus, CPU, **_recording(resumed, out / "never-written.pt"), resume=state)  # starts past it
    wild = dataclasses.replace(spec.train, lr=50.0, grad_clip=0.0, warmup=0.0)
    diverged = train(dataclasses.replace(spec, train=wild), corpus, CPU)
    outcomes = [(run.status, run.steps, run.loss, run.train_loss, run.reason) for run in (result, diverged)]
    torch.save({"fresh": fresh, "resumed": resumed, "outcomes": outcomes}, out / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(one_process, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_rank_main, args=(_free_port(), out, one_process[1]), nprocs=2)
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in (0, 1)], out / "ddp-checkpoint.pt"


def test_micro_batches_accumulate_the_unsplit_gradient_and_loss():
    """One batch of 32 windows as 4 micro-batches of 8: the gradient and the mean loss of the whole
    batch. Measured relative differences (of the gradient's norm, and of the loss) 1.5e-7 and 8.7e-8;
    the tolerance is 1e-6. A loss left unscaled would be 4 times the gradient."""
    spec, corpus = _spec()

    def gradient(micro_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        model = GPT(spec.shape)
        x, y = get_batch(corpus.train, 32, spec.shape.seq_len, torch.Generator().manual_seed(0), CPU)
        loss = accumulate_gradients(model, x, y, micro_rows, CPU, torch.float32)
        return loss, torch.cat([p.grad.flatten() for p in model.parameters()])

    (whole_loss, whole), (split_loss, split) = gradient(32), gradient(8)
    assert (split - whole).norm() / whole.norm() < 1e-6
    assert abs(split_loss - whole_loss) / whole_loss < 1e-6


def test_micro_batches_draw_the_unsplit_curve(one_process):
    """Batch 1024 as 4 micro-batches of 256 tokens: every logged training loss and the final
    validation loss of 40 fp32 steps. Measured: first 10 within 1.9e-7, all within 2.7e-4."""
    spec, corpus = _spec(micro_batch_tokens=256)
    rows = []
    train(spec, corpus, CPU, log=rows.append)
    _assert_same_curve(rows, one_process[0])


@pytest.mark.slow
def test_two_ddp_processes_draw_the_one_process_curve(one_process, two_processes):
    """DDP on 2 ranks, each 2 micro-batches of its 512 tokens, against one process taking all 1024 at
    once: every logged training loss (the mean over ranks) and the final validation loss. Measured:
    first 10 within 1.9e-7, all within 2.7e-4 (2.7e-4 too without micro-batches)."""
    [rank0, _], _ = two_processes
    _assert_same_curve(_rows(rank0["fresh"]), one_process[0])


def test_only_rank_0_calls_back_and_every_rank_returns_the_same_outcome(two_processes):
    """Same losses on both ranks, and a diverging run stops on both at the same step."""
    [rank0, rank1], _ = two_processes
    assert rank1["fresh"] == rank1["resumed"] == []
    assert rank1["outcomes"] == rank0["outcomes"]
    assert [outcome[0] for outcome in rank0["outcomes"]] == ["done", "diverged"]
    called = {call if isinstance(call, str) else call[0] for call in rank0["fresh"]}
    assert called == set(CALLBACKS)


def test_a_ddp_checkpoint_resumes_in_one_process_and_one_process_checkpoint_under_ddp(one_process, two_processes):
    """Each resumed run continues the curve of the run that saved the checkpoint. The DDP checkpoint
    holds the unwrapped model's tensors, no `module.` prefix."""
    reference, _ = one_process
    [rank0, _], ddp_checkpoint = two_processes
    state = torch.load(ddp_checkpoint, weights_only=True)
    spec, corpus = _spec()
    assert state["step"] == RESUME_STEP and state["model"].keys() == GPT(spec.shape).state_dict().keys()
    rows = []
    train(spec, corpus, CPU, log=rows.append, resume=TrainState.from_dict(state))
    _assert_same_curve(rows, _rows(rank0["fresh"]), after=RESUME_STEP)
    _assert_same_curve(_rows(rank0["resumed"]), reference, after=RESUME_STEP)


def test_batches_split_over_ranks_tile_the_one_process_batch():
    tokens = torch.arange(1000, dtype=torch.int32)
    generators = [torch.Generator().manual_seed(0) for _ in range(3)]
    whole_x, whole_y = get_batch(tokens, 8, 16, generators[0], CPU)
    shares = [get_batch(tokens, 8, 16, generators[1 + rank], CPU, rank, 2) for rank in (0, 1)]
    assert torch.equal(torch.cat([x for x, _ in shares]), whole_x)
    assert torch.equal(torch.cat([y for _, y in shares]), whole_y)
    assert all(torch.equal(g.get_state(), generators[0].get_state()) for g in generators[1:])


def test_batches_that_do_not_split_evenly_are_refused_with_the_reason():
    spec, _ = _spec()
    assert micro_batch_rows(spec, 1) == 32 and micro_batch_rows(spec, 2) == 16
    with pytest.raises(SweepError, match="batch_tokens: 1024 is not divisible by 3 processes × data.seq_len"):
        micro_batch_rows(spec, 3)
    odd = dataclasses.replace(spec, train=dataclasses.replace(spec.train, micro_batch_tokens=16))
    with pytest.raises(SweepError, match="micro_batch_tokens: 16 must be a multiple of data.seq_len"):
        micro_batch_rows(odd, 1)
    with pytest.raises(ConfigError, match="train.micro_batch_tokens: 384 does not divide batch_tokens"):
        _spec(micro_batch_tokens=384)
    with pytest.raises(ConfigError, match="train.ddp: expected true or false"):
        _spec(ddp="yes")


def test_micro_batching_and_ddp_keep_the_run_id():
    spec, _ = _spec()
    assert _spec(micro_batch_tokens=256, ddp=True)[0].run_id == spec.run_id


def test_outside_torchrun_nothing_is_distributed(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.init_from_env() == (0, 1, 0)
    assert not distributed.is_distributed() and distributed.is_writer()
    assert distributed.world_size() == 1 and distributed.device_for_rank(CPU) == CPU
