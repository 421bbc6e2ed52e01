"""The laws read a table of runs and nothing else of sweep: importing every module of `sweep.laws` in a
fresh interpreter loads neither torch nor typer, nor the packages that train and store runs."""

import json
import subprocess
import sys

HEAVY = ("torch", "typer", "sweep.config", "sweep.data", "sweep.store", "sweep.engine")
# All of sweep the laws may import besides themselves: the errors and the run table's contract.
ALLOWED = {"sweep", "sweep.errors", "sweep.columns"}

IMPORT_EVERY_LAWS_MODULE = """
import importlib, pkgutil
import sweep.laws
for module in pkgutil.walk_packages(sweep.laws.__path__, "sweep.laws."):
    importlib.import_module(module.name)
"""


def modules_loaded_by(code: str) -> set[str]:
    """sys.modules after running `code` in a fresh interpreter."""
    report = "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code + report], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_laws_import_nothing_of_sweep_but_its_errors_and_columns():
    loaded = modules_loaded_by(IMPORT_EVERY_LAWS_MODULE)
    assert "sweep.laws.forms.chinchilla" in loaded and "sweep.laws.plots" in loaded  # every module was imported
    assert not loaded & set(HEAVY)
    of_sweep = {name for name in loaded if name.split(".")[0] == "sweep"}
    assert {name for name in of_sweep if not name.startswith("sweep.laws")} <= ALLOWED


def test_the_form_names_the_cli_offers_are_the_forms_there_are():
    from sweep.laws import FORM_NAMES
    from sweep.laws.forms.joint import FORMS

    assert tuple(FORMS) == FORM_NAMES
