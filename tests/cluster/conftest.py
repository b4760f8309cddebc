"""A real single-node Slurm and a real two-node Ray on this machine, started once per test session.

Run with ``pytest -m cluster tests/cluster`` (``.ci/run``'s cluster stage). Without Slurm or Ray
installed the tests skip, except under ``CI=true`` where they fail.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "slurm_cluster.sh"


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (the cluster stage of .ci/run installs it)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def cluster_env(tmp_path_factory):
    """The cache and run index that kdzoo_isolated gives each test, set for the whole session: Slurm jobs
    and Ray workers (started once) must find the teachers the tests' benches trained."""
    base = tmp_path_factory.getbasetemp()
    os.environ["KDZOO_CACHE"] = str(base / "kdzoo-cache")
    os.environ["KDZOO_INDEX"] = str(base / "kdzoo-index.sqlite")
    return base


@pytest.fixture(scope="session")
def slurm(cluster_env, tmp_path_factory):
    """slurmctld + slurmd + munged (tests/cluster/slurm_cluster.sh); yields the state folder."""
    if shutil.which("slurmctld") is None or shutil.which("munged") is None:
        _missing("Slurm is not installed: apt-get install slurm-wlm munge")
    pytest.importorskip("submitit", reason="pip install 'kdzoo[slurm]'")
    state = tmp_path_factory.mktemp("slurm")
    up = subprocess.run([str(SCRIPT), "up", str(state)], capture_output=True, text=True, timeout=120)
    if up.returncode != 0:
        pytest.fail(f"the test Slurm cluster did not start: {up.stderr[-2000:]}")
    os.environ["SLURM_CONF"] = str(state / "slurm.conf")
    yield state
    subprocess.run([str(SCRIPT), "down", str(state)], timeout=60)
    os.environ.pop("SLURM_CONF", None)


@pytest.fixture(scope="session")
def ray_cluster(cluster_env):
    """A Ray head without CPUs (the driver's node: no cell runs there) and one worker node with two."""
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        _missing("Ray is not installed: pip install 'kdzoo[ray]'")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throw-away local cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()
