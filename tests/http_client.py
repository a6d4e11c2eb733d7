"""A small client for the tests: real HTTP over loopback with aiohttp."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp


class Client:
    def __init__(self, base_url: str, headers: dict[str, str], connections: int = 100) -> None:
        self.base_url = base_url
        self.headers = headers
        self._connections = connections
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "Client":
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections, force_close=False),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        return self

    async def __aexit__(self, *exc) -> None:
        await self.session.close()

    async def request(self, method: str, path: str, json: Any = None, data: bytes | None = None, headers=None):
        merged = dict(self.headers)
        if headers:
            merged.update(headers)
        async with self.session.request(method, self.base_url + path, json=json, data=data, headers=merged) as r:
            try:
                body = await r.json(content_type=None)
            except ValueError:
                body = await r.text()
            return r.status, body, r.headers

    async def order(self, order_id: str, lines: list[tuple[str, int]], channel: str = "web"):
        return await self.request(
            "POST",
            "/v1/orders",
            {"order_id": order_id, "channel": channel, "lines": [{"sku": s, "qty": q} for s, q in lines]},
        )

    async def set_stock(self, sku: str, available: int):
        status, body, _ = await self.request("PUT", f"/v1/stock/{sku}", {"available": available})
        assert status == 200, body
        return body

    async def stock(self, sku: str):
        status, body, _ = await self.request("GET", f"/v1/stock/{sku}")
        return body if status == 200 else None


def run(coro):
    return asyncio.run(coro)
