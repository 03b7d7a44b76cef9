"""A PostgreSQL cluster of the bench's own, configured as docs/operations.md recommends for
production: ``initdb`` in a temporary directory, started with ``pg_ctl`` on a free port,
stopped and removed at the end, even when the run fails.

The machine's default server is sized for a developer (128 MB of ``shared_buffers`` on Debian),
smaller than the ledger's hot set among a million accounts; a figure measured there says more
about its buffer pool than about the ledger (see docs/performance.md, "1b is not flat").
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

PRODUCTION_SETTINGS = {
    # The hot set in memory: the accounts table and its key (about 150 MB among a million
    # accounts), the tails of the journal, postings, inbox and outbox. Backends then no longer
    # evict dirty pages themselves, one write per movement on a pool smaller than that.
    "shared_buffers": "2GB",
    # Checkpoints by time, not forced by WAL volume (the default 1 GB, under sustained ingestion):
    # every checkpoint makes the next change of each page log a full page image.
    "max_wal_size": "8GB",
    "checkpoint_timeout": "15min",
    # Full page images, which durability needs, compressed: fewer WAL bytes to write and archive.
    "wal_compression": "lz4",
    # A posted payment survives a crash of the server: the commit waits for its WAL on disk.
    # Written out so that nobody trades these away for speed.
    "synchronous_commit": "on",
    "fsync": "on",
    "full_page_writes": "on",
    # WAL archiving and point-in-time recovery (docs/operations.md, section 8) need it.
    "wal_level": "replica",
    # Every service instance holds up to pool_size + max_overflow connections (deploy/compose.yaml).
    "max_connections": "200",
}
"""The server settings docs/operations.md recommends for production, each with why; the bench's
own cluster runs with exactly these."""

DEBIAN_BINARIES = Path("/usr/lib/postgresql")


@dataclass(frozen=True)
class Cluster:
    url: str
    """SQLAlchemy URL of its ``postgres`` database."""
    postmaster_pid: int
    data_directory: Path


def binaries() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: the one ``initdb`` on PATH lives in,
    else Debian's newest ``/usr/lib/postgresql/<version>/bin``."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    versions = [path for path in DEBIAN_BINARIES.glob("*/bin") if (path / "initdb").exists()]
    if not versions:
        raise FileNotFoundError(f"no initdb on PATH nor under {DEBIAN_BINARIES}/<version>/bin")
    return max(versions, key=lambda path: int(re.sub(r"\D", "", path.parent.name) or 0))


@contextmanager
def own_cluster(settings: dict[str, str] = PRODUCTION_SETTINGS) -> Iterator[Cluster]:
    """A new cluster with ``settings``, listening on 127.0.0.1 (trust, as the machine's server
    here) and on a socket in its own directory; gone when the block ends."""
    bin_dir = binaries()
    owner = _server_owner()
    base = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
    data = base / "data"
    postmaster: psutil.Process | None = None
    try:
        if owner is not None:  # initdb refuses to run as root: the cluster belongs to postgres
            os.chown(base, owner.pw_uid, owner.pw_gid)
        _as(base, owner, [str(bin_dir / "initdb"), "--pgdata", str(data), "--username", "postgres",
                          "--auth", "trust", "--encoding", "UTF8", "--no-instructions"])
        port = _free_port()
        options = [f"-c {name}={value}" for name, value in
                   {**settings, "listen_addresses": "127.0.0.1", "port": str(port),
                    "unix_socket_directories": str(base)}.items()]
        _as(base, owner, [str(bin_dir / "pg_ctl"), "start", "--pgdata", str(data), "--wait", "--timeout", "120",
                          "--log", str(base / "server.log"), "-o", " ".join(options)])
        postmaster = psutil.Process(int((data / "postmaster.pid").read_text().split()[0]))
        yield Cluster(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres", postmaster.pid, data)
    finally:
        try:
            if (data / "postmaster.pid").exists():  # started, even if pg_ctl gave up waiting
                _as(base, owner, [str(bin_dir / "pg_ctl"), "stop", "--pgdata", str(data), "--mode", "fast", "--wait"])
                if postmaster is not None:  # pg_ctl is done when the pid file is gone; the process may trail it
                    postmaster.wait(timeout=60)
        finally:
            shutil.rmtree(base, ignore_errors=True)


def _server_owner() -> pwd.struct_passwd | None:
    """Who runs the server: ``postgres`` when we are root, else we ourselves (None)."""
    return pwd.getpwnam("postgres") if os.geteuid() == 0 else None


def _as(cwd: Path, owner: pwd.struct_passwd | None, command: Sequence[str]) -> None:
    """Run ``command`` in ``cwd`` (the server's owner may not enter ours) as ``owner`` (None:
    as we are), failing with its output."""
    prefix = ["runuser", "-u", owner.pw_name, "--"] if owner is not None else []
    completed = subprocess.run([*prefix, *command], capture_output=True, text=True, check=False, cwd=cwd,
                               stdin=subprocess.DEVNULL)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({completed.returncode}): "
                           f"{completed.stdout[-2000:]}{completed.stderr[-2000:]}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
