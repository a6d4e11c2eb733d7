"""Bad input: a clear 4xx with a machine-readable code and the field, and nothing changes."""

from __future__ import annotations

import json

import pytest

from tests.conftest import query
from tests.http_client import Client, run

GOOD_ORDER = {"order_id": "bad-1", "channel": "web", "lines": [{"sku": "known", "qty": 1}]}


def order_with(**changes):
    body = dict(GOOD_ORDER)
    body.update(changes)
    return json.dumps(body).encode()


def line(**changes):
    one = {"sku": "known", "qty": 1}
    one.update(changes)
    return order_with(lines=[one])


AUTH = "default"
CASES = [
    # (id, method, path, body bytes, headers, status, error code, field)
    ("malformed json", "POST", "/v1/orders", b'{"order_id": "x", ', AUTH, 400, "malformed_json", None),
    ("not an object", "POST", "/v1/orders", b"[1, 2]", AUTH, 400, "invalid_value", None),
    ("empty body", "POST", "/v1/orders", b"", AUTH, 400, "malformed_json", None),
    ("qty as string", "POST", "/v1/orders", line(qty="1"), AUTH, 400, "invalid_value", "lines[0].qty"),
    ("qty zero", "POST", "/v1/orders", line(qty=0), AUTH, 400, "invalid_value", "lines[0].qty"),
    ("qty negative", "POST", "/v1/orders", line(qty=-3), AUTH, 400, "invalid_value", "lines[0].qty"),
    ("qty beyond 2^31", "POST", "/v1/orders", line(qty=2**31), AUTH, 400, "invalid_value", "lines[0].qty"),
    ("qty float", "POST", "/v1/orders", line(qty=1.5), AUTH, 400, "invalid_value", "lines[0].qty"),
    ("empty sku", "POST", "/v1/orders", line(sku=""), AUTH, 400, "invalid_value", "lines[0].sku"),
    ("sku too long", "POST", "/v1/orders", line(sku="x" * 129), AUTH, 400, "invalid_value", "lines[0].sku"),
    ("sku control char", "POST", "/v1/orders", line(sku="a\nb"), AUTH, 400, "invalid_value", "lines[0].sku"),
    ("no lines", "POST", "/v1/orders", order_with(lines=[]), AUTH, 400, "invalid_value", "lines"),
    ("101 lines", "POST", "/v1/orders", order_with(lines=[{"sku": "known", "qty": 1}] * 101), AUTH, 400, "invalid_value", "lines"),
    ("unknown field", "POST", "/v1/orders", order_with(coupon="X"), AUTH, 400, "unknown_field", "coupon"),
    ("unknown line field", "POST", "/v1/orders", line(price=3), AUTH, 400, "unknown_field", "lines[0].price"),
    ("missing order_id", "POST", "/v1/orders", json.dumps({"channel": "web", "lines": [{"sku": "known", "qty": 1}]}).encode(), AUTH, 400, "missing_field", "order_id"),
    ("bad channel", "POST", "/v1/orders", order_with(channel="a b"), AUTH, 400, "invalid_value", "channel"),
    ("body over 1 MiB", "POST", "/v1/orders", b'{"order_id": "' + b"x" * (1024 * 1024 + 10) + b'"}', AUTH, 413, "body_too_large", None),
    ("no auth", "POST", "/v1/orders", order_with(), {}, 401, "unauthorized", "Authorization"),
    ("wrong token", "POST", "/v1/orders", order_with(), {"Authorization": "Bearer nope"}, 401, "unauthorized", "Authorization"),
    ("set negative", "PUT", "/v1/stock/known", b'{"available": -1}', AUTH, 400, "invalid_value", "available"),
    ("set beyond 2^31", "PUT", "/v1/stock/known", b'{"available": 2147483648}', AUTH, 400, "invalid_value", "available"),
    ("set as string", "PUT", "/v1/stock/known", b'{"available": "5"}', AUTH, 400, "invalid_value", "available"),
    ("set unknown field", "PUT", "/v1/stock/known", b'{"available": 5, "x": 1}', AUTH, 400, "unknown_field", "x"),
    ("set sku too long", "PUT", "/v1/stock/" + "y" * 129, b'{"available": 5}', AUTH, 400, "invalid_value", "sku"),
    ("set bad if-match", "PUT", "/v1/stock/known", b'{"available": 5}', {"If-Match": "abc"}, 400, "invalid_header", "If-Match"),
    ("set stale if-match", "PUT", "/v1/stock/known", b'{"available": 5}', {"If-Match": '"7"'}, 412, "version_mismatch", "If-Match"),
    ("adjust beyond 2^31", "POST", "/v1/stock/known/adjust", b'{"delta": -2147483648}', AUTH, 400, "invalid_value", "delta"),
    ("adjust below zero", "POST", "/v1/stock/known/adjust", b'{"delta": -11}', AUTH, 409, "insufficient_stock", "delta"),
    ("adjust missing delta", "POST", "/v1/stock/known/adjust", b'{"reason": "x"}', AUTH, 400, "missing_field", "delta"),
    ("history bad limit", "GET", "/v1/stock/known/history?limit=0", None, AUTH, 400, "invalid_value", "limit"),
    ("list limit not int", "GET", "/v1/stock?limit=ten", None, AUTH, 400, "invalid_value", "limit"),
    ("unknown route", "GET", "/v1/nothing", None, AUTH, 404, "not_found", None),
    ("wrong method", "DELETE", "/v1/orders", None, AUTH, 405, "method_not_allowed", None),
]




@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_changes_nothing(service, case):
    _, method, path, body, headers, status, code, field = case

    async def scenario():
        async with Client(service.url, service.headers) as c:
            await c.set_stock("known", 10)
            merged = None if headers == AUTH else headers
            if merged is not None and "Authorization" not in merged and status != 401:
                merged = {**service.headers, **merged}
            if merged is not None and status == 401:
                c.headers = {}
            got = await c.request(method, path, data=body, headers=merged)
            c.headers = service.headers
            after = await c.stock("known")
            return got, after

    (got_status, got_body, _), after = run(scenario())
    assert got_status == status, got_body
    assert got_body["error"] == code
    assert got_body.get("field") == field
    assert got_body["detail"]
    assert (after["available"], after["version"]) == (10, 1)
    counts = run(query(service.dsn, "SELECT (SELECT count(*) FROM orders) AS o, (SELECT count(*) FROM stock_events) AS e, (SELECT count(*) FROM stock) AS s"))
    assert tuple(counts[0]) == (0, 1, 1)
