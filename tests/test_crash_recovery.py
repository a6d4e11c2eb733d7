"""A real crash: SIGKILL of a real `invsync serve` in the middle of a stream of
orders, a restart on the same data directory, and the durable truth checked."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil

from persistence.embedded import start_embedded_postgres
from tests.conftest import query
from tests.http_client import Client, run

TOKEN = "crash-token"
SKUS = [f"sku-{i}" for i in range(10)]
INITIAL = 100_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "INVSYNC_API_TOKEN": TOKEN, "INVSYNC_LOG_FORMAT": "json"}
    return subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--data-dir", str(data_dir), "--port", str(port), "--shards", "4"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "server exited"
            try:
                async with s.get(url + "/internal/ready") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("server not ready")


def invsync_check(data_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "server", "check", "--data-dir", str(data_dir)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sigkill_mid_stream_loses_no_acknowledged_order(tmp_path):
    data_dir = tmp_path / "data"
    log = tmp_path / "server.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    proc = start_server(data_dir, port, log)
    acknowledged: dict[str, tuple[str, int]] = {}
    unknown: dict[str, tuple[str, int]] = {}

    async def stream():
        await wait_ready(url, proc)
        async with Client(url, headers, connections=64) as c:
            for sku in SKUS:
                await c.set_stock(sku, INITIAL)
            stop_at = time.monotonic() + 60
            counter = iter(range(10**9))

            async def worker(w: int):
                while time.monotonic() < stop_at:
                    n = next(counter)
                    order_id, sku, qty = f"k-{n}", SKUS[n % len(SKUS)], 1 + n % 3
                    try:
                        status, _, _ = await c.order(order_id, [(sku, qty)])
                    except (aiohttp.ClientError, asyncio.TimeoutError):
                        unknown[order_id] = (sku, qty)
                        return
                    if status == 201:
                        acknowledged[order_id] = (sku, qty)
                    else:
                        unknown[order_id] = (sku, qty)

            async def killer():
                while len(acknowledged) < 1500:
                    await asyncio.sleep(0.01)
                proc.send_signal(signal.SIGKILL)

            await asyncio.gather(killer(), *(worker(w) for w in range(64)))

    run(stream())
    assert proc.wait(10) == -signal.SIGKILL
    assert len(acknowledged) >= 1500

    proc = start_server(data_dir, port, log)
    pg = None
    try:
        async def after_restart():
            await wait_ready(url, proc)
            async with Client(url, headers, connections=32) as c:
                found = await asyncio.gather(*(c.request("GET", f"/v1/orders/web/{o}") for o in acknowledged))
                # Replaying the orders whose answer was lost applies none of them twice.
                replays = await asyncio.gather(*(c.order(o, [line]) for o, line in unknown.items()))
                return found, replays

        found, replays = run(after_restart())
        assert all(status == 200 and body["status"] == "accepted" for status, body, _ in found), [
            (s, b) for s, b, _ in found if s != 200 or b["status"] != "accepted"][:3]
        assert all(status == 201 for status, _, _ in replays), [(s, b) for s, b, _ in replays if s != 201][:3]

        pg = start_embedded_postgres(data_dir)  # attaches to the running server
        stored = run(query(pg.dsn, "SELECT lines FROM orders WHERE status = 'accepted'"))
        import json

        taken = {sku: 0 for sku in SKUS}
        for row in stored:
            for line in json.loads(row["lines"]):
                taken[line["sku"]] += line["qty"]
        expected_total = sum(q for _, q in acknowledged.values()) + sum(q for _, q in unknown.values())
        assert sum(taken.values()) == expected_total
        stock = {r["sku"]: r["available"] for r in run(query(pg.dsn, "SELECT sku, available FROM stock"))}
        assert stock == {sku: INITIAL - taken[sku] for sku in SKUS}
        checked = invsync_check(data_dir)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "OK: every invariant holds" in checked.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        if pg is not None:
            pg.stop()
    # the clean stop took the embedded PostgreSQL down with it
    pgdata = str(data_dir / "pg")
    left = [p for p in psutil.process_iter(["name", "cmdline"]) if p.info["name"] == "postgres" and pgdata in " ".join(p.info["cmdline"] or [])]
    assert not left
