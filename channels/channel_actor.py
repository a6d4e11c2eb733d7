"""One actor per connected channel: the plumbing around its DeliveryBook.

It keeps at most one request in flight (so a channel can never receive an older version of a
SKU after a newer one), asks its token bucket before each request, and hands the HTTP call to
the event loop through `ChannelIO`. The loop tells it the answer (`PushDone`) and wakes it when a
backoff, a throttle or the bucket allows the next request (`Wake`). It never blocks on anything.
"""

from __future__ import annotations

import random
import time
from itertools import count
from typing import Any

import pykka
import structlog

from channels.adapters import Adapter
from channels.channel_config import ChannelDefinition
from channels.channel_messages import (
    DeadLettered,
    Describe,
    Drained,
    ForgetDead,
    InitChannel,
    ListingsChanged,
    PushDone,
    RetryDeadLetters,
    StockChanges,
    Wake,
)
from channels.delivery_book import DeliveryBook, Policy
from channels.rate_limit import limiter
from channels.wire_types import Update, outcomes_for_all

log = structlog.get_logger("invsync.channel")

_request_ids = count(1)


class ChannelActor(pykka.ThreadingActor):
    def __init__(
        self,
        *,
        definition: ChannelDefinition,
        listings: dict[str, str],
        io: Any,
        dead_letters: Any,
        clock=time.monotonic,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.channel_id = definition.id
        self._definition = definition
        self._io = io
        self._dead_letters = dead_letters
        self._clock = clock
        self._rng = random.Random(seed)
        config = definition.config
        self._timeout = config.timeout_s
        self._adapter = Adapter(definition, listings)
        self._book = DeliveryBook(
            Policy(definition.buffer, config.max_attempts, config.backoff_base_s, config.backoff_cap_s),
            self._adapter.listed,
        )
        self._limiter = limiter(definition.rate_per_second, definition.rate_burst, clock())
        self._pause_until = 0.0  # channel-level backoff after a whole batch failed
        self._ready = False
        self._in_flight: tuple[int, list[Update]] | None = None
        self._wake_at: float | None = None

    def __repr__(self) -> str:
        return f"ChannelActor({self.channel_id})"

    def on_failure(self, exc_type, exc_value, tb) -> None:
        log.error("channel actor crashed; the hub restarts it", channel=self.channel_id, error=repr(exc_value))
        self.on_stop()
        self._io.crashed(self.channel_id, self.actor_ref)

    def on_stop(self) -> None:
        # A push whose answer we will not see may have been applied: record those SKUs as
        # unknown (quantity -1), so the next start pushes them whatever the stock says.
        book = self._book
        unknown = {sku: update.version for sku, update in book.in_flight.items()}
        for sku in book.uncertain:
            shown = book.confirmed.get(sku)
            unknown.setdefault(sku, shown[1] if shown is not None else 0)
        if unknown:
            self._io.confirmed(self.channel_id, [(sku, -1, version) for sku, version in unknown.items()])

    # --- messages ------------------------------------------------------------------------

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, StockChanges):
            self._offer(message.changes)
        elif isinstance(message, PushDone):
            for changes in message.changes:
                self._offer(changes)
            self._on_push_done(message)
        elif isinstance(message, Wake):
            if self._wake_at is not None and message.at >= self._wake_at:
                self._wake_at = None
        elif isinstance(message, InitChannel):
            self._book.load(message.stock, message.confirmed, message.dead, message.resend_all)
            self._ready = True
        elif isinstance(message, ListingsChanged):
            self._adapter.listings = dict(message.listings)
            self._book.relist()
        elif isinstance(message, RetryDeadLetters):
            done = self._book.retry_dead(message.skus, self._clock())
            if done:
                self._tell_dead_letters(Drained(self.channel_id, tuple((sku, 0) for sku in done)))
        elif isinstance(message, ForgetDead):
            self._book.forget_dead(message.sku)
        elif isinstance(message, Describe):
            message.reply.send(self.describe())
            return None
        else:
            log.warning("unknown message", channel=self.channel_id, message=type(message).__name__)
            return None
        self._pump()
        return None

    def _offer(self, changes) -> None:
        me = self.channel_id
        offer = self._book.offer
        for change in changes:
            offer(change.sku, change.available, change.version, change.origin_channel == me)

    def _tell_dead_letters(self, message: Any) -> None:
        try:
            self._dead_letters.tell(message)
        except pykka.ActorDeadError:
            pass

    # --- sending ----------------------------------------------------------------------------

    def _pump(self) -> None:
        if not self._ready or self._in_flight is not None:
            return
        book = self._book
        while True:
            now = self._clock()
            due = book.next_due(now)
            if due is None:
                return
            ready_at = max(due, self._pause_until, now + self._limiter.wait(now))
            if ready_at > now:
                self._wake(ready_at, now)
                return
            updates = book.select(now, self._adapter.max_batch)
            if updates:
                break
        updates, later = self._adapter.split_for_request(updates)
        for update in later:
            book.in_flight.pop(update.sku, None)
            book._requeue(update.sku, update, 0.0)
        self._limiter.take(now)
        request_id = next(_request_ids)
        try:
            request = self._adapter.build(updates)
        except ValueError as exc:  # a listing the format cannot use (e.g. not numeric)
            self._settle(updates, [], str(exc))
            self._pump()
            return
        self._in_flight = (request_id, updates)
        self._io.send(self.channel_id, self.actor_ref, request_id, request, self._timeout)

    def _wake(self, at: float, now: float) -> None:
        if self._wake_at is not None and self._wake_at <= at + 0.0005:
            return  # an earlier wake is already on its way
        self._wake_at = at
        self._io.wake(self.actor_ref, max(0.0, at - now), Wake(at))

    def _on_push_done(self, done: PushDone) -> None:
        if self._in_flight is None or self._in_flight[0] != done.request_id:
            return
        _, updates = self._in_flight
        self._in_flight = None
        outcomes = self._adapter.interpret(updates, done.status, done.headers, done.body, done.error)
        self._settle(updates, outcomes, None)

    def _settle(self, updates: list[Update], outcomes: list, build_error: str | None) -> None:
        if build_error is not None:
            outcomes = outcomes_for_all(updates, "failed", error=f"request not built: {build_error}")
        now = self._clock()
        settled = self._book.settle(outcomes, now, self._rng.random)
        if settled.throttle_until is not None:
            self._limiter.pause_until(settled.throttle_until)
        if settled.channel_pause_until is not None:
            self._pause_until = settled.channel_pause_until
            log.info(
                "channel push failed; backing off",
                channel=self.channel_id,
                failures=self._book.failures,
                seconds=round(settled.channel_pause_until - now, 3),
                error=outcomes[0].error if outcomes else None,
            )
        else:
            self._pause_until = 0.0
        if settled.confirmed:
            self._io.confirmed(self.channel_id, settled.confirmed)
        if settled.dead:
            log.warning(
                "channel updates dead-lettered",
                channel=self.channel_id,
                skus=[d.sku for d in settled.dead][:20],
                count=len(settled.dead),
                error=settled.dead[0].error,
            )
            self._tell_dead_letters(DeadLettered(self.channel_id, tuple(settled.dead)))
        if settled.drained:
            self._tell_dead_letters(Drained(self.channel_id, tuple(settled.drained)))

    # --- status -----------------------------------------------------------------------------

    def describe(self) -> dict:
        book = self._book
        now = self._clock()
        throttled_for = max(0.0, self._limiter.paused_until - now)
        return {
            "ready": self._ready,
            "pending": len(book.pending),
            "in_flight": len(book.in_flight),
            "confirmed_skus": len(book.confirmed),
            "uncertain_skus": len(book.uncertain),
            "unlisted_skus": len(book.unlisted),
            "unlisted_sample": sorted(book.unlisted)[:20],
            "open_dead_letters": len(book.dead),
            "consecutive_failures": book.failures,
            "backing_off_s": round(max(0.0, self._pause_until - now), 3),
            "throttled_for_s": round(throttled_for, 3),
            "counters": {
                "requests": book.counters.requests,
                "confirmed": book.counters.confirmed,
                "throttled": book.counters.throttled,
                "retried": book.counters.retried,
                "failed": book.counters.failed,
                "dead_lettered": book.counters.dead_lettered,
                "skipped_unchanged": book.counters.skipped_unchanged,
            },
        }
