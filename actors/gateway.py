"""The event loop's door into the actors.

Every method is a coroutine that tells the supervisor and awaits an asyncio
Future the actors settle through `call_soon_threadsafe`: the loop never blocks
on an actor. Orders that span several owners are coordinated here: each SKU is
held in sorted order (so two such orders can never wait on each other), the
order is committed in one transaction, and the holds are released.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from itertools import count
from typing import Any

import asyncpg
import msgspec
import pykka
import structlog

from actors.answers import Answer, error_answer, unavailable_answer
from actors.batch_builder import single_order_batch
from actors.messages import (
    AdjustStock,
    CancelOrder,
    HandleRequests,
    HoldSku,
    NeedsCoordination,
    OrderLine,
    PlaceOrder,
    ReleaseSku,
    SetStock,
    SkuHeld,
    Unavailable,
)
from actors.replies import Reply
from persistence.committer import DATABASE_ERRORS, Committed, Committer, Failed
from persistence.stock_store import fetch_order

log = structlog.get_logger("invsync.gateway")

_coordinated_batch_ids = count(1_000_000_000)

TIMEOUT_DETAIL = "no decision in time; the outcome is unknown, retry with the same order_id"


class StockGateway:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        supervisor: Any,
        committer: Committer,
        pool: asyncpg.Pool,
        timeout: float = 30.0,
        recent_answers: int = 100_000,
    ) -> None:
        self._loop = loop
        self._supervisor = supervisor
        self._committer = committer
        self._pool = pool
        self._timeout = timeout
        # (channel, order_id) -> (body hash, future of the first answer)
        self._in_flight: dict[tuple[str, str], tuple[str, asyncio.Future]] = {}
        self._outbox: list[Any] = []
        # The final answers of recent orders, so retries are answered from memory
        # (older ones are found by the commit's idempotency check in the database).
        self._recent: OrderedDict[tuple[str, str], tuple[str, Answer]] = OrderedDict()
        self._recent_limit = recent_answers

    # --- plumbing ----------------------------------------------------------------------

    def _send(self, message: Any) -> None:
        """Queue a request for the supervisor; all requests of one loop turn go together."""
        self._outbox.append(message)
        if len(self._outbox) == 1:
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        requests, self._outbox = tuple(self._outbox), []
        try:
            self._supervisor.tell(HandleRequests(requests))
        except pykka.ActorDeadError:
            for request in requests:
                request.reply.settle_here(
                    Unavailable("the service is shutting down")
                    if isinstance(request, HoldSku)
                    else unavailable_answer("the service is shutting down")
                )

    async def _await(self, reply: Reply) -> Any:
        """The reply's value, or None after the timeout (the loop is never blocked)."""
        timer = self._loop.call_later(self._timeout, self._timed_out, reply)
        try:
            return await reply.future
        finally:
            timer.cancel()

    def _timed_out(self, reply: Reply) -> None:
        log.warning("no answer from the actors in time", timeout_s=self._timeout)
        reply.settle_here(None)

    async def _ask(self, make: Any) -> Any:
        reply = Reply(self._loop)
        self._send(make(reply))
        return await self._await(reply)

    # --- orders ------------------------------------------------------------------------

    async def place_order(
        self,
        channel: str,
        order_id: str,
        lines: tuple[OrderLine, ...],
        body_hash: str,
        take_available: bool = False,
    ) -> Answer:
        key = (channel, order_id)
        recent = self._recent.get(key)
        if recent is not None:
            return self._replay(recent, body_hash, channel, order_id)
        running = self._in_flight.get(key)
        if running is not None:
            # The same order on another connection right now: one decision for both.
            first_hash, first = running
            if first_hash != body_hash:
                return error_answer(
                    422, "idempotency_conflict",
                    f"order {order_id!r} on channel {channel!r} is being placed with a different body",
                    "order_id",
                )
            answer = await asyncio.shield(first)
            return msgspec.structs.replace(answer, replayed=True) if answer.status < 500 else answer
        first = self._loop.create_future()
        self._in_flight[key] = (body_hash, first)
        try:
            answer = await self._place(PlaceOrder(channel, order_id, lines, body_hash, None, take_available))
        except BaseException:
            answer = unavailable_answer(TIMEOUT_DETAIL)
            raise
        finally:
            del self._in_flight[key]
            if not first.done():
                first.set_result(answer)
        if answer.status < 500 and answer.status != 422:
            self._remember(key, body_hash, answer)
        return answer

    def _remember(self, key: tuple[str, str], body_hash: str, answer: Answer) -> None:
        self._recent[key] = (body_hash, msgspec.structs.replace(answer, replayed=False))
        if len(self._recent) > self._recent_limit:
            self._recent.popitem(last=False)

    @staticmethod
    def _replay(recent: tuple[str, Answer], body_hash: str, channel: str, order_id: str) -> Answer:
        first_hash, answer = recent
        if first_hash != body_hash:
            return error_answer(
                422, "idempotency_conflict",
                f"order {order_id!r} on channel {channel!r} was already placed with a different body",
                "order_id",
            )
        return msgspec.structs.replace(answer, replayed=True)

    async def _place(self, order: PlaceOrder) -> Answer:
        answer = await self._ask(lambda reply: msgspec.structs.replace(order, reply=reply))
        if isinstance(answer, NeedsCoordination):
            return await self._coordinate(order)
        return answer if answer is not None else unavailable_answer(TIMEOUT_DETAIL)

    async def cancel_order(self, channel: str, order_id: str) -> Answer:
        key = ("cancel:" + channel, order_id)
        running = self._in_flight.get(key)
        if running is not None:
            # Two cancels of one order at once: one decision, so the second is a replay.
            answer = await asyncio.shield(running[1])
            return msgspec.structs.replace(answer, replayed=True) if answer.status < 300 else answer
        first = self._loop.create_future()
        self._in_flight[key] = ("", first)
        answer = unavailable_answer(TIMEOUT_DETAIL)
        try:
            answer = await self._cancel(channel, order_id)
        finally:
            del self._in_flight[key]
            first.set_result(answer)
        return answer

    async def _cancel(self, channel: str, order_id: str) -> Answer:
        try:
            row = await fetch_order(self._pool, channel, order_id)
        except DATABASE_ERRORS:
            return unavailable_answer("the database is unavailable; nothing was changed")
        if row is None:
            return error_answer(404, "unknown_order", f"no order {order_id!r} on channel {channel!r}", "order_id")
        if row["status"] == "cancelled":
            return Answer(200, row["cancel_response"].encode(), replayed=True)
        if row["status"] not in ("accepted", "oversold"):
            return error_answer(409, "order_not_cancellable", f"the order is {row['status']}", "order_id")
        lines = tuple(msgspec.json.decode(row["lines"], type=tuple[OrderLine, ...]))
        cancel = CancelOrder(channel, order_id, lines, row["status"], None)
        answer = await self._ask(lambda reply: msgspec.structs.replace(cancel, reply=reply))
        if isinstance(answer, NeedsCoordination):
            return await self._coordinate(cancel)
        return answer if answer is not None else unavailable_answer(TIMEOUT_DETAIL)

    # --- stock -------------------------------------------------------------------------

    async def set_stock(self, sku: str, available: int, reason: str | None, if_match: int | None) -> Answer:
        answer = await self._ask(lambda reply: SetStock(sku, available, reason, if_match, reply))
        return answer if answer is not None else unavailable_answer(TIMEOUT_DETAIL)

    async def adjust_stock(self, sku: str, delta: int, reason: str | None, if_match: int | None) -> Answer:
        answer = await self._ask(lambda reply: AdjustStock(sku, delta, reason, if_match, reply))
        return answer if answer is not None else unavailable_answer(TIMEOUT_DETAIL)

    # --- orders spanning owners --------------------------------------------------------------

    async def _hold(self, sku: str) -> SkuHeld | None:
        reply = HoldReply(self._loop)
        self._send(HoldSku(sku, reply))
        timer = self._loop.call_later(self._timeout, _give_up_hold, reply)
        held = await reply.future
        timer.cancel()
        return held if isinstance(held, SkuHeld) else None

    async def _coordinate(self, op: PlaceOrder | CancelOrder) -> Answer:
        held: dict[str, SkuHeld] = {}
        outcome = None
        try:
            for sku in sorted(op.skus):
                grant = await self._hold(sku)
                if grant is None:
                    return unavailable_answer("a stock owner did not answer; nothing was changed")
                held[sku] = grant
            reply = Reply(self._loop)
            batch = single_order_batch(
                msgspec.structs.replace(op, reply=reply),
                {sku: h.state for sku, h in held.items()},
                next(_coordinated_batch_ids),
            )
            outcome = await asyncio.shield(self._committer.run(batch))
            return reply.future.result()
        finally:
            committed = {s.sku: s for s in outcome.states} if isinstance(outcome, Committed) else {}
            for sku, grant in held.items():
                if isinstance(outcome, Failed):
                    state = None  # outcome unknown: the owner reloads it
                else:
                    state = committed.get(sku, grant.state)
                try:
                    grant.owner.tell(ReleaseSku(sku, state))
                except pykka.ActorDeadError:
                    pass


class HoldReply(Reply):
    """The reply to a hold: a grant that comes after we gave up is handed straight back."""

    __slots__ = ()

    def send(self, value: Any) -> None:
        self._loop.call_soon_threadsafe(self._arrive, value)

    def _arrive(self, value: Any) -> None:
        if not self.future.done():
            self.future.set_result(value)
        elif isinstance(value, SkuHeld):
            try:
                value.owner.tell(ReleaseSku(value.sku, value.state))
            except pykka.ActorDeadError:
                pass


def _give_up_hold(reply: Reply) -> None:
    reply.settle_here(None)


