"""Inbound order webhooks from Shopify and WooCommerce, end to end over loopback."""

from __future__ import annotations

import asyncio

import msgspec

from channels.order_webhook_builder import build_order_webhook
from channels.simulator_state import ChannelSpec
from tests.channel_e2e_helpers import SimThread, connect, shown, wait_until
from tests.http_client import Client
from tests.test_channels_e2e import FAST, listed, sims  # noqa: F401  (fixture)

SHOP = ChannelSpec(id="shop-in", kind="shopify", secret="tok", webhook_secret="shop-hook-secret", listings=listed("shopify"))
WOO = ChannelSpec(id="woo-in", kind="woocommerce", secret="cs", webhook_secret="woo-hook-secret", listings=listed("woocommerce"))
WH = ChannelSpec(id="wh-out", kind="webhook", secret="s")


def inbound_url(svc, spec: ChannelSpec) -> str:
    return f"{svc.url}/v1/webhooks/{spec.kind}/{spec.id}"


async def setup(c: Client, sim: SimThread, stock: dict[str, int]) -> None:
    for spec in (SHOP, WOO, WH):
        await connect(c, sim, spec, **FAST)
    for sku, qty in stock.items():
        await c.set_stock(sku, qty)


def test_shopify_and_woocommerce_orders_are_accepted_idempotent_and_cancellable(sims, make_service):
    sim = sims([SHOP, WOO, WH])
    svc = make_service()

    async def scenario():
        async with Client(svc.url, svc.headers) as c:
            await setup(c, sim, {"S-0": 10, "S-1": 10})
            out = {}
            # Payloads shaped like the stores' documentation examples, signed as the stores sign.
            out["shop"] = await asyncio.to_thread(sim.send_order, "shop-in", inbound_url(svc, SHOP), 5001, [("S-0", 2), (None, 1)])
            out["shop_again"] = await asyncio.to_thread(sim.send_order, "shop-in", inbound_url(svc, SHOP), 5001, [("S-0", 2), (None, 1)])
            out["woo"] = await asyncio.to_thread(sim.send_order, "woo-in", inbound_url(svc, WOO), 77, [("S-1", 3)])
            out["stock_after_orders"] = (await c.stock("S-0"))["available"], (await c.stock("S-1"))["available"]
            out["order"] = (await c.request("GET", "/v1/orders/shop-in/5001"))[1]
            out["woo_cancel"] = await asyncio.to_thread(sim.send_order, "woo-in", inbound_url(svc, WOO), 77, [("S-1", 3)], "cancelled")
            out["shop_cancel"] = await asyncio.to_thread(sim.send_order, "shop-in", inbound_url(svc, SHOP), 5001, [("S-0", 2)], "cancelled")
            out["stock_after_cancels"] = (await c.stock("S-0"))["available"], (await c.stock("S-1"))["available"]
            out["pushed"] = await wait_until(lambda: shown(sim, "wh-out") == {"S-0": 10, "S-1": 10}, timeout=10)
            out["channel"] = (await c.request("GET", "/v1/channels/shop-in"))[1]
            return out

    out = asyncio.run(scenario())
    status, body = out["shop"]
    assert status == 200, body
    first = msgspec.json.decode(body)
    assert first["status"] == "accepted" and first["order_id"] == "5001" and first["channel"] == "shop-in"
    assert out["shop_again"] == (200, body)  # a redelivery is the same order, answered the same
    assert out["woo"][0] == 200, out["woo"]
    assert out["stock_after_orders"] == (8, 7)
    assert out["order"]["status"] == "accepted"
    assert out["woo_cancel"][0] == 200 and out["shop_cancel"][0] == 200
    assert out["stock_after_cancels"] == (10, 10)
    assert out["pushed"]
    assert out["channel"]["inbound"]["orders"] == 2 and out["channel"]["inbound"]["cancels"] == 1


def test_a_bad_signature_is_refused_and_changes_nothing(sims, make_service):
    sim = sims([SHOP, WOO, WH])
    svc = make_service()

    async def scenario():
        async with Client(svc.url, svc.headers) as c:
            await setup(c, sim, {"S-0": 10})
            answers = []
            for spec, secret in ((SHOP, "wrong-secret"), (WOO, "wrong-secret")):
                request = build_order_webhook(spec.kind, 9001, [("S-0", 4)], secret, inbound_url(svc, spec))
                answers.append(await c.request("POST", request.url[len(svc.url):], data=request.body, headers=request.headers))
            # A correctly signed body that was altered afterwards.
            good = build_order_webhook("shopify", 9002, [("S-0", 1)], "shop-hook-secret", inbound_url(svc, SHOP))
            tampered = good.body.replace(b'"quantity":1', b'"quantity":9')
            answers.append(await c.request("POST", good.url[len(svc.url):], data=tampered, headers=good.headers))
            stock = await c.stock("S-0")
            orders = [(await c.request("GET", f"/v1/orders/{cid}/{oid}"))[0] for cid, oid in (("shop-in", 9001), ("woo-in", 9001), ("shop-in", 9002))]
            return answers, stock, orders

    answers, stock, orders = asyncio.run(scenario())
    assert [(status, body["error"]) for status, body, _ in answers] == [(401, "invalid_signature")] * 3
    assert stock["available"] == 10 and stock["version"] == 1
    assert orders == [404, 404, 404]


def test_a_channel_order_for_goods_we_do_not_have_is_recorded_oversold_and_zero_goes_everywhere(sims, make_service):
    sim = sims([SHOP, WOO, WH])
    svc = make_service()

    async def scenario():
        async with Client(svc.url, svc.headers) as c:
            await setup(c, sim, {"S-0": 2, "S-1": 5})
            await wait_until(lambda: shown(sim, "woo-in").get("S-0") == 2 and shown(sim, "shop-in").get("S-0") == 2, timeout=10)
            answer = await asyncio.to_thread(sim.send_order, "shop-in", inbound_url(svc, SHOP), 6001, [("S-0", 5), ("S-1", 1)])
            order = (await c.request("GET", "/v1/orders/shop-in/6001"))[1]
            stock = (await c.stock("S-0"))["available"], (await c.stock("S-1"))["available"]
            zero = await wait_until(
                lambda: all(shown(sim, cid).get("S-0") == 0 for cid in ("woo-in", "wh-out", "shop-in")), timeout=10
            )
            return answer, order, stock, zero

    (status, body), order, stock, zero = asyncio.run(scenario())
    assert status == 200
    decided = msgspec.json.decode(body)
    assert decided["status"] == "oversold"
    assert decided["shortfall"] == [{"sku": "S-0", "requested": 5, "available": 2}]
    assert order["status"] == "oversold"
    assert stock == (0, 4)  # took what there was, never below zero
    assert zero


def test_the_origin_channel_is_pushed_the_truth_after_its_own_sale(sims, make_service):
    sim = sims([SHOP, WOO, WH])
    svc = make_service()

    async def scenario():
        async with Client(svc.url, svc.headers) as c:
            await setup(c, sim, {"S-3": 10})
            await wait_until(lambda: all(shown(sim, cid).get("S-3") == 10 for cid in ("shop-in", "woo-in", "wh-out")), timeout=10)
            shop_log = len(sim.log("shop-in"))
            status, _ = await asyncio.to_thread(sim.send_order, "shop-in", inbound_url(svc, SHOP), 7001, [("S-3", 3)])
            others = await wait_until(lambda: shown(sim, "woo-in").get("S-3") == 7 and shown(sim, "wh-out").get("S-3") == 7, timeout=10)
            await asyncio.sleep(0.3)
            channel = (await c.request("GET", "/v1/channels/shop-in"))[1]
            return status, others, sim.log("shop-in")[shop_log:], channel

    status, others, shop_new, channel = asyncio.run(scenario())
    assert status == 200 and others
    # The store lowered its own count, but it is still told the truth: a push
    # of ours may have overwritten its count between its sale and our commit.
    assert [(e[0], e[1]) for e in shop_new] == [("S-3", 7)]


def test_unknown_channel_wrong_kind_and_malformed_payloads(sims, make_service):
    sim = sims([SHOP, WOO, WH])
    svc = make_service()

    async def scenario():
        async with Client(svc.url, {}) as c:  # no bearer token: webhooks do not need one
            async with Client(svc.url, svc.headers) as admin:
                await setup(admin, sim, {"S-0": 1})
            results = []
            results.append(await c.request("POST", "/v1/webhooks/shopify/nope", data=b"{}"))
            results.append(await c.request("POST", "/v1/webhooks/woocommerce/shop-in", data=b"{}"))
            bad = build_order_webhook("shopify", 1, [("S-0", 1)], "shop-hook-secret", inbound_url(svc, SHOP))
            from channels.signatures import sign_base64

            body = b'{"id": "not-a-number", "line_items": []}'
            headers = dict(bad.headers, **{"X-Shopify-Hmac-Sha256": sign_base64("shop-hook-secret", body)})
            results.append(await c.request("POST", f"/v1/webhooks/shopify/{SHOP.id}", data=body, headers=headers))
            topic = dict(bad.headers, **{"X-Shopify-Topic": "products/update"})
            results.append(await c.request("POST", f"/v1/webhooks/shopify/{SHOP.id}", data=bad.body, headers=topic))
            return results

    unknown, wrong_kind, malformed, ignored = asyncio.run(scenario())
    assert unknown[0] == 404 and wrong_kind[0] == 404
    assert malformed[0] == 400 and malformed[1]["error"] == "invalid_payload"
    assert ignored[0] == 200 and ignored[1]["status"] == "ignored"
