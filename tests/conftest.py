"""Shared fixtures: one embedded PostgreSQL per test run, a fresh database per
test, and the real service (real actors, real HTTP on loopback) in a thread."""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from persistence.embedded import start_embedded_postgres
from server import Service, configure_logging

TOKEN = "test-token"


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def pg_dsn(tmp_path_factory) -> Iterator[str]:
    configure_logging(os.environ.get("INVSYNC_TEST_LOG_FORMAT", "json"))
    server = start_embedded_postgres(tmp_path_factory.mktemp("pg"))
    yield server.dsn
    server.stop()


@pytest.fixture
def database_url(pg_dsn: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f"CREATE DATABASE {name}"))
    yield with_database(pg_dsn, name)
    asyncio.run(run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def service_args(**overrides) -> argparse.Namespace:
    values = dict(
        host="127.0.0.1",
        port=0,
        shards=4,
        hot_threshold=200,
        hot_idle_seconds=30,
        pool_size=10,
        request_timeout=30.0,
        data_dir=Path("/nonexistent"),
        database_url=None,
    )
    values.update(overrides)
    return argparse.Namespace(**values)


class RunningService:
    """The service on its own event loop in a background thread."""

    def __init__(self, dsn: str, **overrides) -> None:
        self.dsn = dsn
        self.loop = asyncio.new_event_loop()
        self.service = Service(service_args(**overrides), dsn, "external", TOKEN)
        self._thread = threading.Thread(target=self.loop.run_forever, name="service-loop", daemon=True)
        self._thread.start()
        self.call(self.service.start(), timeout=60)
        self.url = f"http://127.0.0.1:{self.service.port}"
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.call(self.service.stop(), timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def make_service(database_url: str):
    started: list[RunningService] = []

    def make(**overrides) -> RunningService:
        svc = RunningService(database_url, **overrides)
        started.append(svc)
        return svc

    yield make
    for svc in started:
        if svc.loop.is_running():
            svc.stop()


@pytest.fixture
def service(make_service) -> RunningService:
    return make_service()


async def query(dsn: str, sql: str, *args):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()
