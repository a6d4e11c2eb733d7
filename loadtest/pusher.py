"""Pushing quantities to channels the way the baselines do: straight HTTP, no actors.

Uses invsync's own wire formats (`channels.adapters.Adapter`), so a baseline's pushes cost the
channel exactly what invsync's cost.  Used by the `polling` baseline's poller and by the
`naive-db` baseline's synchronous fan-out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import aiohttp
import msgspec

from channels.adapters import Adapter
from channels.channel_config import ChannelDefinition, parse_config
from channels.wire_types import Update


class ChannelTarget(msgspec.Struct, frozen=True):
    """One channel as the harness registers it: the POST /v1/channels body plus its listings."""

    id: str
    kind: str
    config: dict
    listings: dict[str, str] = {}

    def registration(self, enabled: bool = True) -> dict:
        return {"id": self.id, "kind": self.kind, "config": self.config, "enabled": enabled}

    def definition(self) -> ChannelDefinition:
        return ChannelDefinition(self.id, self.kind, parse_config(self.kind, self.config))  # type: ignore[arg-type]


class PushStats(msgspec.Struct):
    requests: int = 0
    failed_requests: int = 0
    items: int = 0


class Pusher:
    """Sends updates to a fixed set of channels; one aiohttp session, no retries of its own."""

    def __init__(self, targets: Sequence[ChannelTarget], timeout_s: float = 10.0) -> None:
        self.adapters = {t.id: Adapter(t.definition(), t.listings) for t in targets}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self.stats = PushStats()

    async def __aenter__(self) -> Pusher:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def push(self, channel_id: str, updates: Sequence[Update]) -> set[str]:
        """Send `updates` to one channel in as few requests as its format allows; SKUs confirmed."""
        assert self._session is not None
        adapter = self.adapters[channel_id]
        pending = [u for u in updates if adapter.listed(u.sku)]
        confirmed: set[str] = set()
        while pending:
            batch, pending = pending[: adapter.max_batch], pending[adapter.max_batch :]
            now, later = adapter.split_for_request(batch)
            pending = later + pending
            request = adapter.build(now)
            self.stats.requests += 1
            self.stats.items += len(now)
            try:
                async with self._session.request(
                    request.method, request.url, data=request.body, headers=request.headers, timeout=self._timeout
                ) as response:
                    body = await response.read()
                    outcomes = adapter.interpret(now, response.status, response.headers, body, None)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                outcomes = adapter.interpret(now, 0, {}, b"", f"{type(exc).__name__}: {exc}")
            ok = {o.sku for o in outcomes if o.status == "confirmed"}
            if len(ok) < len(now):
                self.stats.failed_requests += 1
            confirmed |= ok
        return confirmed

    async def push_all(self, updates: Sequence[Update], skip: Mapping[str, str | None] | None = None) -> dict[str, set[str]]:
        """The same updates to every channel, concurrently (one request at a time per channel).

        `skip`: channel id -> a SKU-less marker; a channel listed there is left out (the origin
        of an order, which already shows its own sale)."""
        ids = [cid for cid in self.adapters if not skip or cid not in skip]
        results = await asyncio.gather(*(self.push(cid, updates) for cid in ids))
        return dict(zip(ids, results))
