"""The result.json of a task: what a run that ended by itself, or one that raised, records, with
where and with what it was trained."""

from __future__ import annotations

import dataclasses
import os
import platform
import time
import traceback

import torch

import sweep
from sweep.config import RunSpec
from sweep.data import Corpus, bits_per_byte
from sweep.engine import RunResult, distributed
from sweep.model.flops import training_flops
from sweep.store import spec_columns


def environment(corpus: Corpus, device: torch.device) -> dict:
    """Where and with what a run was trained."""
    device_name = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    )
    return {
        "device": device.type,
        "device_name": device_name,
        "threads": torch.get_num_threads(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "processes": distributed.world_size(),  # the DDP processes that trained it (torchrun)
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "sweep": sweep.__version__},
        "corpus": {
            "source": corpus.source,
            "sha256": corpus.sha256,
            "train_tokens": len(corpus.train),
            "val_tokens": len(corpus.val),
            "train_documents": corpus.train_documents,
            "val_documents": corpus.val_documents,
            "malformed_records": corpus.malformed,
            "tokenizer": corpus.tokenizer,
        },
        "finished_at": time.time(),
    }


def result_record(spec: RunSpec, result: RunResult, corpus: Corpus, device: torch.device) -> dict:
    """The result.json of a run that ended by itself (done or diverged)."""
    fields = dataclasses.asdict(result)
    loss = fields.pop("loss")
    return {
        **spec_columns(spec),
        **fields,
        "tokens_target": spec.tokens,
        "tokens": result.tokens,
        **training_flops(spec.shape, result.tokens),
        "loss": loss,
        "bpb": bits_per_byte(loss, corpus, spec.shape.seq_len, spec.data.val_tokens) if loss is not None else None,
        "epochs": result.tokens / len(corpus.train),
        # Byte tokens: a token is a byte. Other tokenizers' training bytes per token are not tracked.
        "prequential_bpb": (
            result.prequential_bits / result.tokens
            if result.prequential_bits is not None and corpus.tokenizer["kind"] == "bytes"
            else None
        ),
        **environment(corpus, device),
    }


def failure_record(spec: RunSpec, err: BaseException, corpus: Corpus, device: torch.device) -> dict:
    return {
        **spec_columns(spec),
        "status": "failed",
        "reason": f"{type(err).__name__}: {err}",
        "traceback": "".join(traceback.format_exception(err)),
        **environment(corpus, device),
    }
