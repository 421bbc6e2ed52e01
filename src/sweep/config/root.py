"""The top of a sweep config: `SweepConfig` (its name, budgets, seeds, device and its sections) and the
`executor:` section, how `sweep run --executor slurm|ray` starts its workers. Where a run trains does
not change what it trains, so no field of the executor section enters a run id (`RunSpec` never holds it)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sweep.config import limits
from sweep.config.budgets import budgets, model_shapes
from sweep.config.sections import DEVICES, DataConfig, EvalConfig, ModelConfig, TrainConfig, need_into
from sweep.errors import shown

CLUSTERS = ("auto", "slurm", "local")
SBATCH_SETTING = re.compile(r"[A-Za-z][A-Za-z0-9_-]*=\S.*")


@dataclass(frozen=True)
class ExecutorConfig:
    """The `executor:` section: how `sweep run --executor slurm|ray` trains a sweep, as W `sweep
    worker`s started as batch jobs (submitit) or Ray tasks (`sweep.launch.slurm`, `.ray_cluster`).
    Where a run trains does not change what it trains: no field enters a run id (`RunSpec` never
    holds this section)."""

    workers: int = 2  # W: workers started, each one batch job or Ray task training one run at a time
    # submitit: 'slurm'; 'local' runs the jobs as processes of this machine (one box, tests); 'auto' is
    # slurm when sbatch is on PATH, else local.
    cluster: str = field(default="auto", metadata={"choices": CLUSTERS})
    partition: str = ""  # SLURM partition; '' = the cluster's default
    gpus_per_node: int = 0  # GPUs of each job (Ray: of each task); on CUDA a worker trains one run per GPU
    cpus_per_task: int = 1  # CPU cores of each job or Ray task
    mem_gb: float = 0.0  # memory of each job; 0 = the cluster's default
    # A job's time limit. A job that reaches it (or is preempted) is requeued by submitit, and its run
    # in flight resumes from its checkpoint in the next job.
    timeout_min: int = 60
    array_parallelism: int = 0  # jobs of the array running at once (sbatch --array=...%N); 0 = all W
    sbatch: tuple[str, ...] = ()  # more sbatch settings as 'key=value', e.g. ['qos=high', 'account=lab']
    address: str = ""  # Ray cluster to join; '' = the running one, else a new one on this machine
    device: str = field(default="auto", metadata={"choices": DEVICES})  # what each worker trains on
    threads: int = 0  # CPU threads of each worker's run; 0 = cpus_per_task

    def check(self, path: str, problems: list[str]) -> None:
        need = need_into(problems, f"{path}.")
        need(self.workers >= 1, f"workers: {shown(self.workers)} must be at least 1")
        need(self.workers <= limits.MAX_THREADS, f"workers: {shown(self.workers)} is more than {limits.MAX_THREADS}")
        need(
            not re.search(r"\s", self.partition), f"partition: {shown(self.partition)} must be one name, without spaces"
        )
        need(self.gpus_per_node >= 0, f"gpus_per_node: {shown(self.gpus_per_node)} must be 0 or positive")
        need(self.cpus_per_task >= 1, f"cpus_per_task: {shown(self.cpus_per_task)} must be at least 1")
        need(
            self.cpus_per_task <= limits.MAX_THREADS,
            f"cpus_per_task: {shown(self.cpus_per_task)} is more than {limits.MAX_THREADS}",
        )
        need(self.mem_gb >= 0, f"mem_gb: {shown(self.mem_gb)} must be 0 (the cluster's default) or positive")
        need(self.timeout_min >= 1, f"timeout_min: {shown(self.timeout_min)} must be at least 1 minute")
        need(
            self.array_parallelism >= 0,
            f"array_parallelism: {shown(self.array_parallelism)} must be 0 (all workers at once) or positive",
        )
        need(self.threads >= 0, f"threads: {shown(self.threads)} must be 0 (cpus_per_task) or positive")
        need(self.threads <= limits.MAX_THREADS, f"threads: {shown(self.threads)} is more than {limits.MAX_THREADS}")
        for i, setting in enumerate(self.sbatch):
            need(
                SBATCH_SETTING.fullmatch(setting) is not None,
                f"sbatch[{i}]: {shown(setting)} is not 'key=value' (an sbatch option without its dashes, e.g. qos=high)",
            )


_TOO_MANY_TOKENS = f"more than {limits.MAX_TOKENS:.0e} tokens, far beyond any training run; a typo?"


@dataclass(frozen=True)
class SweepConfig:
    name: str
    tokens: tuple[int, ...] = ()  # training-token budgets: an N × D grid ...
    flops: tuple[float, ...] = ()  # ... or compute budgets C: each size trains C / 6N tokens (IsoFLOP) ...
    tokens_per_param: tuple[float, ...] = ()  # ... or ratios r: each size trains r·N tokens
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    seeds: tuple[int, ...] = (0,)
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    device: str = field(default="auto", metadata={"choices": DEVICES})
    executor: ExecutorConfig = ExecutorConfig()  # only `sweep run --executor` reads it; in no run id

    def check(self, path: str, problems: list[str]) -> None:
        """Rules that span sections; runs only when every section built."""
        need = need_into(problems)
        need(
            bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name)),
            f"name: {shown(self.name)} must be letters, digits, '_', '-' or '.' (it names a directory)",
        )
        batch, seq_len = self.train.batch_tokens, self.data.seq_len
        shortest = self._shortest_budget(problems)
        if shortest is not None:  # engine.eval_steps spreads the evaluations over the steps
            steps = max(1, round(shortest / batch))
            need(
                self.train.evals <= steps,
                f"train.evals: {shown(self.train.evals)} is more than the {steps} optimizer "
                f"steps of the shortest run ({shortest:,} tokens); at most one per step",
            )
        need(bool(self.seeds), "seeds: give at least one seed")
        need(len(set(self.seeds)) == len(self.seeds), "seeds: repeated seed")
        for i, seed in enumerate(self.seeds):
            need(0 <= seed < limits.SEED_LIMIT, f"seeds[{i}]: {shown(seed)} must be at least 0 and below 2**63")
        need(batch % seq_len == 0, f"train.batch_tokens: {batch} must be a multiple of data.seq_len ({seq_len})")
        micro = self.train.micro_batch_tokens
        need(
            micro % seq_len == 0,
            f"train.micro_batch_tokens: {micro} must be a multiple of data.seq_len ({seq_len}): "
            "micro-batches are whole sequences",
        )

    def _shortest_budget(self, problems: list[str]) -> int | None:
        """Every budget positive and at least one batch; the fewest tokens a run trains, when they all are."""
        need = need_into(problems)
        batch, before = self.train.batch_tokens, len(problems)
        for i, tokens in enumerate(self.tokens):
            if tokens <= 0:
                problems.append(f"tokens[{i}]: {tokens:g} must be positive")
            else:
                need(tokens >= batch, f"tokens[{i}]: {tokens:g} is less than one batch (train.batch_tokens = {batch})")
                need(tokens <= limits.MAX_TOKENS, f"tokens[{i}]: {tokens:g} is {_TOO_MANY_TOKENS}")
        for i, flops in enumerate(self.flops):
            need(flops > 0, f"flops[{i}]: {flops:g} must be positive")
        for i, ratio in enumerate(self.tokens_per_param):
            need(ratio > 0, f"tokens_per_param[{i}]: {ratio:g} must be positive")
        if len(problems) > before or batch % self.data.seq_len:
            return None
        pairs = budgets(self)
        if self.flops or self.tokens_per_param:  # each size's tokens derive from its budget
            axis = "flops" if self.flops else "tokens_per_param"
            for shape, tokens in pairs:
                need(
                    tokens >= batch,
                    f"{axis}: {shape.name} gets {tokens:,} tokens from its smallest budget, less than "
                    f"one batch ({batch}); raise the budget or drop the size",
                )
                need(tokens <= limits.MAX_TOKENS, f"{axis}: {shape.name} gets {tokens:.3g} tokens, {_TOO_MANY_TOKENS}")
        return min((tokens for _, tokens in pairs), default=None) if len(problems) == before else None

    def check_memory(self, memory_bytes: int | None, problems: list[str]) -> None:
        """Each size's memory from its shape alone (`limits.memory_problem`), before any tensor exists.
        Activations are one micro-batch's when `train.micro_batch_tokens` splits the batch."""
        if memory_bytes is None:
            return
        need = need_into(problems)
        axis = "sizes" if self.model.sizes else "params"
        vocab_size = (
            self.data.vocab_size or 256
        )  # text is bytes; an auto-sized .bin vocabulary is known only from the data
        for i, shape in enumerate(model_shapes(self, vocab_size)):
            problem = limits.memory_problem(
                shape, self.device, self.train.batch_tokens, self.train.micro_batch_tokens, memory_bytes
            )
            need(problem is None, f"model.{axis}[{i}]: {shape.name} {problem}")
