"""Trackers and export, read back from the files they write: TensorBoard events through TensorBoard's
own reader, W&B offline runs from their .wandb record log, tables through pandas, each compared with
the store's metrics.jsonl and result.json."""

import io
import json
import os
import shutil
import struct
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import run_dirs, tiny_config
from typer.testing import CliRunner

from sweep import load_runs
from sweep.cli import app
from sweep.config import expand, parse_config, spec_from_dict
from sweep.data import load_corpus, stdlib_root
from sweep.errors import ConfigError
from sweep.launch.lines import PlainReporter
from sweep.runner import run_local
from sweep.runner.trackers import TrackedRun, Trackers
from sweep.store import Store, read_metrics

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module", autouse=True)
def wandb_sandbox(tmp_path_factory):
    """W&B's own files in a temporary directory and its server unreachable, so nothing leaves the
    machine whatever the environment says; WANDB_MODE unset, so the default (offline) is what is
    tested. At the end the W&B service this process started is shut down, and none may be left."""
    home = tmp_path_factory.mktemp("wandb-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("WANDB_MODE", raising=False)
        patch.delenv("WANDB_API_KEY", raising=False)
        patch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
        for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
            patch.setenv(name, str(home))
        yield
    if sys.modules.get("wandb") is not None:
        sys.modules["wandb"].teardown()
    assert not _wandb_children(), "a W&B service process outlived the tests"


def _wandb_children() -> list[str]:
    """Command lines of this process's children that are W&B's (wandb-core and what it starts)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == os.getpid() and "wandb" in cmdline:
            found.append(cmdline)
    return found


def small_config(email_glob: str, **train) -> dict:
    """One size, two wsd budgets: a trunk and two branches, 8 and 16 steps."""
    raw = tiny_config(email_glob)
    raw["model"]["sizes"] = raw["model"]["sizes"][:1]
    raw["train"].update(train)
    return raw


@pytest.fixture(scope="module")
def email_glob_module():
    """conftest's email_glob, for module-scoped fixtures."""
    return str(stdlib_root() / "email" / "**" / "*.py")


@pytest.fixture(scope="module")
def tracked_store(tmp_path_factory, email_glob_module):
    """The small sweep trained once with both trackers, through the CLI."""
    root = tmp_path_factory.mktemp("tracked")
    config = root / "sweep.yaml"
    config.write_text(json.dumps(small_config(email_glob_module)))
    result = invoke("run", config, "--store", root / "store", "--workers", "1", "--log", "wandb,tensorboard")
    assert result.exit_code == 0, result.output
    return root / "store"


def tracked_dirs(store: Path) -> list[Path]:
    """Every run's and every wsd trunk's directory: each is one tracker run."""
    return run_dirs(store / "tiny") + sorted((store / "tiny" / "trunks").iterdir())


# --- reading what the trackers wrote ----------------------------------------------------------------


def tensorboard_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """(step, value) of every scalar tag in the event files of `log_dir`, read by TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def wandb_records(path: Path):
    """The protobuf records of a .wandb file: W&B's LevelDB-style log (a 7-byte ':W&B' header, then
    32 KiB blocks of chunks, each with a 7-byte header: crc32, length, type full/first/middle/last)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, block, pending = 7, 32768, b""
    while position + 7 <= len(data):
        room = block - position % block
        if room < 7:  # a block's tail too short for a header is padding
            position += room
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if length == 0 and kind == 0:
            position += room
            continue
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # full, last
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def _key(item) -> str:
    """A history or summary item's key: W&B's own (_step, _runtime) come as a one-part nested key."""
    return item.key or "/".join(item.nested_key)


def wandb_run(run_dir: Path) -> dict:
    """The one offline W&B run under `run_dir`/wandb: its run record, config, history rows, summary."""
    offline = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, offline
    (log,) = offline[0].glob("*.wandb")
    run, history, summary = None, [], {}
    for record in wandb_records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
        elif kind == "history":
            history.append({_key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "summary":
            summary.update({_key(item): json.loads(item.value_json) for item in record.summary.update})
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    return {"run": run, "config": config, "history": history, "summary": summary}


def assert_tensorboard_matches(tracked_dir: Path, log_dir: Path) -> None:
    """Every metrics number at its step, each step once, in float32; the final loss and bpb."""
    rows = read_metrics(tracked_dir)
    scalars = tensorboard_scalars(log_dir)
    for key in ("train_loss", "val_loss", "lr", "tokens"):
        expected = [(row["step"], row[key]) for row in rows if key in row]
        assert [step for step, _ in scalars[key]] == [step for step, _ in expected], key
        assert [value for _, value in scalars[key]] == pytest.approx([value for _, value in expected], rel=1e-6)
    result = json.loads((tracked_dir / "result.json").read_text())
    assert scalars["final/loss"] == [(result["steps"], pytest.approx(result["loss"], rel=1e-6))]
    assert scalars["final/bpb"][0][1] == pytest.approx(result["bpb"], rel=1e-6)


def assert_wandb_matches(tracked_dir: Path, run_dir: Path, kind: str) -> None:
    """One run named and grouped as the store's, the spec as config, each metrics row as a history row."""
    rows, logged = read_metrics(tracked_dir), wandb_run(run_dir)
    spec = json.loads((tracked_dir / ("trunk.json" if kind == "trunk" else "spec.json")).read_text())
    assert (logged["run"].run_id, logged["run"].display_name) == (tracked_dir.name, tracked_dir.name)
    assert (logged["run"].run_group, logged["run"].job_type) == ("tiny", kind)
    assert logged["config"]["shape"] == spec["shape"] and logged["config"]["seed"] == spec["seed"]
    assert [row["_step"] for row in logged["history"]] == [row["step"] for row in rows]
    assert [row.get("val_loss") for row in logged["history"]] == [row.get("val_loss") for row in rows]
    assert [row["train_loss"] for row in logged["history"]] == [row["train_loss"] for row in rows]
    result = json.loads((tracked_dir / "result.json").read_text())
    assert logged["summary"]["loss"] == result["loss"] and logged["summary"]["status"] == "done"


def kind_of(tracked_dir: Path) -> str:
    return "trunk" if tracked_dir.parent.name == "trunks" else "branch"


# --- train.log and --log ----------------------------------------------------------------------------


def test_trackers_are_not_part_of_a_runs_identity(email_glob):
    plain = expand(parse_config(small_config(email_glob)))
    tracked = expand(parse_config(small_config(email_glob, log=["tensorboard", "wandb", "wandb"])))
    assert [s.run_id for s in tracked] == [s.run_id for s in plain]
    assert [s.trunk_id for s in tracked] == [s.trunk_id for s in plain]
    assert tracked[0].train.log == ("tensorboard", "wandb")
    assert spec_from_dict(json.loads(json.dumps(tracked[0].to_dict()))) == tracked[0]  # a list read back, a tuple
    with pytest.raises(ConfigError, match=r"train\.log\[0\]: 'mlflow' is not one of wandb, tensorboard"):
        parse_config(small_config(email_glob, log=["mlflow"]))


def test_an_unknown_log_value_exits_2_and_writes_nothing(tmp_path, write_config, email_glob):
    result = invoke(
        "run", write_config(small_config(email_glob)), "--store", tmp_path / "store", "--log", "wandb,mlflow"
    )
    assert result.exit_code == 2
    assert "--log: 'mlflow' is not a tracker; choose from wandb, tensorboard" in result.output
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("how", [("--log", "wandb"), ("--set", "train.log=[wandb]")])
def test_a_missing_tracker_package_names_its_extra_before_anything_is_written(
    tmp_path, write_config, email_glob, monkeypatch, how
):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now raises ImportError
    result = invoke("run", write_config(small_config(email_glob)), "--store", tmp_path / "store", *how)
    assert result.exit_code == 2
    where = "--log" if how[0] == "--log" else "train.log"
    assert f"{where}: wandb needs the wandb package: pip install 'sweep[wandb]'" in result.output
    assert not (tmp_path / "store").exists()


# --- live tracking ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_tensorboard_events_hold_every_metrics_row_of_each_run_and_trunk(tracked_store):
    for tracked_dir in tracked_dirs(tracked_store):
        assert len(list((tracked_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
        assert_tensorboard_matches(tracked_dir, tracked_dir / "tensorboard")


def test_wandb_offline_runs_hold_config_history_and_summary(tracked_store):
    for tracked_dir in tracked_dirs(tracked_store):
        assert_wandb_matches(tracked_dir, tracked_dir, kind_of(tracked_dir))
    branch = run_dirs(tracked_store / "tiny")[0]
    assert read_metrics(branch)[0]["step"] == 1, "a branch's tracker run holds its trunk's rows too"


class StopAt(PlainReporter):
    """Ctrl-C at a given step of the first attempt, as a user would press it."""

    def __init__(self, step: int | None):
        super().__init__(io.StringIO())
        self.step = step

    def run_progress(self, task, row):
        if row["step"] == self.step:
            raise KeyboardInterrupt


def train_in_process(email_glob: str, store: Path, reporter, **train):
    """A single cosine run of 8 steps with both trackers, through `executors.run_local`."""
    raw = small_config(email_glob, schedule="cosine", log=["wandb", "tensorboard"], **train)
    raw["tokens"] = ["8192"]
    config = parse_config(raw)
    corpus = load_corpus(config.data)
    specs = expand(config, corpus.sha256, corpus.vocab_size)
    return run_local(specs, Store(store), corpus, torch.device("cpu"), reporter), Store(store).run_dir(specs[0])


def test_a_resumed_run_keeps_logging_and_its_trackers_hold_each_step_once(tmp_path, email_glob):
    """Interrupted at step 5 (checkpoint at 4), resumed: the trackers hold steps 1-8 once each, the
    rows metrics.jsonl holds, and one W&B offline run (the interrupted attempt's is replaced)."""
    stopped, run_dir = train_in_process(email_glob, tmp_path / "store", StopAt(5), checkpoint_every=1e-6)
    assert stopped.interrupted and (run_dir / "checkpoint.pt").exists()
    assert [row["step"] for row in read_metrics(run_dir)] == [1, 2, 3, 4, 5]
    resumed, _ = train_in_process(email_glob, tmp_path / "store", StopAt(None), checkpoint_every=1e-6)
    assert resumed.ok and json.loads((run_dir / "status.json").read_text())["attempts"] == 2
    assert [row["step"] for row in read_metrics(run_dir)] == list(range(1, 9))
    assert_tensorboard_matches(run_dir, run_dir / "tensorboard")
    assert_wandb_matches(run_dir, run_dir, "run")


def test_a_tracker_that_fails_mid_run_is_dropped_and_training_goes_on(tmp_path, email_glob, monkeypatch):
    from torch.utils.tensorboard import SummaryWriter

    calls = []

    def full_disk(self, *args, **kwargs):
        calls.append(args[0])
        if len(calls) > 10:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(SummaryWriter, "add_scalar", full_disk)
    with pytest.warns(RuntimeWarning, match="train.log: tensorboard failed for .*No space left") as caught:
        outcome, run_dir = train_in_process(email_glob, tmp_path / "store", StopAt(None))
    assert outcome.ok and len(outcome.done) == 1
    assert sum("tensorboard failed" in str(w.message) for w in caught) == 1, "warned once"
    assert len(calls) == 11, "dropped after its first failure"
    assert [row["step"] for row in read_metrics(run_dir)] == list(range(1, 9))
    assert_wandb_matches(run_dir, run_dir, "run")  # the other tracker is untouched


def test_trackers_call_each_tracker_in_turn_and_drop_one_that_raises(tmp_path):
    seen = []

    class Good:
        def __init__(self, run):
            seen.append(("open", run.name))

        def log(self, row):
            seen.append(("log", row["step"]))

        def finish(self, record):
            seen.append(("finish", record["status"]))

        def close(self):
            seen.append(("close",))

    class Broken(Good):
        def log(self, row):
            raise ValueError("service gone")

    run = TrackedRun("r", "tiny", "run", {}, tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trackers = Trackers(("a", "b"), run, kept=[{"step": 1}], openers={"a": Good, "b": Broken})
        trackers.log({"step": 2})
        trackers.finish({"status": "done"})
    assert [str(w.message) for w in caught] == [
        "train.log: b failed for r (ValueError: service gone); training goes on without it"
    ]
    assert seen == [("open", "r"), ("open", "r"), ("log", 1), ("close",), ("log", 2), ("finish", "done")]


# --- export -----------------------------------------------------------------------------------------


@pytest.fixture
def plain_store(tracked_store, tmp_path):
    """The tracked store as a store trained without trackers: every tracker file removed."""
    store = tmp_path / "plain"
    shutil.copytree(tracked_store, store)
    for tracker_dir in [
        *store.glob("tiny/*/tensorboard"),
        *store.glob("tiny/*/wandb"),
        *store.glob("tiny/trunks/*/tensorboard"),
        *store.glob("tiny/trunks/*/wandb"),
    ]:
        shutil.rmtree(tracker_dir)
    return store


def missing_as_none(frame: pd.DataFrame) -> pd.DataFrame:
    """A CSV cannot tell None from NaN, so both read as missing."""
    return frame.astype(object).where(frame.notna(), None)


@pytest.mark.parametrize("to", ["csv", "parquet"])
def test_export_table_reads_back_as_load_runs(plain_store, tmp_path, to):
    out = tmp_path / "out" / f"runs.{to}"
    assert invoke("export", plain_store, "--to", to, "--out", out).exit_code == 0
    read = pd.read_csv(out) if to == "csv" else pd.read_parquet(out)
    pd.testing.assert_frame_equal(missing_as_none(read), missing_as_none(load_runs(plain_store)), check_dtype=False)
    assert invoke("export", plain_store, "--to", to).exit_code == 0  # the default: beside the runs
    assert (plain_store / f"runs.{to}").is_file()
    assert len(load_runs(plain_store)) == len(read), "the table is no run of the store"


def test_export_tensorboard_into_the_store_twice_replaces_instead_of_duplicating(plain_store):
    for _ in range(2):
        result = invoke("export", plain_store, "--to", "tensorboard")
        assert result.exit_code == 0, result.output
    for tracked_dir in tracked_dirs(plain_store):
        assert len(list((tracked_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
        assert_tensorboard_matches(tracked_dir, tracked_dir / "tensorboard")


def test_export_wandb_to_out_twice_gives_one_run_per_store_run(plain_store, tmp_path):
    out = tmp_path / "wandb-export"
    for _ in range(2):
        assert invoke("export", plain_store, "--to", "wandb", "--out", out).exit_code == 0
    for tracked_dir in tracked_dirs(plain_store):
        assert not (tracked_dir / "wandb").exists(), "--out leaves the store as it was"
        assert_wandb_matches(tracked_dir, out / tracked_dir.relative_to(plain_store), kind_of(tracked_dir))


@pytest.mark.parametrize("to", ["csv", "tensorboard"])
def test_export_of_a_missing_store_exits_2_and_writes_nothing(tmp_path, to):
    result = invoke("export", tmp_path / "nothere", "--to", to, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "nothere: no run store there (not a directory); nothing written" in result.output
    assert sorted(tmp_path.iterdir()) == []


def test_export_parquet_without_pyarrow_names_the_extra(plain_store, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    result = invoke("export", plain_store, "--to", "parquet")
    assert result.exit_code == 2
    assert "--to parquet needs the pyarrow package: pip install 'sweep[parquet]'" in result.output
    assert not (plain_store / "runs.parquet").exists()


def test_a_tracker_failing_during_export_names_the_run_exits_1_and_exports_the_rest(plain_store, monkeypatch):
    from torch.utils.tensorboard import SummaryWriter

    first = tracked_dirs(plain_store)[0]
    real = SummaryWriter.add_scalar

    def full_disk_for_first(self, *args, **kwargs):
        if Path(self.log_dir).parent == first:
            raise OSError(28, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SummaryWriter, "add_scalar", full_disk_for_first)
    result = invoke("export", plain_store, "--to", "tensorboard")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"not exported, the tracker failed: {first.name}: OSError" in result.output
    for tracked_dir in tracked_dirs(plain_store)[1:]:
        assert_tensorboard_matches(tracked_dir, tracked_dir / "tensorboard")
