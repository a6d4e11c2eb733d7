"""The channel simulator: faults, rate limits, outages, version bookkeeping, control API and CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import msgspec
import pytest
from aiohttp import web

from channels import shopify_format, webhook_format, woocommerce_format
from channels.inbound_orders import parse_order_webhook, verify_inbound_signature
from channels.simulator_faults import FaultConfig, Outage
from channels.simulator_state import ChannelSpec
from channels.wire_types import Update, outcomes_for_transport_error
from tests.channel_sim_helpers import get_json, post_json, run_with_simulator, send

REPO = Path(__file__).resolve().parent.parent


def webhook_spec(channel_id: str = "wh-1", **faults) -> ChannelSpec:
    return ChannelSpec(id=channel_id, kind="webhook", secret="whsec", faults=FaultConfig(**faults))


def webhook_push(sim, channel_id: str, updates: list[Update]):
    config = webhook_format.WebhookChannelConfig(channel_id, sim.channel_base_url(channel_id), "whsec")
    return webhook_format.build_webhook_request(config, updates)


async def push_and_interpret(http, sim, channel_id, updates):
    status, headers, body = await send(http, webhook_push(sim, channel_id, updates))
    return status, headers, webhook_format.interpret_webhook_response(updates, status, headers, body)


def test_token_bucket_answers_429_with_retry_after_and_counts_the_busiest_second():
    async def scenario(sim, http):
        answers = [await push_and_interpret(http, sim, "wh-1", [Update("A", n, n)]) for n in range(1, 4)]
        return answers, sim.stats()["wh-1"], sim.state()["channels"]["wh-1"]["skus"]

    answers, stats, skus = run_with_simulator([webhook_spec(rate_limit_per_second=2, burst=2)], scenario)
    assert [status for status, _, _ in answers] == [200, 200, 429]
    _, headers, outcomes = answers[2]
    assert headers["Retry-After"] == "1"  # 0.5 s until a token, rounded up to whole seconds
    assert [(o.status, o.retry_after) for o in outcomes] == [("throttled", 1.0)]
    assert skus["A"]["quantity"] == 2  # the throttled write was not applied
    assert (stats["ok_2xx"], stats["throttled_429"], stats["max_requests_1s"]) == (2, 1, 3)


def test_shopify_cost_throttle_reports_the_true_wait_and_a_client_that_waits_succeeds():
    spec = ChannelSpec(id="shop-1", kind="shopify", secret="t", listings={"A": "7"}, faults=FaultConfig(rate_limit_per_second=5, burst=1))
    updates = [Update("A", 3, 1)]

    async def scenario(sim, http):
        config = shopify_format.ShopifyChannelConfig("shop-1", sim.channel_base_url("shop-1"), "t", "1")
        request = shopify_format.build_set_quantities_request(config, updates, {"A": "7"})
        first = await send(http, request)
        second = await send(http, request)
        throttled = shopify_format.interpret_set_quantities_response(updates, *second)
        await asyncio.sleep(throttled[0].retry_after)
        third = await send(http, request)
        return first, second, throttled, shopify_format.interpret_set_quantities_response(updates, *third), sim.stats()["shop-1"]

    first, second, throttled, after_wait, stats = run_with_simulator([spec], scenario)
    assert first[0] == 200 and second[0] == 200  # Shopify's cost limit answers 200 + errors[THROTTLED]
    body = msgspec.json.decode(second[2])
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert set(body["extensions"]["cost"]["throttleStatus"]) == {"maximumAvailable", "currentlyAvailable", "restoreRate"}
    assert throttled[0].status == "throttled"
    assert 0.1 < throttled[0].retry_after <= 0.2  # one token per 0.2 s
    assert after_wait[0].status == "confirmed"
    assert stats["throttled_429"] == 1 and stats["ok_2xx"] == 2


def test_shopify_http_throttle_style_and_woocommerce_throttle_are_429():
    specs = [
        ChannelSpec(id="shop-1", kind="shopify", secret="t", listings={"A": "7"}, faults=FaultConfig(rate_limit_per_second=1, burst=1, shopify_throttle_style="http")),
        ChannelSpec(id="woo-1", kind="woocommerce", consumer_key="ck", secret="cs", listings={"A": "7"}, faults=FaultConfig(rate_limit_per_second=1, burst=1)),
    ]
    updates = [Update("A", 3, 1)]

    async def scenario(sim, http):
        shop = shopify_format.build_set_quantities_request(shopify_format.ShopifyChannelConfig("shop-1", sim.channel_base_url("shop-1"), "t", "1"), updates, {"A": "7"})
        woo = woocommerce_format.build_batch_update_request(woocommerce_format.WooCommerceChannelConfig("woo-1", sim.channel_base_url("woo-1"), "ck", "cs"), updates, {"A": "7"})
        await send(http, shop), await send(http, woo)
        shop_second, woo_second = await send(http, shop), await send(http, woo)
        return (
            shop_second,
            shopify_format.interpret_set_quantities_response(updates, *shop_second),
            woo_second,
            woocommerce_format.interpret_batch_update_response(updates, {"A": "7"}, *woo_second),
        )

    shop_second, shop_outcomes, woo_second, woo_outcomes = run_with_simulator(specs, scenario)
    assert (shop_second[0], shop_second[1]["Retry-After"]) == (429, "1")
    assert (woo_second[0], woo_second[1]["Retry-After"]) == (429, "1")
    assert [(o.status, o.retry_after) for o in shop_outcomes + woo_outcomes] == [("throttled", 1.0)] * 2


def test_outage_window_answers_503_then_recovers():
    spec = webhook_spec(outages=(Outage(start_s=0.0, end_s=0.3, mode="503"),))

    async def scenario(sim, http):
        during = await push_and_interpret(http, sim, "wh-1", [Update("A", 1, 1)])
        await asyncio.sleep(0.35)
        after = await push_and_interpret(http, sim, "wh-1", [Update("A", 2, 2)])
        return during, after, sim.state()["channels"]["wh-1"]["skus"]

    during, after, skus = run_with_simulator([spec], scenario)
    status, headers, outcomes = during
    assert status == 503 and headers["Retry-After"] == "1"
    assert outcomes[0].status == "retry" and outcomes[0].retry_after == 1.0
    assert after[0] == 200 and after[2][0].status == "confirmed"
    assert skus == {"A": {"quantity": 2, "version": 2, "updated_at": pytest.approx(skus["A"]["updated_at"]), "version_source": "body"}}


def test_reset_outage_closes_the_connection_without_an_answer():
    spec = webhook_spec(outages=(Outage(start_s=0.0, end_s=60.0, mode="reset"),))

    async def scenario(sim, http):
        with pytest.raises(aiohttp.ClientError) as caught:
            await send(http, webhook_push(sim, "wh-1", [Update("A", 1, 1)]))
        return caught.value, sim.stats()["wh-1"], sim.state()["channels"]["wh-1"]["skus"]

    error, stats, skus = run_with_simulator([spec], scenario)
    assert isinstance(error, aiohttp.ServerDisconnectedError)
    assert stats["resets"] == 1 and stats["ok_2xx"] == 0
    assert skus == {}
    assert outcomes_for_transport_error([Update("A", 1, 1)], repr(error))[0].status == "retry"


def test_faults_change_at_runtime_through_the_control_api():
    async def scenario(sim, http):
        control = f"{sim.base_url}/_sim/channels/wh-1/faults"
        statuses = [(await send(http, webhook_push(sim, "wh-1", [Update("A", 1, 1)])))[0]]
        assert (await post_json(http, control, {"down": "503"}))[0] == 200
        statuses.append((await send(http, webhook_push(sim, "wh-1", [Update("A", 2, 2)])))[0])
        assert (await post_json(http, control, {"down": None}))[0] == 200
        statuses.append((await send(http, webhook_push(sim, "wh-1", [Update("A", 3, 3)])))[0])
        bad_field = await post_json(http, control, {"no_such_fault": 1})
        bad_value = await post_json(http, control, {"error_rate": 2})
        current = await get_json(http, control)
        return statuses, bad_field, bad_value, current, sim.state()["channels"]["wh-1"]["skus"]["A"]

    statuses, bad_field, bad_value, current, shown = run_with_simulator([webhook_spec()], scenario)
    assert statuses == [200, 503, 200]
    assert bad_field[0] == 400 and "no_such_fault" in bad_field[1]["error"]
    assert bad_value[0] == 400
    assert current["down"] is None and current["error_rate"] == 0.0
    assert (shown["quantity"], shown["version"]) == (3, 3)


def test_refuse_closes_the_dedicated_port_and_reopens_it():
    spec = ChannelSpec(id="wh-1", kind="webhook", secret="whsec", port=0)

    async def scenario(sim, http):
        dedicated = webhook_format.WebhookChannelConfig("wh-1", sim.channel_base_url("wh-1", dedicated=True), "whsec")
        request = webhook_format.build_webhook_request(dedicated, [Update("A", 1, 1)])
        before = (await send(http, request))[0]
        await sim.set_faults("wh-1", down="refuse")
        async with aiohttp.ClientSession() as fresh:  # a new connection, so the closed listener matters
            with pytest.raises(aiohttp.ClientConnectorError):
                await send(fresh, request)
        with pytest.raises(aiohttp.ServerDisconnectedError):  # the shared port cannot refuse: it resets
            await send(http, webhook_push(sim, "wh-1", [Update("A", 2, 2)]))
        await sim.set_faults("wh-1", down=None)
        async with aiohttp.ClientSession() as fresh:
            after = (await send(fresh, request))[0]
        return before, after

    assert run_with_simulator([spec], scenario) == (200, 200)


def test_error_rate_is_seeded_and_applies_nothing_on_errors():
    spec = webhook_spec(error_rate=0.5)

    def statuses(seed):
        async def scenario(sim, http):
            result = [(await send(http, webhook_push(sim, "wh-1", [Update(f"S{n}", n, n)])))[0] for n in range(20)]
            return result, sim.state()["channels"]["wh-1"]["skus"]

        return run_with_simulator([spec], scenario, seed=seed)

    first, skus = statuses(7)
    second, _ = statuses(7)
    other, _ = statuses(8)
    assert first == second  # same seed, same request sequence -> same faults
    assert first != other
    assert set(first) == {200, 500}
    assert sorted(skus) == sorted(f"S{n}" for n, status in enumerate(first) if status == 200)


def test_slow_responses_apply_the_write_but_outlast_the_client_timeout():
    spec = webhook_spec(slow_rate=1.0, slow_ms=400)

    async def scenario(sim, http):
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await send(http, webhook_push(sim, "wh-1", [Update("A", 9, 4)]), timeout_s=0.1)
        timed_out_after = time.monotonic() - started
        return timed_out_after, sim.state()["channels"]["wh-1"]["skus"]

    timed_out_after, skus = run_with_simulator([spec], scenario)
    assert timed_out_after < 0.35
    assert skus["A"]["quantity"] == 9 and skus["A"]["version"] == 4  # applied before the late answer


def test_latency_and_jitter_delay_answers():
    spec = webhook_spec(latency_ms=120, jitter_ms=30)

    async def scenario(sim, http):
        started = time.monotonic()
        status = (await send(http, webhook_push(sim, "wh-1", [Update("A", 1, 1)])))[0]
        return status, time.monotonic() - started

    status, took = run_with_simulator([spec], scenario)
    assert status == 200 and 0.12 <= took < 1.0


def test_stale_versions_are_applied_like_a_store_but_counted():
    async def scenario(sim, http):
        for update in (Update("A", 5, 5), Update("A", 3, 3), Update("A", 5, 5), Update("A", 6, 6)):
            assert (await send(http, webhook_push(sim, "wh-1", [update])))[0] == 200
        return sim.stats()["wh-1"], await get_json(http, f"{sim.base_url}/_sim/channels/wh-1/log")

    stats, log = run_with_simulator([webhook_spec()], scenario)
    assert stats["stale_writes"] == 1  # only v3 after v5; re-sending v5 is not stale
    assert stats["recent_stale_writes"][0]["version"] == 3 and stats["recent_stale_writes"][0]["newest_version"] == 5
    assert [entry[:3] for entry in log["entries"]] == [["A", 5, 5], ["A", 3, 3], ["A", 5, 5], ["A", 6, 6]]


def test_shopify_and_woocommerce_versions_come_from_the_header_or_arrival_order():
    specs = [
        ChannelSpec(id="shop-1", kind="shopify", secret="t", listings={"A": "7"}),
        ChannelSpec(id="woo-1", kind="woocommerce", consumer_key="ck", secret="cs", listings={"A": "7"}),
    ]

    async def scenario(sim, http):
        shop = shopify_format.build_set_quantities_request(shopify_format.ShopifyChannelConfig("shop-1", sim.channel_base_url("shop-1"), "t", "1"), [Update("A", 4, 9)], {"A": "7"})
        older = shopify_format.build_set_quantities_request(shopify_format.ShopifyChannelConfig("shop-1", sim.channel_base_url("shop-1"), "t", "1"), [Update("A", 2, 8)], {"A": "7"})
        await send(http, shop)
        await send(http, older)
        woo = woocommerce_format.build_batch_update_request(woocommerce_format.WooCommerceChannelConfig("woo-1", sim.channel_base_url("woo-1"), "ck", "cs"), [Update("A", 4, 9)], {"A": "7"})
        no_header = msgspec.structs.replace(woo, headers={k: v for k, v in woo.headers.items() if k != "X-Invsync-Version"})
        await send(http, no_header)
        await send(http, no_header)
        return sim.state()["channels"], sim.stats()

    state, stats = run_with_simulator(specs, scenario)
    assert state["shop-1"]["skus"]["A"]["version"] == 8 and state["shop-1"]["skus"]["A"]["version_source"] == "header"
    assert stats["shop-1"]["stale_writes"] == 1
    assert (state["woo-1"]["skus"]["A"]["version"], state["woo-1"]["skus"]["A"]["version_source"]) == (2, "arrival")
    assert stats["woo-1"]["stale_writes"] == 0


def test_log_is_bounded_and_reset_forgets_everything():
    spec = ChannelSpec(id="wh-1", kind="webhook", secret="whsec", log_size=3, faults=FaultConfig(error_rate=0.0))

    async def scenario(sim, http):
        for n in range(1, 6):
            await send(http, webhook_push(sim, "wh-1", [Update("A", n, n)]))
        await sim.set_faults("wh-1", down="503")
        log = await get_json(http, f"{sim.base_url}/_sim/channels/wh-1/log")
        assert (await post_json(http, f"{sim.base_url}/_sim/reset", {}))[0] == 200
        return log, sim.state()["channels"]["wh-1"], sim.stats()["wh-1"], sim.faults("wh-1")

    log, state, stats, faults = run_with_simulator([spec], scenario)
    assert [entry[2] for entry in log["entries"]] == [3, 4, 5]
    assert state["skus"] == {} and stats["requests"] == 0 and faults.down is None


def test_woocommerce_batch_limit_query_auth_and_unknown_routes():
    spec = ChannelSpec(id="woo-1", kind="woocommerce", consumer_key="ck", secret="cs", listings={"A": "7"})

    async def scenario(sim, http):
        url = sim.channel_base_url("woo-1") + "/wp-json/wc/v3/products/batch"
        too_many = {"update": [{"id": n, "stock_quantity": 1} for n in range(101)]}
        async with http.post(url, json=too_many, params={"consumer_key": "ck", "consumer_secret": "cs"}) as response:
            limit = (response.status, await response.json())
        async with http.post(url, json={"update": [{"id": 7, "stock_quantity": "4"}]}, params={"consumer_key": "ck", "consumer_secret": "cs"}) as response:
            by_query = (response.status, await response.json())
        async with http.post(f"{sim.base_url}/webhook/woo-1", data=b"{}") as response:
            wrong_kind = response.status
        return limit, by_query, wrong_kind

    limit, by_query, wrong_kind = run_with_simulator([spec], scenario)
    assert limit[0] == 413 and limit[1]["code"] == "woocommerce_rest_request_entity_too_large"
    assert by_query[0] == 200 and by_query[1]["update"][0]["stock_quantity"] == 4
    assert wrong_kind == 404


def test_simulated_stores_send_signed_order_webhooks():
    specs = [
        ChannelSpec(id="shop-1", kind="shopify", secret="token", webhook_secret="shop-hook-secret"),
        ChannelSpec(id="woo-1", kind="woocommerce", consumer_key="ck", secret="woo-secret"),
    ]
    received = []

    async def receiver(request: web.Request) -> web.Response:
        source = request.match_info["source"]
        body = await request.read()
        secret = "shop-hook-secret" if source == "shopify" else "woo-secret"
        if not verify_inbound_signature(source, request.headers, body, secret):
            return web.Response(status=401)
        received.append(parse_order_webhook(source, request.headers, body))
        return web.Response(status=200)

    async def scenario(sim, http):
        app = web.Application()
        app.router.add_post("/in/{source}", receiver)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        try:
            via_api = await sim.send_order("shop-1", f"{base}/in/shopify", 1001, [("A", 2), ("B", 1)])
            via_http = await post_json(http, f"{sim.base_url}/_sim/channels/woo-1/orders", {"url": f"{base}/in/woocommerce", "order_id": 77, "lines": [["A", 1]], "event": "cancelled"})
        finally:
            await runner.cleanup()
        return via_api, via_http

    via_api, via_http = run_with_simulator(specs, scenario)
    assert via_api[0] == 200 and via_http == (200, {"status": 200, "body": ""})
    assert [(o.kind, o.order_id, [(line.sku, line.quantity) for line in o.lines]) for o in received] == [
        ("order", "1001", [("A", 2), ("B", 1)]),
        ("cancel", "77", [("A", 1)]),
    ]


def test_cli_serves_generated_channels_until_signalled(tmp_path):
    config = tmp_path / "sim.json"
    config.write_text(json.dumps({"seed": 3, "channels": [{"id": "custom", "kind": "webhook", "secret": "c", "faults": {"latency_ms": 1}}]}))
    command = [
        sys.executable, "-c", "import sys; from channels.simulator import run_simulator; raise SystemExit(run_simulator(sys.argv[1:]))",
        "--port", "0", "--webhook", "1", "--shopify", "2", "--woocommerce", "1", "--skus", "3", "--rate-limit", "50", "--config", str(config),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        description = json.loads(process.stdout.readline())

        async def push():
            config = webhook_format.WebhookChannelConfig("webhook-1", description["channels"]["webhook-1"]["url"], "sim-secret")
            async with aiohttp.ClientSession() as http:
                status, _, _ = await send(http, webhook_format.build_webhook_request(config, [Update("SKU-00001", 4, 1)]))
                faults = await get_json(http, description["url"] + "/_sim/channels/shopify-2/faults")
                return status, faults

        status, faults = asyncio.run(push())
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=10)
    assert exit_code == 0
    assert status == 200
    assert sorted(description["channels"]) == ["custom", "shopify-1", "shopify-2", "webhook-1", "woocommerce-1"]
    assert description["seed"] == 3
    assert description["channels"]["shopify-1"]["listings"] == {"SKU-00001": "1000001", "SKU-00002": "1000002", "SKU-00003": "1000003"}
    assert description["channels"]["woocommerce-1"]["consumer_key"] == "ck_sim"
    assert faults["rate_limit_per_second"] == 50


def test_cli_rejects_an_empty_configuration(capsys):
    from channels.simulator import run_simulator

    assert run_simulator(["--port", "0"]) == 2
    assert "no channels" in capsys.readouterr().err
