"""The pure state transitions, exhaustively and by property."""

from __future__ import annotations

from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from actors import stock_rules
from actors.batch_builder import plan_batch
from actors.messages import (
    AdjustStock,
    CancelOrder,
    HandOffSku,
    HoldSku,
    OrderLine,
    PlaceOrder,
    SetStock,
    SkuState,
)

SKUS = ["a", "b", "c"]


class FakeReply:
    def __init__(self) -> None:
        self.value = None

    def send(self, value) -> None:
        self.value = value


def order(order_id, lines, take_available=False):
    return PlaceOrder("web", order_id, tuple(OrderLine(s, q) for s, q in lines), "h", FakeReply(), take_available)


def test_take_order_refuses_the_whole_order_when_one_line_is_short():
    states = {"a": SkuState("a", 5, 1), "b": SkuState("b", 1, 4)}
    result = stock_rules.take_order(states, "web", "o", (OrderLine("a", 2), OrderLine("b", 1), OrderLine("b", 1)))
    assert result == stock_rules.Refused((("b", 2, 1),))


def test_take_order_events_follow_each_other_per_line():
    states = {"a": SkuState("a", 5, 1)}
    result = stock_rules.take_order(states, "web", "o", (OrderLine("a", 2), OrderLine("a", 3)))
    assert [(e.version, e.delta, e.available_after) for e in result.events] == [(2, -2, 3), (3, -3, 0)]
    assert result.states == {"a": SkuState("a", 0, 3)}


def test_take_available_takes_what_there_is():
    states = {"a": SkuState("a", 2, 1), "b": None}
    result = stock_rules.take_order(states, "shop", "o", (OrderLine("a", 5), OrderLine("b", 1)), take_available=True)
    assert [(e.sku, e.delta, e.available_after) for e in result.events] == [("a", -2, 0)]


def test_set_and_adjust_honour_if_match():
    state = SkuState("a", 5, 3)
    assert stock_rules.set_stock(state, "a", 9, 2, None) == stock_rules.VersionMismatch(3)
    assert stock_rules.adjust_stock(None, "a", 1, 1, None) == stock_rules.VersionMismatch(0)
    created = stock_rules.set_stock(None, "a", 4, 0, "count")
    assert created.states["a"] == SkuState("a", 4, 1) and created.events[0].reason == "count"
    assert stock_rules.set_stock(state, "a", 5, None, None) == stock_rules.Unchanged(state)
    assert stock_rules.adjust_stock(state, "a", -6, None, None) == stock_rules.Refused((("a", 6, 5),))


operation = st.one_of(
    st.tuples(st.just("order"), st.lists(st.tuples(st.sampled_from(SKUS), st.integers(1, 6)), min_size=1, max_size=4)),
    st.tuples(st.just("cancel"), st.integers(0, 40)),
    st.tuples(st.just("set"), st.sampled_from(SKUS), st.integers(0, 20)),
    st.tuples(st.just("adjust"), st.sampled_from(SKUS), st.integers(-10, 10)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(operation, max_size=60))
def test_random_histories_never_go_negative_and_always_sum_to_the_events(ops):
    states: dict[str, SkuState] = {}
    log = []
    accepted: list[tuple[str, tuple[OrderLine, ...]]] = []
    cancelled: set[int] = set()
    for i, op in enumerate(ops):
        if op[0] == "order":
            lines = tuple(OrderLine(s, q) for s, q in op[1])
            result = stock_rules.take_order(states, "web", f"o{i}", lines)
            if isinstance(result, stock_rules.Applied):
                accepted.append((f"o{i}", tuple(OrderLine(e.sku, -e.delta) for e in result.events)))
        elif op[0] == "cancel":
            if op[1] >= len(accepted) or op[1] in cancelled:
                continue
            cancelled.add(op[1])
            order_id, lines = accepted[op[1]]
            result = stock_rules.return_order(states, "web", order_id, lines)
        elif op[0] == "set":
            result = stock_rules.set_stock(states.get(op[1]), op[1], op[2], None, None)
        else:
            result = stock_rules.adjust_stock(states.get(op[1]), op[1], op[2], None, None)
        if isinstance(result, stock_rules.Applied):
            for event in result.events:
                before = states.get(event.sku)
                assert event.version == (before.version if before else 0) + 1
                assert event.available_after == (before.available if before else 0) + event.delta
                states[event.sku] = SkuState(event.sku, event.available_after, event.version)
                log.append(event)
            assert all(states[sku] == s for sku, s in result.states.items())
    for sku, state in states.items():
        assert state.available >= 0
        assert state.available == sum(e.delta for e in log if e.sku == sku)
        assert state.version == len([e for e in log if e.sku == sku])


def _op(kind, sku, n, i):
    if kind == "order":
        return order(f"o{i}", [(sku, n)])
    if kind == "set":
        return SetStock(sku, n, None, None, FakeReply())
    return AdjustStock(sku, n - 5, None, None, FakeReply())


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["order", "set", "adjust"]), st.sampled_from(SKUS), st.integers(0, 9)), max_size=40),
    st.sets(st.sampled_from(SKUS)),
)
def test_a_batch_is_the_same_as_deciding_one_request_at_a_time(requests, blocked):
    committed = {"a": SkuState("a", 10, 3), "b": SkuState("b", 0, 1)}
    queue = [_op(kind, sku, max(n, 1) if kind == "order" else n, i) for i, (kind, sku, n) in enumerate(requests)]
    plan = plan_batch(committed, deque(queue), blocked, 1)
    # blocked SKUs keep every request on them, in order; the rest are decided
    assert [op for op in plan.deferred] == [op for op in queue if op.skus & blocked]
    decided = [op for op in queue if not (op.skus & blocked)]
    states = dict(committed)
    for op in decided:
        current = states.get(op.sku if not isinstance(op, PlaceOrder) else op.lines[0].sku)
        if isinstance(op, PlaceOrder):
            result = stock_rules.take_order(states, op.channel, op.order_id, op.lines)
        elif isinstance(op, SetStock):
            result = stock_rules.set_stock(current, op.sku, op.available, None, None)
        else:
            result = stock_rules.adjust_stock(current, op.sku, op.delta, None, None)
        if isinstance(result, stock_rules.Applied):
            states.update(result.states)
    if plan.batch is None:
        assert all(states.get(s) == committed.get(s) for s in SKUS)
        return
    for row in plan.batch.stock_rows:
        assert (row.available, row.version) == (states[row.sku].available, states[row.sku].version)
        assert row.expected_version == (committed[row.sku].version if row.sku in committed else 0)
        assert row.available >= 0
    assert {r.sku for r in plan.batch.stock_rows} == {e.sku for e in plan.batch.events}
    answered = len(plan.batch.entries) + len(plan.immediate)
    assert answered == len(decided)


def test_holds_wait_for_the_batch_and_pass_blocked_requests():
    committed = {"a": SkuState("a", 5, 1), "b": SkuState("b", 5, 1)}
    waiting = order("w", [("a", 1), ("b", 1)])
    hold_b = HoldSku("b", FakeReply())
    plan = plan_batch(committed, deque([waiting, hold_b]), {"a"}, 1)
    # `waiting` needs "a", which another order holds; the hold on "b" must not queue behind it
    assert [h for h, _ in plan.holds] == [hold_b] and list(plan.deferred) == [waiting]

    touch = order("t", [("a", 1)])
    hold_a = HoldSku("a", FakeReply())
    plan = plan_batch(committed, deque([touch, hold_a]), set(), 2)
    assert plan.holds == [] and list(plan.deferred) == [hold_a]  # "a" is in this batch: not durable yet


def test_handoff_keeps_arrival_order():
    committed = {"a": SkuState("a", 5, 1)}
    first = order("o1", [("a", 1)])
    handoff = HandOffSku("a", None)
    plan = plan_batch(committed, deque([first, handoff]), set(), 1)
    assert plan.handoffs == [] and list(plan.deferred) == [handoff]
    plan = plan_batch({"a": SkuState("a", 4, 2)}, deque([handoff]), set(), 2)
    assert plan.handoffs == [(handoff, SkuState("a", 4, 2))]


def test_cancel_gives_back_and_changes_status():
    committed = {"a": SkuState("a", 1, 7)}
    cancel = CancelOrder("web", "o", (OrderLine("a", 4),), "accepted", FakeReply())
    plan = plan_batch(committed, deque([cancel]), set(), 1)
    assert plan.batch.stock_rows[0].available == 5
    change = plan.batch.entries[0].status_change
    assert (change.from_status, change.to_status) == ("accepted", "cancelled")
