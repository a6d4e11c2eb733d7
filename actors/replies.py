"""How an actor answers a request that the event loop is awaiting.

The loop never blocks on an actor: it creates an asyncio Future, hands the
actor a Reply, and awaits the Future. The actor settles it through
`call_soon_threadsafe`, which is the only safe way into the loop from a thread.
"""

from __future__ import annotations

import asyncio
from typing import Any


def _settle(future: asyncio.Future, value: Any) -> None:
    if not future.done():
        future.set_result(value)


class Reply:
    __slots__ = ("_loop", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.future: asyncio.Future = loop.create_future()

    def send(self, value: Any) -> None:
        """Settle from any thread."""
        self._loop.call_soon_threadsafe(_settle, self.future, value)

    def settle_here(self, value: Any) -> None:
        """Settle from the loop thread itself."""
        _settle(self.future, value)
