"""The loop side of group commit: commits an owner's batch and settles its answers.

Runs on the event loop. Answers go out only after the batch is durable
(invariant 3); whatever happens, every request of the batch gets an answer and
its owner gets told the outcome, so it can send the next batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import msgspec
import pykka
import structlog

from actors.answers import Answer, error_answer, unavailable_answer
from actors.batch_builder import Batch, merge_batches
from actors.messages import (
    BatchCommitted,
    BatchConflicted,
    BatchFailed,
    CancelOrder,
    HoldSku,
    PlaceOrder,
    SkuState,
    StockChanged,
    Unavailable,
)
from persistence.stock_store import CommitConflicts, StoredOrder, commit_batch, entry_order_key

log = structlog.get_logger("invsync.commit")

# Errors after which we cannot know whether the transaction committed.
DATABASE_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
)


class Committed(msgspec.Struct, frozen=True):
    states: tuple[SkuState, ...]
    seconds: float = 0.0


class Conflicted(msgspec.Struct, frozen=True):
    retry: tuple[Any, ...]


class Failed(msgspec.Struct, frozen=True):
    reason: str


def replay_answer(op: Any, stored: StoredOrder) -> Answer:
    """The answer to a request whose order the database already has."""
    if isinstance(op, PlaceOrder):
        if stored.body_hash != op.body_hash:
            return error_answer(
                422,
                "idempotency_conflict",
                f"order {op.order_id!r} on channel {op.channel!r} was already placed with a different body",
                "order_id",
            )
        return Answer(stored.http_status, stored.response, replayed=True)
    if stored.status == "cancelled":
        return Answer(200, stored.response, replayed=True)
    return error_answer(
        409, "order_not_cancellable", f"the order is {stored.status}", "order_id"
    )


class Committer:
    """Commits owners' batches, many at a time in one transaction.

    A transaction and its fsync cost about the same for one row or a
    thousand: batches that arrive while `max_in_flight` transactions are
    running are merged into the next one. Batches of different owners touch
    different SKUs; an owner's batches build on each other, so an owner has at
    most one transaction running and its waiting batches go together, in
    order, into its next one.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        publish: Callable[[Sequence[StockChanged]], None] = lambda changes: None,
        observe: Callable[[Batch, float], None] = lambda batch, seconds: None,
        max_in_flight: int = 2,
    ) -> None:
        self._pool = pool
        self._publish = publish
        self._observe = observe
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._owners_in_db: set[str] = set()
        # Owners whose batches failed: what they send before they have settled
        # was decided on the failed batches and goes straight back.
        self._poisoned: set[str] = set()
        # (batch, owner to tell, or a future to settle with the outcome)
        self._waiting: list[tuple[Batch, Any]] = []
        self._tasks: set[asyncio.Task] = set()
        self.transactions = 0

    def submit(self, batch: Batch, owner: Any) -> None:
        """Called on the loop (through call_soon_threadsafe) by an owner."""
        self._enqueue(batch, owner)

    async def run(self, batch: Batch) -> Committed | Conflicted | Failed:
        """Commit one batch (merged with others) and answer its requests."""
        future = asyncio.get_running_loop().create_future()
        self._enqueue(batch, future)
        return await future

    def _enqueue(self, batch: Batch, waiter: Any) -> None:
        key = _owner_key(waiter)
        if key in self._poisoned:
            if not batch.fresh_base:
                _tell_outcome(waiter, batch, Conflicted(tuple(entry.op for entry in batch.entries)))
                return
            self._poisoned.discard(key)
        self._waiting.append((batch, waiter))
        self._start_next()

    def _start_next(self) -> None:
        if not self._waiting or self._in_flight >= self._max_in_flight:
            return
        group, later = [], []
        for item in self._waiting:
            (later if _owner_key(item[1]) in self._owners_in_db else group).append(item)
        if not group:
            return
        self._waiting = later
        self._owners_in_db.update(k for k in (_owner_key(w) for _, w in group) if k is not None)
        self._in_flight += 1
        task = asyncio.get_running_loop().create_task(self._commit_group(group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _commit_group(self, group: list[tuple[Batch, Any]]) -> None:
        try:
            batches = [batch for batch, _ in group]
            outcomes = await self._commit(batches)
            if outcomes is None:
                # A stale owner spoiled the merged transaction: find out which
                # one by committing each owner's batches on their own.
                outcomes = await self._commit_per_owner(group)
            # Owners first, so they build their next batch while we answer this one.
            for (batch, waiter), outcome in zip(group, outcomes):
                if isinstance(waiter, asyncio.Future):
                    waiter.set_result(outcome)
                else:
                    _tell_outcome(waiter, batch, outcome)
            self._return_dependent_batches(group, outcomes)
            for (batch, _), outcome in zip(group, outcomes):
                if isinstance(outcome, Committed):
                    self._succeed(batch, outcome.seconds)
        finally:
            self._in_flight -= 1
            self._owners_in_db.difference_update(_owner_key(w) for _, w in group)
            self._start_next()

    def _return_dependent_batches(self, group, outcomes) -> None:
        """An owner whose transaction did not commit gets its waiting batches back.

        They were decided on top of the batches that failed, so they would
        fail their version fence; unsent, their requests are simply decided
        again once the owner has reloaded.
        """
        failed = {
            _owner_key(waiter)
            for (_, waiter), outcome in zip(group, outcomes)
            if not isinstance(outcome, Committed) and _owner_key(waiter) is not None
        }
        if not failed:
            return
        self._poisoned.update(failed)
        keep = []
        for batch, waiter in self._waiting:
            if _owner_key(waiter) in failed:
                _tell_outcome(waiter, batch, Conflicted(tuple(entry.op for entry in batch.entries)))
            else:
                keep.append((batch, waiter))
        self._waiting = keep

    async def _commit_per_owner(self, group: list[tuple[Batch, Any]]) -> list:
        chains: dict[Any, list[int]] = {}
        for i, (_, waiter) in enumerate(group):
            chains.setdefault(_owner_key(waiter) or ("future", i), []).append(i)
        results = await asyncio.gather(*(self._commit([group[i][0] for i in idx]) for idx in chains.values()))
        outcomes: list = [None] * len(group)
        for idx, result in zip(chains.values(), results):
            if result is None:  # the owner's own batches failed their fence
                result = [self._fail(group[i][0], "a concurrent change won; retry", None) for i in idx]
            for i, outcome in zip(idx, result):
                outcomes[i] = outcome
        return outcomes

    async def _commit(self, batches: list[Batch]) -> list | None:
        """Outcome per batch; None when a merged group failed a version fence."""
        batch = batches[0] if len(batches) == 1 else merge_batches(batches)
        started = time.perf_counter()
        try:
            conflicts = await commit_batch(self._pool, batch)
        except asyncpg.SerializationError as exc:
            if len(batches) > 1:
                return None
            return [self._fail(batch, "a concurrent change won; retry", exc)]
        except DATABASE_ERRORS as exc:
            return [self._fail(b, "the database is unavailable; nothing was acknowledged", exc) for b in batches]
        self.transactions += 1
        if conflicts is not None:
            return [self._answer_conflicts(b, conflicts) for b in batches]
        seconds = time.perf_counter() - started
        return [Committed(tuple(SkuState(r.sku, r.available, r.version) for r in b.stock_rows), seconds) for b in batches]

    def _succeed(self, batch: Batch, seconds: float) -> None:
        """Answer and announce a committed batch (after its owner was told)."""
        self._observe(batch, seconds)
        for entry in batch.entries:
            entry.op.reply.settle_here(entry.answer)
            if entry.record is not None:
                log.info(
                    "order " + entry.record.status,
                    order_id=entry.record.order_id,
                    channel=entry.record.channel,
                    skus=sorted(entry.op.skus),
                )
        self._publish(batch.changes)

    def _fail(self, batch: Batch, detail: str, exc: BaseException | None) -> Failed:
        log.warning("batch not committed", error=repr(exc), requests=len(batch.entries), skus=len(batch.stock_rows))
        answer = unavailable_answer(detail)
        for entry in batch.entries:
            entry.op.reply.settle_here(answer)
        return Failed(repr(exc))

    def _answer_conflicts(self, batch: Batch, conflicts: CommitConflicts) -> Conflicted:
        retry = []
        for entry in batch.entries:
            stored = conflicts.stored.get(entry_order_key(entry))
            if stored is not None and isinstance(entry.op, (PlaceOrder, CancelOrder)):
                entry.op.reply.settle_here(replay_answer(entry.op, stored))
            else:
                retry.append(entry.op)
        return Conflicted(tuple(retry))


def _owner_key(waiter: Any) -> str | None:
    return None if isinstance(waiter, asyncio.Future) else waiter.actor_urn


def _tell_outcome(owner: Any, batch: Batch, outcome: Committed | Conflicted | Failed) -> None:
    if isinstance(outcome, Committed):
        message = BatchCommitted(batch.batch_id, outcome.states)
    elif isinstance(outcome, Conflicted):
        message = BatchConflicted(batch.batch_id, outcome.retry)
    else:
        message = BatchFailed(batch.batch_id, batch.skus)
    try:
        owner.tell(message)
    except pykka.ActorDeadError:
        # A restarted owner reloads from the database; what was to be decided
        # again is answered here, or nobody would.
        if isinstance(outcome, Conflicted):
            answer = unavailable_answer("the stock owner restarted; retry (orders are idempotent by order_id)")
            for op in outcome.retry:
                _refuse_here(op, answer)


def _refuse_here(op: Any, answer: Answer) -> None:
    if isinstance(op, HoldSku):
        op.reply.settle_here(Unavailable("the stock owner restarted"))
    else:
        op.reply.settle_here(answer)
