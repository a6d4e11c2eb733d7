"""Writing and reading stock, events and orders with asyncpg."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import msgspec

from actors.batch_builder import Batch, BatchEntry
from actors.messages import SkuState


class StoredOrder(msgspec.Struct, frozen=True):
    channel: str
    order_id: str
    body_hash: str
    status: str
    http_status: int
    response: bytes


class CommitConflicts(msgspec.Struct, frozen=True):
    """Orders of the batch that already exist (or changed status): nothing was written."""

    stored: dict[tuple[str, str], StoredOrder]


_COMMIT_SQL = """
SELECT channel, order_id, body_hash, status, http_status, response FROM invsync_commit_batch(
    $1::text[], $2::bigint[], $3::bigint[], $4::bigint[],
    $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[],
    $13::text[], $14::text[], $15::text[], $16::text[], $17::integer[], $18::text[], $19::text[],
    $20::text[], $21::text[], $22::text[], $23::text[], $24::text[])
"""


_ORDER_CONFLICT = "IV409"

_CONFLICTS_SQL = """
SELECT o.channel, o.order_id, o.body_hash, o.status, o.http_status, o.response
FROM orders o JOIN unnest($1::text[], $2::text[]) AS i(channel, order_id)
  ON o.channel = i.channel AND o.order_id = i.order_id
UNION ALL
SELECT o.channel, o.order_id, o.body_hash, o.status, o.http_status, coalesce(o.cancel_response, o.response)
FROM orders o JOIN unnest($3::text[], $4::text[], $5::text[]) AS u(channel, order_id, from_status)
  ON o.channel = u.channel AND o.order_id = u.order_id
WHERE o.status <> u.from_status
"""


def _commit_args(batch: Batch) -> list[list]:
    rows, events = batch.stock_rows, batch.events
    records = [e.record for e in batch.entries if e.record is not None]
    changes = [e.status_change for e in batch.entries if e.status_change is not None]
    return [
        [r.sku for r in rows],
        [r.expected_version for r in rows],
        [r.available for r in rows],
        [r.version for r in rows],
        [e.sku for e in events],
        [e.version for e in events],
        [e.delta for e in events],
        [e.available_after for e in events],
        [e.kind for e in events],
        [e.order_id for e in events],
        [e.channel for e in events],
        [e.reason for e in events],
        [o.channel for o in records],
        [o.order_id for o in records],
        [o.body_hash for o in records],
        [o.status for o in records],
        [o.http_status for o in records],
        [o.response.decode() for o in records],
        [o.lines.decode() for o in records],
        [c.channel for c in changes],
        [c.order_id for c in changes],
        [c.from_status for c in changes],
        [c.to_status for c in changes],
        [c.response.decode() for c in changes],
    ]


async def commit_batch(pool: asyncpg.Pool, batch: Batch) -> CommitConflicts | None:
    """Commit the batch in one round trip, or write nothing and return the conflicts.

    Raises asyncpg.SerializationError when a stock row's version is not the
    one the owner expected (another writer got there first: reload and retry),
    and connection errors when the database is away (outcome unknown).
    """
    args = _commit_args(batch)
    try:
        await pool.fetch(_COMMIT_SQL, *args)
        return None
    except asyncpg.PostgresError as exc:
        if getattr(exc, "sqlstate", None) != _ORDER_CONFLICT:
            raise
    # Some order of the batch is already recorded: nothing was written; say which.
    found = await pool.fetch(_CONFLICTS_SQL, args[12], args[13], args[19], args[20], args[21])
    if not found:
        # Gone again (cannot happen with one writer per order): let the owner retry.
        raise asyncpg.SerializationError("order conflict vanished")
    return CommitConflicts(
        {
            (r["channel"], r["order_id"]): StoredOrder(
                r["channel"], r["order_id"], r["body_hash"], r["status"], r["http_status"],
                r["response"].encode(),
            )
            for r in found
        }
    )


def entry_order_key(entry: BatchEntry) -> tuple[str, str] | None:
    if entry.record is not None:
        return (entry.record.channel, entry.record.order_id)
    if entry.status_change is not None:
        return (entry.status_change.channel, entry.status_change.order_id)
    return None


async def load_states(pool: asyncpg.Pool, skus: Sequence[str] | None = None) -> list[SkuState]:
    """The committed state of the given SKUs (all SKUs when None)."""
    if skus is None:
        rows = await pool.fetch("SELECT sku, available, version FROM stock")
    else:
        rows = await pool.fetch(
            "SELECT sku, available, version FROM stock WHERE sku = ANY($1::text[])", list(skus)
        )
    return [SkuState(r[0], r[1], r[2]) for r in rows]


async def fetch_stock(pool: asyncpg.Pool, sku: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT sku, available, version, updated_at FROM stock WHERE sku = $1", sku
    )


async def list_stock(pool: asyncpg.Pool, after: str | None, limit: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT sku, available, version, updated_at FROM stock
           WHERE $1::text IS NULL OR sku > $1 ORDER BY sku LIMIT $2""",
        after,
        limit,
    )


async def stock_history(
    pool: asyncpg.Pool, sku: str, before_version: int | None, limit: int
) -> list[asyncpg.Record]:
    return await pool.fetch(
        """SELECT version, delta, available_after, kind, order_id, channel, reason, created_at
           FROM stock_events WHERE sku = $1 AND ($2::bigint IS NULL OR version < $2)
           ORDER BY version DESC LIMIT $3""",
        sku,
        before_version,
        limit,
    )


async def fetch_order(pool: asyncpg.Pool, channel: str, order_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        """SELECT channel, order_id, body_hash, status, http_status, response, lines,
                  cancel_response, created_at, updated_at
           FROM orders WHERE channel = $1 AND order_id = $2""",
        channel,
        order_id,
    )
