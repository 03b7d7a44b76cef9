"""The PostgreSQL cluster the bench starts for the 1,000,000-account row: it runs with the
settings docs/operations.md recommends, and leaves neither a process nor a file behind, even
when the run inside it fails."""

from __future__ import annotations

import psutil
import pytest

from bench.cluster import PRODUCTION_SETTINGS, Cluster, own_cluster
from bench.infra import Databases

pytestmark = pytest.mark.infrastructure  # it runs initdb and a server of its own


def _gone(cluster: Cluster) -> bool:
    return not psutil.pid_exists(cluster.postmaster_pid) and not cluster.data_directory.parent.exists()


async def test_the_own_cluster_serves_with_the_production_settings_and_is_gone_afterwards() -> None:
    with own_cluster() as cluster:
        databases = Databases(cluster.url, source="the bench's own cluster", postmaster_pid=cluster.postmaster_pid)
        described = await databases.describe()
        url = await databases.create("probe")  # the ledger's rows get databases of their own on it
        await databases.drop(url)
        assert psutil.Process(cluster.postmaster_pid).is_running()

    server = described.pop("server")
    assert server.startswith("the bench's own cluster (127.0.0.1:") and "PostgreSQL " in server
    assert described == PRODUCTION_SETTINGS  # as the server reports them: "2GB", "15min", "on", ...
    assert _gone(cluster)


def test_the_own_cluster_is_removed_when_the_run_inside_it_fails() -> None:
    with pytest.raises(RuntimeError, match="the run failed"), own_cluster() as cluster:
        assert psutil.Process(cluster.postmaster_pid).is_running()
        raise RuntimeError("the run failed")

    assert _gone(cluster)
