"""CPU used by a server under test, split into its own processes and PostgreSQL's.

On a shared 2-core box "orders/s" alone hides where the time goes; CPU per
order for the server process and for the database tells whether a system is
CPU-bound and on which side.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import psutil

# (pid, create_time) names a process unambiguously even if a pid is reused.
ProcessKey = tuple[int, float]


class CpuSplit(msgspec.Struct):
    server_s: float
    database_s: float


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


class ServerCpuMeter:
    """Counts CPU of ``server_pid`` and its descendants, and of the PostgreSQL
    cluster in ``data_dir`` (found by its command line: when pg_ctl starts it,
    the postmaster is not a descendant of the server)."""

    def __init__(self, server_pid: int, data_dir: Path) -> None:
        self._server_pid = server_pid
        self._data_dir = str(data_dir.resolve())
        self._before: dict[ProcessKey, tuple[str, float]] = {}

    def _postmasters(self) -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["name", "cmdline"]):
            cmdline = process.info["cmdline"] or []
            if process.info["name"] == "postgres" and any(self._data_dir in arg for arg in cmdline):
                found.append(process)
        return found

    def _snapshot(self) -> dict[ProcessKey, tuple[str, float]]:
        snapshot: dict[ProcessKey, tuple[str, float]] = {}
        roots: list[psutil.Process] = []
        try:
            roots.append(psutil.Process(self._server_pid))
        except psutil.NoSuchProcess:
            pass
        roots.extend(self._postmasters())
        for root in roots:
            try:
                family = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for process in family:
                try:
                    side = "database" if process.name() == "postgres" else "server"
                    snapshot[(process.pid, process.create_time())] = (side, _cpu_s(process))
                except psutil.NoSuchProcess:
                    continue
        return snapshot

    def start(self) -> None:
        self._before = self._snapshot()

    def stop(self) -> CpuSplit:
        """CPU seconds used since ``start()`` (processes that exited meanwhile are missed)."""
        used = {"server": 0.0, "database": 0.0}
        for key, (side, cpu) in self._snapshot().items():
            used[side] += cpu - self._before.get(key, (side, 0.0))[1]
        return CpuSplit(server_s=used["server"], database_s=used["database"])
