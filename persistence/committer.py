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
from actors.batch_builder import Batch
from actors.messages import (
    BatchCommitted,
    BatchConflicted,
    BatchFailed,
    CancelOrder,
    PlaceOrder,
    SkuState,
    StockChanged,
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
    def __init__(
        self,
        pool: asyncpg.Pool,
        publish: Callable[[Sequence[StockChanged]], None] = lambda changes: None,
        observe: Callable[[Batch, float], None] = lambda batch, seconds: None,
    ) -> None:
        self._pool = pool
        self._publish = publish
        self._observe = observe
        self._tasks: set[asyncio.Task] = set()
        self.batches = 0

    def submit(self, batch: Batch, owner: Any) -> None:
        """Called on the loop (through call_soon_threadsafe) by an owner."""
        task = asyncio.get_running_loop().create_task(self._commit_for(batch, owner))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _commit_for(self, batch: Batch, owner: Any) -> None:
        outcome = await self.run(batch)
        if isinstance(outcome, Committed):
            message = BatchCommitted(batch.batch_id, outcome.states)
        elif isinstance(outcome, Conflicted):
            message = BatchConflicted(batch.batch_id, outcome.retry)
        else:
            message = BatchFailed(batch.batch_id, batch.skus)
        try:
            owner.tell(message)
        except pykka.ActorDeadError:
            pass  # a restarted owner reloads from the database

    async def run(self, batch: Batch) -> Committed | Conflicted | Failed:
        started = time.perf_counter()
        try:
            conflicts = await commit_batch(self._pool, batch)
        except asyncpg.SerializationError as exc:
            return self._fail(batch, "a concurrent change won; retry", exc)
        except DATABASE_ERRORS as exc:
            return self._fail(batch, "the database is unavailable; nothing was acknowledged", exc)
        if conflicts is not None:
            return self._answer_conflicts(batch, conflicts)
        self.batches += 1
        self._observe(batch, time.perf_counter() - started)
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
        return Committed(tuple(SkuState(r.sku, r.available, r.version) for r in batch.stock_rows))

    def _fail(self, batch: Batch, detail: str, exc: BaseException) -> Failed:
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
