"""Run a server under test as a subprocess: start, wait until ready, stop cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import aiohttp

READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
LOG_TAIL_CHARS = 4000


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServerNotReady(RuntimeError):
    pass


class ServerProcess:
    """A server subprocess listening on ``host:port`` with a ``/internal/ready`` route.

    Used as ``async with``: entering starts it and waits until ready; leaving
    sends SIGINT and waits, escalating to SIGTERM then SIGKILL only if the
    server does not stop on its own (it owns an embedded PostgreSQL that must
    be shut down properly).
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        port: int,
        env: Mapping[str, str],
        host: str = "127.0.0.1",
        log_path: Path | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.host = host
        self.port = port
        self._extra_env = dict(env)
        self.log_path = log_path or Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.returncode if self._process else None

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return ""

    async def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                self.command,
                env={**os.environ, **self._extra_env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C in the benchmark's terminal must not
                # reach the server directly; we stop it ourselves, in order.
                start_new_session=True,
            )
        finally:
            log.close()
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        url = f"{self.base_url}/internal/ready"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise ServerNotReady(
                        f"{self.name} exited with {self._process.returncode} before it was ready:\n{self.log_tail()}"
                    )
                try:
                    async with session.get(url) as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    pass
                await asyncio.sleep(0.1)
        await self.stop()
        raise ServerNotReady(f"{self.name} not ready after {READY_TIMEOUT_S:.0f}s:\n{self.log_tail()}")

    async def stop(self) -> int | None:
        """Stop the server; returns its exit code."""
        process = self._process
        if process is None or process.poll() is not None:
            return process.returncode if process else None
        for signum, patience in ((signal.SIGINT, STOP_TIMEOUT_S), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            process.send_signal(signum)
            try:
                return await asyncio.to_thread(process.wait, patience)
            except subprocess.TimeoutExpired:
                continue
        return process.poll()

    async def __aenter__(self) -> ServerProcess:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
