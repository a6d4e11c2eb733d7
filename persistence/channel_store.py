"""Channels, listings, confirmed listing state and dead letters in PostgreSQL (asyncpg)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import msgspec

from channels.channel_config import ChannelDefinition, parse_config
from channels.dead_letter_actor import Letter

_CHANNEL_COLUMNS = "id, kind, config, rate_per_second, rate_burst, buffer, enabled, created_at, updated_at"


def definition_of(row: asyncpg.Record) -> ChannelDefinition:
    config = parse_config(row["kind"], msgspec.json.decode(row["config"]))
    return ChannelDefinition(
        row["id"], row["kind"], config, row["rate_per_second"], row["rate_burst"], row["buffer"], row["enabled"]
    )


def _config_json(definition: ChannelDefinition) -> str:
    return msgspec.json.encode(definition.config).decode()


async def list_channels(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(f"SELECT {_CHANNEL_COLUMNS} FROM channels ORDER BY id")


async def fetch_channel(pool: asyncpg.Pool, channel_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(f"SELECT {_CHANNEL_COLUMNS} FROM channels WHERE id = $1", channel_id)


async def insert_channel(pool: asyncpg.Pool, d: ChannelDefinition) -> asyncpg.Record | None:
    """None when the id is taken."""
    return await pool.fetchrow(
        f"""INSERT INTO channels (id, kind, config, rate_per_second, rate_burst, buffer, enabled)
            VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING
            RETURNING {_CHANNEL_COLUMNS}""",
        d.id, d.kind, _config_json(d), d.rate_per_second, d.rate_burst, d.buffer, d.enabled,
    )


async def update_channel(pool: asyncpg.Pool, d: ChannelDefinition) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"""UPDATE channels SET config = $2::jsonb, rate_per_second = $3, rate_burst = $4, buffer = $5,
                   enabled = $6, updated_at = now()
            WHERE id = $1 RETURNING {_CHANNEL_COLUMNS}""",
        d.id, _config_json(d), d.rate_per_second, d.rate_burst, d.buffer, d.enabled,
    )


async def delete_channel(pool: asyncpg.Pool, channel_id: str) -> bool:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM channel_listing_state WHERE channel_id = $1", channel_id)
        await conn.execute("DELETE FROM channel_dead_letters WHERE channel_id = $1", channel_id)
        status = await conn.execute("DELETE FROM channels WHERE id = $1", channel_id)
    return status.endswith(" 1")


async def replace_listings(pool: asyncpg.Pool, channel_id: str, listings: dict[str, str]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM channel_listings WHERE channel_id = $1", channel_id)
        await conn.execute(
            """INSERT INTO channel_listings (channel_id, sku, external_id)
               SELECT $1, s, e FROM unnest($2::text[], $3::text[]) AS i(s, e)""",
            channel_id, list(listings), list(listings.values()),
        )


async def load_listings(pool: asyncpg.Pool, channel_id: str) -> dict[str, str]:
    rows = await pool.fetch("SELECT sku, external_id FROM channel_listings WHERE channel_id = $1", channel_id)
    return {r[0]: r[1] for r in rows}


async def load_confirmed(pool: asyncpg.Pool, channel_id: str) -> dict[str, tuple[int, int]]:
    rows = await pool.fetch(
        "SELECT sku, quantity, version FROM channel_listing_state WHERE channel_id = $1", channel_id
    )
    return {r[0]: (r[1], r[2]) for r in rows}


async def upsert_confirmed(pool: asyncpg.Pool, rows: Sequence[tuple[str, str, int, int]]) -> None:
    """(channel, sku, quantity, version): only ever moves a row forward in version."""
    await pool.execute(
        """INSERT INTO channel_listing_state AS s (channel_id, sku, quantity, version)
           SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
           ON CONFLICT (channel_id, sku) DO UPDATE
               SET quantity = excluded.quantity, version = excluded.version, confirmed_at = now()
               WHERE s.version <= excluded.version""",
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
    )


# --- dead letters ------------------------------------------------------------------------------


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def upsert_dead(pool: asyncpg.Pool, letter: Letter) -> None:
    await pool.execute(
        """INSERT INTO channel_dead_letters AS d (channel_id, sku, version, quantity, error, attempts, next_attempt_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (channel_id, sku) DO UPDATE
               SET version = excluded.version, quantity = excluded.quantity, error = excluded.error,
                   attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at, updated_at = now()""",
        letter.channel, letter.sku, letter.version, letter.quantity, letter.error[:2000], letter.attempts,
        _ts(letter.next_at),
    )


async def delete_dead(pool: asyncpg.Pool, channel_id: str, sku: str) -> None:
    await pool.execute("DELETE FROM channel_dead_letters WHERE channel_id = $1 AND sku = $2", channel_id, sku)


async def load_dead_letters(pool: asyncpg.Pool) -> list[Letter]:
    rows = await pool.fetch(
        "SELECT channel_id, sku, version, quantity, error, attempts, next_attempt_at FROM channel_dead_letters"
    )
    return [
        Letter(r[0], r[1], r[2], r[3], r[4], r[5], 0, r[6].timestamp())
        for r in rows
    ]


_DEAD_COLUMNS = "id, channel_id, sku, version, quantity, error, attempts, next_attempt_at, created_at, updated_at"


async def list_dead_letters(
    pool: asyncpg.Pool, channel_id: str | None, after_id: int | None, limit: int
) -> list[asyncpg.Record]:
    return await pool.fetch(
        f"""SELECT {_DEAD_COLUMNS} FROM channel_dead_letters
            WHERE ($1::text IS NULL OR channel_id = $1) AND ($2::bigint IS NULL OR id > $2)
            ORDER BY id LIMIT $3""",
        channel_id, after_id, limit,
    )


async def fetch_dead_letter(pool: asyncpg.Pool, letter_id: int) -> asyncpg.Record | None:
    return await pool.fetchrow(f"SELECT {_DEAD_COLUMNS} FROM channel_dead_letters WHERE id = $1", letter_id)


# --- clean shutdown marker ---------------------------------------------------------------------


async def begin_run(pool: asyncpg.Pool) -> bool:
    """Mark the channel side as running; True when the previous run stopped cleanly (or never ran)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow("SELECT clean_shutdown FROM channel_sync_runs WHERE id = 1 FOR UPDATE")
        await conn.execute(
            """INSERT INTO channel_sync_runs (id, clean_shutdown) VALUES (1, false)
               ON CONFLICT (id) DO UPDATE SET clean_shutdown = false, updated_at = now()"""
        )
    return row is None or row[0]


async def end_run(pool: asyncpg.Pool) -> None:
    await pool.execute("UPDATE channel_sync_runs SET clean_shutdown = true, updated_at = now() WHERE id = 1")


async def load_dead_skus(pool: asyncpg.Pool, channel_id: str) -> list[str]:
    rows = await pool.fetch("SELECT sku FROM channel_dead_letters WHERE channel_id = $1", channel_id)
    return [r[0] for r in rows]
