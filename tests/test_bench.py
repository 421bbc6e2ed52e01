"""`sweep bench` pieces on a tiny shape: structure and arithmetic, not speed (speed is the benchmark's job)."""

import math

import pytest
import torch

from sweep.config import DataConfig
from sweep.data import load_corpus
from sweep.engine.device import fastest, matmul_peak
from sweep.model.flops import flops_per_token
from sweep.model.shape import ModelShape
from sweep.runner.bench import bench_shape, pool_rows


@pytest.mark.slow
def test_bench_shape_reports_rates_consistent_with_its_step_split(email_glob):
    corpus = load_corpus(DataConfig(corpus=email_glob, seq_len=32, val_fraction=0.2))
    shape = ModelShape(1, 32, 2, 128, 256, 32)
    row = bench_shape(shape, corpus, torch.device("cpu"), "fp32", batch_tokens=512, seconds=0.1)
    assert row["dtype"] == "fp32" and set(row["step_s"]) == {"batch", "forward_backward", "optimizer"}
    assert row["tokens_per_s"] == 512 / sum(row["step_s"].values())
    assert row["flops_per_s"] == row["tokens_per_s"] * flops_per_token(shape, "6n_attn")
    assert row["compiled"] is False and row["compile_s"] is None  # 'auto' compiles on CUDA only


@pytest.mark.slow
def test_compiling_is_reported_apart_from_the_timed_steps(email_glob):
    """--compile: the compile happens in a warm-up step, reported as compile_s, never in tokens/s."""
    corpus = load_corpus(DataConfig(corpus=email_glob, seq_len=32, val_fraction=0.2))
    shape = ModelShape(1, 16, 2, 64, 256, 32)
    torch._dynamo.reset()  # no compiled code left from another test: this call must compile
    row = bench_shape(shape, corpus, torch.device("cpu"), "fp32", batch_tokens=1024, seconds=0.1, compiling=True)
    assert row["compiled"] is True and row["compile_s"] > 0
    assert row["tokens_per_s"] == 1024 / sum(row["step_s"].values())
    assert max(row["step_s"].values()) < row["compile_s"]


def test_matmul_peak_is_a_measured_positive_rate():
    assert matmul_peak(torch.device("cpu"), torch.float32, 64, seconds=0.05) > 1e6
    assert matmul_peak(torch.device("cpu"), torch.float32, (128, 32, 16), seconds=0.05) > 1e6


def test_mfu_is_taken_against_the_fastest_peak_measurement():
    """A peak measured while a neighbour was busy must not inflate MFU; a dtype never measured stays None."""
    samples = [{"bf16": 645e9, "fp32": 188e9}, {"bf16": 835e9, "fp32": 167e9}]
    assert fastest(samples) == {"bf16": 835e9, "fp32": 188e9}
    assert fastest([{"bf16": 1e15, "fp32": None}, {"bf16": 9e14, "fp32": None}]) == {"bf16": 1e15, "fp32": None}


@pytest.mark.slow
def test_pool_rows_sum_the_workers_that_trained_at_once(email_glob):
    """The pooled measurement (what `sweep run` does with one worker per core): each shape is trained by
    every worker, and the row's rates are the workers' sums."""
    data = DataConfig(corpus=email_glob, seq_len=32, val_fraction=0.2)
    shapes = [ModelShape(1, 32, 2, 128, 256, 32), ModelShape(2, 32, 2, 128, 256, 32)]
    rows = pool_rows(shapes, data, workers=2, batch_tokens=512, seconds=0.1)
    assert [row["shape"] for row in rows] == [shape.name for shape in shapes]
    for row, shape in zip(rows, shapes):
        slowest = 512 / sum(row["step_s"].values())
        assert row["tokens_per_s"] >= 2 * slowest * (1 - 1e-9)
        assert row["flops_per_s"] == pytest.approx(row["tokens_per_s"] * flops_per_token(shape, "6n_attn"))


def test_references_come_from_the_package_in_fp32_and_bf16(email_glob, tmp_path, monkeypatch):
    """--reference must work from an installed wheel: nothing is loaded from the source tree's scripts/."""
    from sweep.runner.bench import reference_tokens_per_s

    monkeypatch.chdir(tmp_path)
    corpus = load_corpus(DataConfig(corpus=email_glob, seq_len=32, val_fraction=0.2))
    shape = ModelShape(1, 32, 2, 128, 256, 32)
    assert reference_tokens_per_s(shape, corpus, 512, bf16=False) > 0
    assert reference_tokens_per_s(shape, corpus, 512, bf16=True) > 0


def test_bench_names_the_cpu_and_every_choice_it_takes():
    from sweep.engine.device import ISA_FLAGS, cpu_description
    from sweep.runner.bench import choices

    cpu = cpu_description()
    assert cpu["model"] and set(cpu["isa"]) <= set(ISA_FLAGS) and cpu["cores"] >= 1
    shape = ModelShape(1, 32, 2, 128, 256, 32)
    taken = choices(torch.device("cpu"), [shape, shape], workers=2, compiling="auto")
    assert taken["dtype"] in ("bf16", "fp32") and taken["compile"] is False and taken["pool"]["workers"] == 2
    assert "512" in taken["attention"] and taken["flush_denormals"] is True


def test_the_in_worker_overhead_is_measured_on_real_runs(email_glob):
    from sweep.runner.bench import worker_overhead

    corpus = load_corpus(DataConfig(corpus=email_glob, seq_len=32, val_fraction=0.2))
    overhead = worker_overhead(ModelShape(1, 32, 2, 128, 256, 32), corpus, runs=2)
    assert math.isfinite(overhead) and overhead > 0  # seconds, whatever the machine's speed or load
