"""/internal/metrics: Prometheus exposition fed by the real service."""

from __future__ import annotations

import re

from tests.http_client import Client, run


def _value(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.MULTILINE)
    assert match, f"{name} {labels} not in metrics"
    return float(match.group(1))


def test_metrics_count_orders_commits_and_actors(service):
    async def scenario():
        async with Client(service.url, service.headers) as c:
            await c.set_stock("m", 2)
            await c.order("m1", [("m", 2)])
            await c.order("m1", [("m", 2)])
            await c.order("m2", [("m", 1)])
            async with c.session.get(service.url + "/internal/metrics") as r:
                return r.status, r.headers["Content-Type"], await r.text()

    status, content_type, text = run(scenario())
    assert status == 200 and content_type.startswith("text/plain")
    assert _value(text, "invsync_orders_total", channel="web", outcome="accepted") == 1
    assert _value(text, "invsync_orders_total", channel="web", outcome="refused") == 1
    assert _value(text, "invsync_orders_total", channel="web", outcome="replayed") == 1
    assert _value(text, "invsync_order_latency_seconds_count") == 3
    assert _value(text, "invsync_commit_batch_size_count") >= 3
    assert _value(text, "invsync_commit_latency_seconds_count") >= 3
    assert _value(text, "invsync_mailbox_depth", kind="shard") >= 0
    assert _value(text, "invsync_hot_sku_actors") == 0


def test_internal_endpoints_need_the_admin_token_when_set(make_service, monkeypatch):
    monkeypatch.setenv("INVSYNC_ADMIN_TOKEN", "admin-secret")
    service = make_service()

    async def scenario():
        async with Client(service.url, {}) as c:
            denied = await c.request("GET", "/internal/metrics")
            allowed = await c.request("GET", "/internal/metrics", headers={"Authorization": "Bearer admin-secret"})
            probe = await c.request("GET", "/internal/health")
            return denied, allowed, probe

    denied, allowed, probe = run(scenario())
    assert denied[0] == 401 and denied[1]["error"] == "unauthorized"
    assert allowed[0] == 200 and "invsync_orders_total" in allowed[1]
    assert probe[0] == 200


def test_status_reports_actors_orders_and_database(service):
    async def scenario():
        async with Client(service.url, service.headers) as c:
            await c.set_stock("st", 5)
            await c.order("st1", [("st", 1)])
            status, body, _ = await c.request("GET", "/internal/status")
            async with c.session.get(service.url + "/internal/") as r:
                page = await r.text()
            return status, body, r.status, page

    status, body, page_status, page = run(scenario())
    assert status == 200
    assert body["database"] == {"kind": "external", "reachable": True}
    assert body["orders"]["accepted"] == 1
    assert [s["name"] for s in body["actors"]["shards"]] == ["0", "1", "2", "3"]
    assert all(s["alive"] for s in body["actors"]["shards"])
    assert body["actors"]["hot_skus"] == [] and isinstance(body["channels"], list)
    assert page_status == 200 and 'fetch("status"' in page


def test_channel_figures_reach_status_and_metrics(make_service):
    from channels.simulator_state import ChannelSpec
    from tests.channel_e2e_helpers import SimThread, connect, shown, wait_until

    sim = SimThread([ChannelSpec(id="mon", kind="webhook", secret="s")], 3)
    service = make_service()
    try:
        async def scenario():
            async with Client(service.url, service.headers) as c:
                await connect(c, sim, ChannelSpec(id="mon", kind="webhook", secret="s"), timeout_s=0.5)
                await c.set_stock("P", 10)
                for i in range(3):
                    await c.order(f"p{i}", [("P", 1)])
                assert await wait_until(lambda: shown(sim, "mon").get("P") == 7, timeout=10)
                status = (await c.request("GET", "/internal/status"))[1]
                async with c.session.get(service.url + "/internal/metrics") as r:
                    return status, await r.text()

        status, text = run(scenario())
    finally:
        sim.stop()
    (row,) = status["channels"]
    assert row["id"] == "mon" and row["kind"] == "webhook" and row["state"] == "healthy"
    assert row["last_success"] is not None and row["last_error"] is None and row["dead_letters"] == 0
    assert row["propagation_p50_ms"] is not None and row["propagation_p99_ms"] >= row["propagation_p50_ms"]
    assert _value(text, "invsync_channel_pushes_total", channel="mon", outcome="success") >= 1
    assert _value(text, "invsync_propagation_seconds_count", channel="mon") >= 1
    assert _value(text, "invsync_dead_letters_open", channel="mon") == 0
    assert _value(text, "invsync_mailbox_depth", kind="channel") >= 0
    assert _value(text, "invsync_mailbox_depth", kind="dead_letters") >= 0
