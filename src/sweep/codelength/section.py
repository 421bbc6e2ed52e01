"""The compression section of `sweep fit`, for sweeps trained in `data.order: epoch`: the best
online (prequential) code length against gzip, xz and zstd on the very bytes that run coded, and the
two-part description length with, for each D, the N that minimises it (`laws.description_length`).

A run in `data.order: epoch` codes the first D targets of its seed's epoch order (`data.epoch_targets`),
in that order, so the classical compressors get exactly those bytes, laid end to end as the model
read them. Windows of seq_len bytes in a shuffle: a compressor's long-range matches across windows
are the ones the model cannot use either, since it sees one window at a time.

Compressing 8 MB with xz -9 and zstd -19 takes about 20 s, so each run's results are kept in
`<store>/.coding/<run id>.json` and read back by later fits: they describe the bytes the run coded,
which a later change to the corpus does not change. A store that cannot be written is not an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sweep.codelength.compressors import compressed_bits
from sweep.codelength.frontier import BF16_BITS, best_codes, compression_table, frontier, plot_frontier
from sweep.config import spec_from_dict
from sweep.data import epoch_targets, load_corpus
from sweep.errors import SweepError
from sweep.store import read_json, walk, write_json

CACHE_DIR = ".coding"  # under the store root, which `store.walk` skips as it does every dot directory


@dataclass(frozen=True)
class CodingTable:
    sweep: str
    run_id: str  # the run with the least prequential bits per byte, whose bytes were compressed
    tokens: int  # D: the bytes coded
    table: pd.DataFrame | None  # code, bpb, note; None when the bytes could not be read back
    why: str | None = None


def coding_tables(source: str | Path, runs: pd.DataFrame) -> list[CodingTable]:
    """One table per sweep of `runs` that has runs with a prequential bpb, from the store at `source`."""
    tables = []
    coded = runs[runs["prequential_bpb"].notna()] if "prequential_bpb" in runs.columns else runs.iloc[:0]
    for sweep, sweep_runs in coded.groupby("sweep", sort=True):
        best = sweep_runs.loc[sweep_runs["prequential_bpb"].idxmin()]
        label = f"LM, prequential ({best['run_id']})"
        try:
            compressors = _compressed(Path(source), best["run_id"])
        except SweepError as err:
            tables.append(CodingTable(sweep, best["run_id"], int(best["tokens"]), None, str(err)))
            continue
        tables.append(
            CodingTable(
                sweep,
                best["run_id"],
                int(best["tokens"]),
                compression_table(float(best["prequential_bpb"]), label, compressors),
            )
        )
    return tables


def _compressed(source: Path, run_id: str) -> dict[str, float | None]:
    """{compressor: bits per byte} on the bytes `run_id` coded: from its cache file, else computed and kept."""
    directory = _run_directory(source, run_id)
    cache = directory.parent.parent / CACHE_DIR / f"{run_id}.json"
    cached = read_json(cache) if cache.is_file() else None
    if cached is not None and isinstance(cached.get("bpb"), dict):
        return cached["bpb"]
    bpb = {result.name: result.bpb for result in compressed_bits(_coded_bytes(directory))}
    try:
        cache.parent.mkdir(exist_ok=True)
        write_json(cache, {"run_id": run_id, "bpb": bpb})
    except OSError:
        pass  # a read-only store: computed again next time
    return bpb


def _run_directory(source: Path, run_id: str) -> Path:
    directory = next((run.path for run in walk(source) if run.kind == "run" and run.path.name == run_id), None)
    if directory is None:
        raise SweepError(f"{run_id}: its directory is not in {source}")
    return directory


def coded_bytes(source: Path, run_id: str) -> bytes:
    """The bytes run `run_id` of the store at `source` coded, read back from its corpus. SweepError if
    its directory or corpus is gone or the corpus is no longer the text it trained on."""
    return _coded_bytes(_run_directory(source, run_id))


def _coded_bytes(directory: Path) -> bytes:
    run_id = directory.name
    record, result = read_json(directory / "spec.json"), read_json(directory / "result.json")
    if record is None or result is None:
        raise SweepError(f"{run_id}: its spec.json or result.json is not readable")
    spec = spec_from_dict(record)
    store_root = directory.parent.parent
    corpus = load_corpus(spec.data, cache=store_root)
    if corpus.sha256 != spec.corpus_sha256:
        raise SweepError(f"{run_id}: the corpus {spec.data.corpus} is no longer the text the run trained on")
    if corpus.tokenizer["kind"] != "bytes":
        raise SweepError(f"{run_id}: its tokens are not bytes; compressors are compared on byte-level corpora")
    targets = epoch_targets(corpus.train, spec.shape.seq_len, spec.seed, result["tokens"])
    return targets.astype(np.uint8).tobytes()


def compression_section(source: str | Path, runs: pd.DataFrame, bits_per_param: float = BF16_BITS) -> dict | None:
    """`sweep fit`'s compression section as JSON, or None when no run has a prequential code length.
    `runs`: the store's (or a table's) runs, already narrowed to one sweep where asked; the coding
    tables need the store (the runs' corpora), a table gets the description lengths alone."""
    measured = _coded_sweeps(runs)
    if measured.empty:
        return None
    if Path(source).is_dir():
        tables = [_table_json(table) for table in coding_tables(source, measured)]
    else:
        tables = [{"why": "compressors need the runs' corpora: fit the run store, not a table"}]
    return {
        "bits_per_param": bits_per_param,
        "tables": tables,
        "codes": _records(best_codes(measured, bits_per_param)),
        "frontier": _records(frontier(measured, bits_per_param)),
    }


def write_frontier_plot(runs: pd.DataFrame, path: Path, bits_per_param: float = BF16_BITS) -> Path:
    return plot_frontier(_coded_sweeps(runs), path, bits_per_param)


def _coded_sweeps(runs: pd.DataFrame) -> pd.DataFrame:
    """The finished runs with a loss of the sweeps where some run has a prequential bpb (byte tokens,
    epoch order): other sweeps (a BPE one, say) have no bits per byte to add a model's size to."""
    done = runs[runs["status"] == "done"] if "status" in runs.columns else runs
    done = done[done["loss"].notna()]
    if "prequential_bpb" not in done.columns or not done["prequential_bpb"].notna().any():
        return done.iloc[:0]
    if "sweep" not in done.columns:  # a table of one sweep
        return done
    return done[done["sweep"].isin(done.loc[done["prequential_bpb"].notna(), "sweep"].unique())]


def _table_json(table: CodingTable) -> dict:
    rows = None if table.table is None else _records(table.table)
    return {"sweep": table.sweep, "run_id": table.run_id, "tokens": table.tokens, "rows": rows, "why": table.why}


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain JSON values: NaN becomes None."""
    return [
        {
            key: (
                None
                if isinstance(value, float) and not np.isfinite(value)
                else value.item()
                if isinstance(value, np.generic)
                else value
            )
            for key, value in row.items()
        }
        for row in frame.to_dict(orient="records")
    ]
