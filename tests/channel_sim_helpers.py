"""Shared helpers for the channel format and simulator tests: real HTTP over loopback, no plugins."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp

from channels.simulator import SimulatorServer
from channels.simulator_state import ChannelSpec
from channels.wire_types import HttpRequest

T = TypeVar("T")


def run_with_simulator(
    specs: Sequence[ChannelSpec],
    scenario: Callable[[SimulatorServer, aiohttp.ClientSession], Awaitable[T]],
    *,
    seed: int = 0,
) -> T:
    """Start a simulator and a client session, run the scenario, always stop both."""

    async def main() -> T:
        async with SimulatorServer(specs, seed=seed) as sim, aiohttp.ClientSession() as http:
            return await scenario(sim, http)

    return asyncio.run(main())


async def send(
    http: aiohttp.ClientSession, request: HttpRequest, *, timeout_s: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    async with http.request(
        request.method,
        request.url,
        headers=request.headers,
        data=request.body,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
    ) as response:
        return response.status, dict(response.headers), await response.read()


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def post_json(http: aiohttp.ClientSession, url: str, document: Any) -> tuple[int, Any]:
    async with http.post(url, json=document) as response:
        return response.status, await response.json()
