"""`invsync check`: verify the invariants of the stored data on any database.

Read-only. Every check is one query that lists violations, so a report says
exactly which SKU or order is wrong, not only that something is.
"""

from __future__ import annotations

import asyncpg
import msgspec


class Violation(msgspec.Struct, frozen=True):
    check: str
    subject: str
    detail: str


class CheckReport(msgspec.Struct):
    skus: int
    events: int
    orders: dict[str, int]
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return not self.violations


# name -> (query returning (subject, detail) rows, what it means)
_CHECKS: dict[str, str] = {
    "available_equals_sum_of_events": """
        SELECT s.sku, format('available %s, events sum to %s', s.available, coalesce(e.total, 0))
        FROM stock s LEFT JOIN (SELECT sku, sum(delta) AS total FROM stock_events GROUP BY sku) e USING (sku)
        WHERE s.available <> coalesce(e.total, 0)""",
    "version_equals_last_event": """
        SELECT s.sku, format('version %s, last event %s', s.version, e.last)
        FROM stock s LEFT JOIN (SELECT sku, max(version) AS last FROM stock_events GROUP BY sku) e USING (sku)
        WHERE e.last IS DISTINCT FROM s.version""",
    "events_without_stock_row": """
        SELECT DISTINCT e.sku, 'events exist but no stock row' FROM stock_events e
        WHERE NOT EXISTS (SELECT 1 FROM stock s WHERE s.sku = e.sku)""",
    "never_negative": """
        SELECT sku, format('available %s', available) FROM stock WHERE available < 0
        UNION ALL
        SELECT sku, format('version %s leaves %s', version, available_after) FROM stock_events WHERE available_after < 0""",
    "no_duplicate_versions": """
        SELECT sku, format('version %s appears %s times', version, count(*))
        FROM stock_events GROUP BY sku, version HAVING count(*) > 1""",
    "each_event_follows_the_previous": """
        SELECT sku, format('version %s: %s + %s <> %s', version, prev, delta, available_after) FROM (
            SELECT sku, version, delta, available_after,
                   lag(available_after, 1, 0::bigint) OVER (PARTITION BY sku ORDER BY version) AS prev
            FROM stock_events) t
        WHERE available_after <> prev + delta""",
    "orders_applied_exactly_once": """
        WITH taken AS (
            SELECT o.channel, o.order_id, o.status,
                   coalesce((SELECT sum((l->>'qty')::bigint) FROM jsonb_array_elements(o.lines::jsonb) l), 0) AS qty
            FROM orders o),
        moved AS (
            SELECT channel, order_id,
                   coalesce(-sum(delta) FILTER (WHERE kind = 'order'), 0) AS out,
                   coalesce(sum(delta) FILTER (WHERE kind = 'cancel'), 0) AS back
            FROM stock_events WHERE order_id IS NOT NULL GROUP BY channel, order_id)
        SELECT t.channel || '/' || t.order_id,
               format('%s: lines take %s, events took %s and gave back %s', t.status, t.qty, coalesce(m.out, 0), coalesce(m.back, 0))
        FROM taken t LEFT JOIN moved m USING (channel, order_id)
        WHERE coalesce(m.out, 0) <> CASE WHEN t.status = 'refused' THEN 0 ELSE t.qty END
           OR coalesce(m.back, 0) <> CASE WHEN t.status = 'cancelled' THEN t.qty ELSE 0 END""",
    "events_belong_to_orders": """
        SELECT DISTINCT e.channel || '/' || e.order_id, 'order events without an order record'
        FROM stock_events e
        WHERE e.kind IN ('order', 'cancel')
          AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.channel = e.channel AND o.order_id = e.order_id)""",
}


async def check_database(conn: asyncpg.Connection) -> CheckReport:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        violations = []
        for name, query in _CHECKS.items():
            for subject, detail in await conn.fetch(query):
                violations.append(Violation(name, subject, detail))
        skus = await conn.fetchval("SELECT count(*) FROM stock")
        events = await conn.fetchval("SELECT count(*) FROM stock_events")
        orders = {r[0]: r[1] for r in await conn.fetch("SELECT status, count(*) FROM orders GROUP BY status")}
    return CheckReport(skus, events, orders, violations)
