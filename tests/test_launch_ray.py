"""`sweep.launch.ray_cluster`: workers as Ray tasks on a real local Ray cluster, which `run_on_ray`
starts itself; a worker process killed -9 is retried by Ray and its run taken over from its
checkpoint."""

import importlib.util
import os
import signal
import sys
import threading

import pytest
from conftest import assert_trained_once, claimed_mid_run, losses, register

from sweep.config import ExecutorConfig
from sweep.errors import SweepError
from sweep.launch.ray_cluster import connect, run_on_ray

# Read by ray when it is first imported: a cluster on the loopback address only (on Linux ray would
# listen on the machine's network address), and no usage report sent anywhere.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs ray: pip install -e '.[test]'")


@pytest.mark.slow
@needs_ray
def test_a_ray_worker_killed_mid_run_is_retried_and_nothing_is_lost(
    tmp_path, sweep_config, reference_losses, monkeypatch
):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # no cluster to join: run_on_ray starts one and stops it
    store = tmp_path / "store"
    register(sweep_config, store)
    killed = []

    def kill_one_worker_mid_run() -> None:
        run_dir, pid = claimed_mid_run(store)
        os.kill(pid, signal.SIGKILL)
        killed.append(run_dir)

    killer = threading.Thread(target=kill_one_worker_mid_run, daemon=True)
    killer.start()
    codes = run_on_ray(store, "tiny", ExecutorConfig(workers=2, threads=1))
    killer.join(timeout=1)
    assert killed, "a worker was killed mid-run"
    assert codes == [0, 0], "the killed task was retried and ended like the other"
    assert losses(store) == reference_losses
    assert_trained_once(store, *killed)
    import ray

    assert not ray.is_initialized(), "the cluster run_on_ray started is shut down"


class FakeRay:
    """Ray's init as `connect` uses it: no cluster runs here unless one was started."""

    def __init__(self):
        self.calls = []

    def is_initialized(self) -> bool:
        return False

    def init(self, address=None):
        self.calls.append(address)
        if address is not None:
            raise ConnectionError("Could not find any running Ray instance.")


def test_connect_joins_a_running_cluster_or_starts_one_only_when_no_address_is_given():
    ray = FakeRay()
    assert connect(ray, "") is True and ray.calls == ["auto", None], "started here: shut down at the end"
    with pytest.raises(SweepError, match="executor.address: no Ray cluster at head:6379"):
        connect(FakeRay(), "head:6379")


def test_without_ray_the_launcher_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SweepError, match=r"--executor ray needs ray: pip install 'sweep\[ray\]'"):
        run_on_ray(tmp_path, "tiny", ExecutorConfig())
