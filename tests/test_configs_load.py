"""Every config shipped in configs/ loads, validates and expands into a grid."""

import pytest
from conftest import REPO

from sweep.config import expand, load_config

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def test_configs_are_shipped():
    assert CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_config_loads_and_expands(path):
    config = load_config(path)
    specs = expand(config)
    assert specs, path.name
    assert len({spec.run_id for spec in specs}) == len(specs)
