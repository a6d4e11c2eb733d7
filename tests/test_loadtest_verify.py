"""The load harness's verification, shown to catch each violation it claims to check.

Pure cases build a run by hand (a clean one passes; each broken variant fails exactly the check
it should); one case breaks a real database (an order applied twice) and reads it back the way
the harness does.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg
import msgspec

from loadtest.systems import seed_invsync_database, snapshot_database
from loadtest.verify import (
    ChannelsView,
    ClientOrder,
    ClientRecord,
    DeadLetters,
    StoredOrder,
    StoredState,
    Violation,
    verify,
)

INITIAL = {"A": 10, "B": 5}


def _clean() -> tuple[ClientRecord, StoredState, ChannelsView, DeadLetters]:
    client = ClientRecord(
        orders={
            "api/1": ClientOrder(channel="api", order_id="1", requested={"A": 3}, outcome="accepted",
                                 taken={"A": 3}, acks=2, sends=2),  # sent twice: a replay
            "api/2": ClientOrder(channel="api", order_id="2", requested={"B": 9}, outcome="refused", sends=1),
            "api/3": ClientOrder(channel="api", order_id="3", requested={"A": 1, "B": 2}, outcome="accepted",
                                 taken={"A": 1, "B": 2}, acks=1, sends=1),
            "api/4": ClientOrder(channel="api", order_id="4", requested={"B": 1}, outcome="unknown",
                                 sends=1, unanswered=1),  # timed out, but was applied
        },
        restocks_acked={"A": 4},
    )
    stored = StoredState(
        stock={"A": 10 + 4 - 3 - 1, "B": 5 - 2 - 1},
        orders={
            "api/1": StoredOrder("accepted", {"A": 3}),
            "api/2": StoredOrder("refused", {}),
            "api/3": StoredOrder("accepted", {"A": 1, "B": 2}),
            "api/4": StoredOrder("accepted", {"B": 1}),
        },
        check_violations=[],
    )
    channels = ChannelsView(shown={"ch1": {"A": 10, "B": 2}, "ch2": {"A": 9, "B": 1}}, buffer={"ch2": 1})
    dead = DeadLetters(
        counts={"ch1": {"open": 1, "dead_lettered": 3, "drained": 2, "discarded": 0}},
        listed=[("ch1", "A")],
    )
    return client, stored, channels, dead


def _verify(client, stored, channels=None, dead=None, idempotent=True) -> list[Violation]:
    return verify(initial=INITIAL, client=client, stored=stored, idempotent=idempotent, channels=channels, dead_letters=dead)


def _checks(violations: list[Violation]) -> set[str]:
    return {v.check for v in violations}


def test_a_clean_run_passes() -> None:
    assert _verify(*_clean()) == []


def test_an_order_applied_twice_breaks_conservation() -> None:
    client, stored, channels, dead = _clean()
    stored.stock["A"] -= 3  # order 1's units taken a second time
    assert _checks(_verify(client, stored, None, dead)) == {"stock_conservation"}


def test_an_acknowledged_order_missing_from_the_database() -> None:
    client, stored, channels, dead = _clean()
    client.orders["api/5"] = ClientOrder(channel="api", order_id="5", requested={"B": 1}, outcome="accepted",
                                         taken={"B": 1}, acks=1, sends=1)
    stored.stock["B"] -= 1  # even with the units gone, the order record is missing
    channels.shown["ch1"]["B"] -= 1
    channels.shown["ch2"]["B"] -= 1
    assert _checks(_verify(client, stored, channels, dead)) == {"acknowledged_orders_stored"}


def test_a_refused_order_counted_in_the_database() -> None:
    client, stored, channels, dead = _clean()
    stored.orders["api/2"] = StoredOrder("accepted", {"B": 9})
    found = _checks(_verify(client, stored, None, dead))
    assert {"acknowledged_orders_stored", "nothing_unacknowledged_counted"} <= found


def test_an_order_the_client_never_sent() -> None:
    client, stored, channels, dead = _clean()
    stored.orders["api/99"] = StoredOrder("accepted", {"A": 1})
    stored.stock["A"] -= 1
    assert _checks(_verify(client, stored, None, dead)) == {"nothing_unacknowledged_counted", "stock_conservation"}


def test_a_channel_showing_a_wrong_quantity() -> None:
    client, stored, channels, dead = _clean()
    channels.shown["ch2"]["A"] = 10  # ignores its buffer of 1
    violations = _verify(client, stored, channels, dead)
    assert _checks(violations) == {"channels_converged"}
    assert violations[0].subject == "ch2"


def test_a_channel_missing_a_sku() -> None:
    client, stored, channels, dead = _clean()
    del channels.shown["ch1"]["B"]
    assert _checks(_verify(client, stored, channels, dead)) == {"channels_converged"}


def test_negative_stock_and_acknowledging_more_than_supplied() -> None:
    client, stored, channels, dead = _clean()
    client.orders["api/6"] = ClientOrder(channel="api", order_id="6", requested={"B": 4}, outcome="accepted",
                                         taken={"B": 4}, acks=1, sends=1)
    stored.orders["api/6"] = StoredOrder("accepted", {"B": 4})
    stored.stock["B"] -= 4  # 5 supplied, 2 + 4 acknowledged
    found = _checks(_verify(client, stored, None, dead))
    assert {"no_negative_stock", "accepted_within_supply"} <= found


def test_dead_letters_not_accounted_for() -> None:
    client, stored, channels, dead = _clean()
    dead.counts["ch1"]["dead_lettered"] = 5  # two of them vanished
    assert _checks(_verify(client, stored, channels, dead)) == {"dead_letters_accounted"}
    client, stored, channels, dead = _clean()
    dead.listed.clear()  # counted open, but not listed by the API
    assert _checks(_verify(client, stored, channels, dead)) == {"dead_letters_accounted"}


def test_invsync_check_violations_are_reported() -> None:
    client, stored, channels, dead = _clean()
    stored.check_violations = [Violation("never_negative", "A", "available -1")]
    assert _checks(_verify(client, stored, channels, dead)) == {"invsync_check"}


def test_a_system_without_idempotency_counts_every_acknowledgement() -> None:
    client, stored, channels, dead = _clean()
    stored = StoredState(stock={"A": 10 + 4 - 3 * 2 - 1, "B": 5 - 2}, orders=None)
    # naive: order 1 sent twice, applied twice; order 4 unanswered and maybe applied (B 2 or 3)
    assert _verify(client, stored, idempotent=False) == []
    stored.stock["A"] += 3  # as if the duplicate had been absorbed: the client saw two acks
    assert _checks(_verify(client, stored, idempotent=False)) == {"stock_conservation"}


def test_a_database_with_an_order_applied_twice(database_url: str) -> None:
    """A real database, broken by hand the way a double application would leave it."""

    async def scenario() -> list[Violation]:
        await seed_invsync_database(database_url, {"A": 10})
        conn = await asyncpg.connect(database_url)
        try:
            answer = json.dumps({"order_id": "1", "channel": "api", "status": "accepted",
                                 "lines": [{"sku": "A", "qty": 2, "available_after": 8, "version": 2}]})
            await conn.execute(
                "INSERT INTO orders (channel, order_id, body_hash, status, http_status, response, lines) "
                "VALUES ('api', '1', 'h', 'accepted', 201, $1, $2)", answer, json.dumps([{"sku": "A", "qty": 2}]))
            for version, after in ((2, 8), (3, 6)):  # the same order's events twice
                await conn.execute(
                    "INSERT INTO stock_events (sku, version, delta, available_after, kind, order_id, channel) "
                    "VALUES ('A', $1, -2, $2, 'order', '1', 'api')", version, after)
            await conn.execute("UPDATE stock SET available = 6, version = 3 WHERE sku = 'A'")
        finally:
            await conn.close()
        stored = await snapshot_database(database_url, "invsync", ["A"])
        client = ClientRecord(orders={"api/1": ClientOrder(
            channel="api", order_id="1", requested={"A": 2}, outcome="accepted", taken={"A": 2}, acks=1, sends=1)})
        return verify(initial={"A": 10}, client=client, stored=stored, idempotent=True)

    violations = asyncio.run(scenario())
    found = _checks(violations)
    assert {"stock_conservation", "invsync_check"} <= found
    assert any(v.check == "invsync_check" and "orders_applied_exactly_once" in v.detail for v in violations)
    assert msgspec.json.encode(violations)  # serializable for the JSON report
