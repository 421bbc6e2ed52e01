"""The one walk over a store (`sweep.store.walk`): every reader finds the same runs and wsd trunks, in
path order, and nothing else: no dot-directory (.submitit, .coding), no stray file."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import tiny_config

from sweep.config import expand, parse_config
from sweep.errors import SweepError
from sweep.runner.export import tracked_runs
from sweep.store import RunDir, Store, load_runs, store_specs, walk
from sweep.store.status import read_status
from sweep.store.walk import directory_kind


@pytest.fixture
def store(tmp_path, email_glob):
    """Two sweeps registered and never trained: "tiny", wsd (4 branches of 2 trunks), and "flat",
    cosine (4 runs); beside them what runners, caches and hands leave: dot-directories holding
    copies of a spec, and stray files."""
    flat = tiny_config(email_glob, name="flat")
    flat["train"]["schedule"] = "cosine"
    specs = expand(parse_config(tiny_config(email_glob))) + expand(parse_config(flat))
    store = Store(tmp_path / "store")
    for spec in specs:
        store.register(spec)
    root, spec_text = store.root, (store.run_dir(specs[0]) / "spec.json").read_text()
    for hidden in (root / ".submitit" / "job", root / "tiny" / ".hidden-run", root / ".coding"):
        hidden.mkdir(parents=True)
        (hidden / "spec.json").write_text(spec_text)
    for stray in (root / "runs.csv", root / "tiny" / "notes.txt", root / "tiny" / "trunks" / "notes.txt"):
        stray.write_text("not a run\n")
    return store, specs


def found(runs) -> list[tuple[str, str, str]]:
    return [(run.path.name, run.sweep, run.kind) for run in runs]


def expected(store: Store, specs, sweep: str | None = None) -> list[tuple[str, str, str]]:
    """Every run and trunk directory of `specs`, sorted by path, as `found` lists them."""
    directories = {store.run_dir(spec): (spec.sweep, "run") for spec in specs}
    directories.update({store.trunk_dir(spec): (spec.sweep, "trunk") for spec in specs if spec.train.schedule == "wsd"})
    return [(path.name, *directories[path]) for path in sorted(directories) if sweep in (None, directories[path][0])]


def test_a_store_yields_each_run_and_trunk_in_path_order_and_nothing_else(store):
    store, specs = store
    everything = list(walk(store.root))
    assert found(everything) == expected(store, specs)
    assert len(everything) == 4 + 2 + 4
    assert all(".submitit" not in run.path.parts and ".hidden-run" not in run.path.parts for run in everything)
    assert found(walk(store.root, sweep="tiny")) == expected(store, specs, "tiny")
    assert found(walk(store.root, sweep="flat")) == expected(store, specs, "flat")


def test_an_unknown_sweep_names_the_sweeps_there(store):
    store, _ = store
    with pytest.raises(SweepError, match=r"--sweep: no sweep 'other' in .*; sweeps there: flat, tiny$"):
        list(walk(store.root, sweep="other"))
    with pytest.raises(SweepError, match="sweeps there: none"):
        store_specs(store.root / ".coding", "flat")


def test_a_sweeps_or_a_runs_own_directory_walks_as_itself(store, monkeypatch):
    store, specs = store
    branch = next(spec for spec in specs if spec.sweep == "tiny")
    paths = (store.root, store.root / "tiny", store.run_dir(branch), store.trunk_dir(branch))
    assert [directory_kind(path) for path in paths] == ["store", "sweep", "run", "run"]
    assert found(walk(store.root / "tiny")) == expected(store, specs, "tiny")
    assert list(walk(store.root / "tiny", sweep="flat")) == []
    assert list(walk(store.run_dir(branch))) == [RunDir(store.run_dir(branch), "tiny", "run")]
    assert list(walk(store.trunk_dir(branch))) == [RunDir(store.trunk_dir(branch), "tiny", "trunk")]
    monkeypatch.chdir(store.run_dir(branch))  # "." has no name: the sweep is the directory it is in
    assert list(walk(Path("."))) == [RunDir(Path("."), "tiny", "run")]
    monkeypatch.chdir(store.root / "tiny")
    assert found(walk(Path("."))) == expected(store, specs, "tiny")


def test_every_reader_finds_the_runs_the_walk_finds(store):
    store, specs = store
    runs = [run for run in walk(store.root) if run.kind == "run"]
    assert list(load_runs(store.root)["run_id"]) == [run.path.name for run in runs]
    assert [spec.run_id for spec in store_specs(store.root)] == [run.path.name for run in runs]
    assert [spec.run_id for spec in store_specs(store.root, "flat")] == [
        n for n, _, _ in expected(store, specs, "flat")
    ]
    assert store_specs(store.root / "tiny") == []  # a sweep's directory is no store: a runner would misplace its runs
    assert [(path, kind) for path, kind, _ in tracked_runs(store.root)] == [
        (run.path, "branch" if run.sweep == "tiny" and run.kind == "run" else run.kind) for run in walk(store.root)
    ]
    sweeps = read_status(store.root)["sweeps"]
    assert [(sweep["name"], sweep["runs"]["total"], sweep["trunks"]["total"]) for sweep in sweeps] == [
        ("flat", 4, 0),
        ("tiny", 4, 2),
    ]


def test_a_spec_file_that_is_no_spec_is_skipped_with_one_warning(store):
    store, specs = store
    broken, unreadable = [store.run_dir(spec) for spec in specs if spec.sweep == "flat"][:2]
    (broken / "spec.json").write_text(json.dumps({"sweep": "flat"}))
    (unreadable / "spec.json").write_text("{not json")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        specs_read = store_specs(store.root, "flat")
    assert [spec.run_id for spec in specs_read] == [
        name for name, _, _ in expected(store, specs, "flat") if name not in (broken.name, unreadable.name)
    ]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2, messages
    assert any(message.startswith(f"{broken / 'spec.json'}: not a run spec (") for message in messages)
    assert any(message.startswith(f"{unreadable / 'spec.json'}: unreadable (") for message in messages)


def test_importing_the_store_imports_neither_torch_nor_pandas():
    """Workers write runs and `sweep status` reads them without either; pandas comes with `load_runs`."""
    code = "import sys, sweep.store, sweep.store.status; print(sorted({'torch', 'pandas'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
