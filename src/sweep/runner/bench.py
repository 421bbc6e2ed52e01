"""`sweep bench`: how fast this machine trains, against its own measured limit, in one process.

1. The matmul peak of the device, measured (fp32 and bf16 on CPU, bf16 on CUDA) before, during and
   after the ladder, the fastest measurement kept: MFU is taken against what this machine does, never
   a datasheet number.
2. Each model of a ladder trained for a few steps through the functions `engine.train` calls
   (get_batch, forward_backward, optimizer_step), each timed: tokens/s, FLOP/s under the 6N + attention
   convention (PaLM App. B), MFU against the peak of the dtype used, and the step split.
3. On a CPU with several cores, the same shapes trained the way `sweep run` trains a sweep: one
   single-thread worker process per core, all stepping at once (`runner.packing`). Their summed
   tokens/s is what the machine delivers during a sweep; MFU is that over the whole device's peak.
4. Optionally the same shapes through the classic eager loop of `sweep.model.reference`, in fp32 and with
   bf16 autocast.
5. The fixed costs of a run: a fresh interpreter importing the training code, loading the corpus,
   building a model and its optimizer.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import queue
import statistics
import subprocess
import sys
import time

import torch

from sweep.config import DataConfig, ModelConfig, RunSpec, TrainConfig, shape_for_params
from sweep.data import Corpus, get_batch, load_corpus
from sweep.engine import (
    compiles,
    configure_device,
    forward_backward,
    make_optimizer,
    optimizer_step,
    resolve_dtype,
    setup_process,
    step_module,
)
from sweep.engine.device import cpu_description, fastest, matmul_peaks, sync
from sweep.model.flops import flops_per_token, param_counts
from sweep.model.gpt import GPT
from sweep.model.ops import MATMUL_ATTENTION_MAX_SEQ
from sweep.model.shape import ModelShape
from sweep.runner.packing import packing

CPU_LADDER = (1e5, 3e5, 1e6, 3e6, 1e7)
CUDA_LADDER = (1e6, 1e7, 3e7, 1e8, 3e8)


def choices(device: torch.device, shapes: list[ModelShape], workers: int, compiling: bool | str) -> dict:
    """Every speed choice a run on `device` takes, as `sweep run` takes it."""
    dtype = resolve_dtype("auto", device)
    taken = {
        "dtype": "bf16" if dtype == torch.bfloat16 else "fp32",
        "compile": compiles(compiling, device),
        "pool": {"workers": workers, "threads_each": packing(shapes, device, workers)[1]},
    }
    if device.type == "cpu":
        taken.update(
            attention=f"two matmuls around a softmax up to T = {MATMUL_ATTENTION_MAX_SEQ}, SDPA beyond",
            flush_denormals=True,
            allocator="freed memory kept in glibc's heap (engine.memory.keep_freed_memory)",
        )
    else:
        taken.update(attention="SDPA (flash)", tf32=True)
    return taken


def ladder(device: torch.device) -> list[ModelShape]:
    """The shapes benchmarked: the params rule of the configs, at byte vocabulary."""
    if device.type == "cuda":
        config, seq_len = ModelConfig(params=(1,), head_dim=64, aspect_ratio=64), 1024
        targets = CUDA_LADDER
    else:
        config, seq_len = ModelConfig(params=(1,)), 256
        targets = CPU_LADDER
    return [shape_for_params(int(n), config, seq_len=seq_len, vocab_size=256) for n in targets]


def bench_shape(
    shape: ModelShape,
    corpus: Corpus,
    device: torch.device,
    dtype_name: str,
    batch_tokens: int,
    seconds: float,
    compiling: bool | str = "auto",
) -> dict:
    """Train `shape` for about `seconds` after two warm-up steps; medians per step. `compiling` is a
    `train.compile` setting; compiling happens in the first warm-up step, which `compile_s` reports
    (its time less a timed step's)."""
    spec = RunSpec(
        "bench",
        shape,
        batch_tokens,
        0,
        TrainConfig(batch_tokens=batch_tokens, lr=3e-3, dtype=dtype_name),
        DataConfig(seq_len=shape.seq_len),
    )
    dtype = resolve_dtype(dtype_name, device)
    configure_device(device)
    torch.manual_seed(0)
    model = GPT(shape).to(device)
    step_model, compiled = step_module(model, compiling, device)
    optimizer = make_optimizer(model, spec, device)
    generator = torch.Generator().manual_seed(0)
    batch_size = batch_tokens // shape.seq_len
    split = {"batch": [], "forward_backward": [], "optimizer": []}
    start, step, first_step_s = time.perf_counter(), 0, 0.0
    while step < 2 or time.perf_counter() - start < seconds or len(split["batch"]) < 3:
        marks = [time.perf_counter()]
        x, y = get_batch(corpus.train, batch_size, shape.seq_len, generator, device)
        sync(device)
        marks.append(time.perf_counter())
        forward_backward(step_model, x, y, device, dtype)
        sync(device)
        marks.append(time.perf_counter())
        optimizer_step(model, optimizer, spec.lr, spec.train.grad_clip)
        sync(device)
        marks.append(time.perf_counter())
        if step == 0:
            first_step_s = marks[-1] - marks[0]
        if step >= 2:
            for name, begin, end in zip(split, marks, marks[1:]):
                split[name].append(end - begin)
        step += 1
    step_s = {name: statistics.median(times) for name, times in split.items()}
    tokens_per_s = batch_tokens / sum(step_s.values())
    return {
        "shape": shape.name,
        "params": param_counts(shape).non_embedding,
        "dtype": "bf16" if dtype == torch.bfloat16 else "fp32",
        "compiled": compiled,
        "compile_s": first_step_s - sum(step_s.values()) if compiled else None,
        "tokens_per_s": tokens_per_s,
        "flops_per_s": tokens_per_s * flops_per_token(shape, "6n_attn"),
        "step_s": step_s,
    }


def _pool_worker(
    shapes: list[ModelShape],
    data: dict,
    dtype_name: str,
    batch_tokens: int,
    seconds: float,
    compiling: bool | str,
    barrier,
    results,
) -> None:
    """One single-thread worker: each shape in turn, starting together with the other workers."""
    setup_process(torch.device("cpu"), 1)
    corpus = load_corpus(DataConfig(**data))
    for index, shape in enumerate(shapes):
        barrier.wait()
        results.put(
            (index, bench_shape(shape, corpus, torch.device("cpu"), dtype_name, batch_tokens, seconds, compiling))
        )


def pool_rows(
    shapes: list[ModelShape],
    data: DataConfig,
    workers: int,
    batch_tokens: int,
    seconds: float,
    compiling: bool | str = "auto",
) -> list[dict]:
    """Each shape trained by `workers` single-thread processes at once (spawned, as `run_pool` does):
    per shape, the summed tokens/s and FLOP/s and the step split of the slowest worker."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers), context.Queue()
    processes = [
        context.Process(
            target=_pool_worker,
            args=(shapes, dataclasses.asdict(data), "auto", batch_tokens, seconds, compiling, barrier, results),
            daemon=True,
        )
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    per_shape: list[list[dict]] = [[] for _ in shapes]
    received = 0
    while received < workers * len(shapes):
        try:
            index, row = results.get(timeout=1.0)
        except queue.Empty:
            if any(process.exitcode not in (None, 0) for process in processes):
                raise RuntimeError("a bench worker process died; see its error above") from None
            continue
        per_shape[index].append(row)
        received += 1
    for process in processes:
        process.join()
    rows = []
    for worker_rows in per_shape:
        slowest = min(worker_rows, key=lambda row: row["tokens_per_s"])
        rows.append(
            {
                **slowest,
                "tokens_per_s": sum(row["tokens_per_s"] for row in worker_rows),
                "flops_per_s": sum(row["flops_per_s"] for row in worker_rows),
            }
        )
    return rows


def reference_tokens_per_s(shape: ModelShape, corpus: Corpus, batch_tokens: int, bf16: bool) -> float:
    """tokens/s of the classic loop (`sweep.model.reference`) on the same shape, CPU only."""
    from sweep.model import reference

    seconds = reference.step_seconds(
        shape.n_layers,
        shape.d_model,
        shape.n_heads,
        corpus.train,
        batch_tokens=batch_tokens,
        seq_len=shape.seq_len,
        steps=5,
        bf16=bf16,
    )
    return batch_tokens / seconds


def overheads(shape: ModelShape, corpus: Corpus, runs: int = 6) -> dict:
    """Fixed costs a run can pay: a fresh interpreter importing the training code (median of 3),
    loading the stdlib corpus, building the model and optimizer, and the per-run overhead inside a
    worker (`worker_overhead`)."""
    starts = []
    for _ in range(3):
        begin = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import sweep.runner"], check=True)
        starts.append(time.perf_counter() - begin)
    begin = time.perf_counter()
    load_corpus(DataConfig())
    corpus_s = time.perf_counter() - begin
    begin = time.perf_counter()
    model = GPT(shape)
    make_optimizer(model, RunSpec("bench", shape, 1, 0, TrainConfig(lr=1e-3), DataConfig()), torch.device("cpu"))
    build_s = time.perf_counter() - begin
    process_s = statistics.median(starts)
    return {
        "process_start_s": process_s,
        "corpus_load_s": corpus_s,
        "model_build_s": build_s,
        "per_run_s": process_s + build_s,
        "in_worker_per_run_s": worker_overhead(shape, corpus, runs),
    }


def worker_overhead(shape: ModelShape, corpus: Corpus, runs: int) -> float:
    """Median seconds a worker spends on a run besides its training steps, after its first run: `runs`
    one-step runs of `shape` trained as a pool worker trains each task (`runner.task._train_task`: claim,
    status, metrics, model and optimizer, validation set, one evaluation, result, release), into a
    temporary store, less the median time of such a step (`bench_shape`)."""
    import tempfile

    from sweep.runner.plan import Options, Task
    from sweep.runner.task import _train_task
    from sweep.store import Store

    batch = 8 * shape.seq_len
    walls = []
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as root:
        store = Store(root)
        for seed in range(runs + 1):
            spec = RunSpec(
                "bench",
                shape,
                batch,
                seed,
                TrainConfig(batch_tokens=batch, lr=1e-3, schedule="cosine", evals=1),
                DataConfig(seq_len=shape.seq_len, val_tokens=shape.seq_len),
            )
            store.register(spec)
            begin = time.perf_counter()
            record = _train_task(
                Task("run", spec), store, corpus, torch.device("cpu"), Options(), lambda: None, lambda row: None
            )
            assert record["status"] == "done", record
            walls.append(time.perf_counter() - begin)
    step_s = sum(bench_shape(shape, corpus, torch.device("cpu"), "auto", batch, seconds=0.5)["step_s"].values())
    return statistics.median(walls[1:]) - step_s


def run_bench(
    device: torch.device,
    reference: bool,
    seconds: float = 3.0,
    threads: int = 0,
    workers: int = 0,
    compiling: bool | str = "auto",
) -> dict:
    """Everything `sweep bench` reports, as the JSON document it prints. `workers` 0 = as `sweep run`
    packs a sweep of many runs: one single-thread worker per core on CPU. `compiling` as `train.compile`."""
    setup_process(device, threads)  # the peak is measured under the settings training runs with
    shapes = ladder(device)
    # The pooled measurement is CPU-only; otherwise the same packing rule as `sweep run`.
    workers = 1 if device.type == "cuda" else packing(shapes, device, workers)[0]
    peak_samples = [matmul_peaks(device, seconds=2.0)]
    corpus = load_corpus(DataConfig())
    batch_tokens = 65536 if device.type == "cuda" else 8192
    pooled = (
        pool_rows(shapes, DataConfig(), workers, batch_tokens, seconds, compiling)
        if workers > 1
        else [None] * len(shapes)
    )
    sizes = []
    for shape, pool in zip(shapes, pooled):
        peak_samples.append(matmul_peaks(device, seconds=0.5))
        row = bench_shape(shape, corpus, device, "auto", batch_tokens, seconds, compiling)
        if pool is not None:
            row["pool"] = {
                "workers": workers,
                "tokens_per_s": pool["tokens_per_s"],
                "flops_per_s": pool["flops_per_s"],
                "step_s": pool["step_s"],
            }
        for key, bf16 in (("reference_tokens_per_s", False), ("reference_bf16_tokens_per_s", True)):
            row[key] = (
                reference_tokens_per_s(shape, corpus, batch_tokens, bf16)
                if reference and device.type == "cpu"
                else None
            )
        sizes.append(row)
    peak_samples.append(matmul_peaks(device, seconds=2.0))
    peak = fastest(peak_samples)
    for row, pool in zip(sizes, pooled):
        row["mfu"] = row["flops_per_s"] / peak[row["dtype"]] if peak.get(row["dtype"]) else None
        if pool is not None:
            row["pool"]["mfu"] = pool["flops_per_s"] / peak[pool["dtype"]]
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu": cpu_description(),
        "choices": choices(device, shapes, workers, compiling),
        "threads": torch.get_num_threads(),
        "workers": workers,
        "peak_flops": peak,
        "peak_flops_samples": peak_samples,
        "sizes": sizes,
        "overhead_s": overheads(ladder(torch.device("cpu"))[-1], corpus),
    }
