"""The loop side of the channels: registry, HTTP client, persistence of what actors decide.

Runs on the event loop and owns everything that does I/O: the aiohttp ClientSession that talks to
the channels, the writes of confirmed listing state and dead letters, the timers. Actors reach it
only through `ChannelIO` (call_soon_threadsafe); it reaches actors only by `tell`. Nothing here
ever waits on an actor with a blocking call.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import msgspec
import pykka
import structlog

from actors.messages import StockChanged
from actors.replies import Reply
from channels.channel_actor import ChannelActor
from channels.channel_config import ChannelDefinition
from channels.channel_messages import (
    ChannelRemoved,
    Describe,
    Discard,
    ForgetDead,
    InitChannel,
    ListingsChanged,
    ManualRetry,
    PushDone,
    RetryDeadLetters,
    StockChanges,
)
from channels.dead_letter_actor import DeadLetterActor, Letter
from channels.wire_types import HttpRequest
from persistence import channel_store
from channels.propagation import PropagationTracker
from persistence.committer import DATABASE_ERRORS
from persistence.stock_store import load_states

log = structlog.get_logger("invsync.channels")


def _tell(ref: Any, message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        pass


class ChannelIO:
    """What actors may ask of the loop. Every method is safe from any thread and never blocks."""

    def __init__(self, hub: ChannelHub, loop: asyncio.AbstractEventLoop) -> None:
        self._hub = hub
        self._loop = loop

    def _call(self, fn, *args) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: the service is gone
            pass

    def send(self, channel_id: str, ref: Any, request_id: int, request: HttpRequest, timeout: float) -> None:
        self._call(self._hub._send, channel_id, ref, request_id, request, timeout)

    def wake(self, ref: Any, delay: float, message: Any) -> None:
        self._call(self._hub._wake, ref, delay, message)

    def confirmed(self, channel_id: str, rows: Sequence[tuple[str, int, int]]) -> None:
        self._call(self._hub._confirmed, channel_id, list(rows))

    def upsert_dead(self, letter: Letter) -> None:
        self._call(self._hub._dead_ops.put_nowait, ("upsert", letter, None))

    def delete_dead(self, channel_id: str, sku: str, version: int | None, reply: Any) -> None:
        self._call(self._hub._dead_ops.put_nowait, ("delete", (channel_id, sku), reply))

    def forget_dead(self, channel_id: str, sku: str) -> None:
        self._call(self._hub._tell_channel, channel_id, ForgetDead(sku))

    def retry_dead(self, channel_id: str, skus: tuple[str, ...]) -> None:
        self._call(self._hub._tell_channel, channel_id, RetryDeadLetters(skus))

    def crashed(self, channel_id: str | None, ref: Any) -> None:
        """An actor died of an exception (None: the dead-letter actor)."""
        self._call(self._hub._restart_crashed, channel_id, ref)


class ConfirmedWriter:
    """Writes confirmed (channel, sku) -> (quantity, version) rows, newest per key, in groups.

    The state only saves work after a clean restart (after a crash everything is resent), so it
    is written at most once per `interval_s` (5 s in service) rather than once per push; `flush`
    writes at once.
    """

    def __init__(self, pool, interval_s: float = 1.0) -> None:
        self._pool = pool
        self._interval = interval_s
        self._buffer: dict[str, dict[str, tuple[int, int]]] = {}  # channel -> sku -> (quantity, version)
        self._task: asyncio.Task | None = None
        self._now = asyncio.Event()
        self.writes = 0

    def record(self, channel_id: str, rows: list[tuple[str, int, int]]) -> None:
        # A channel confirms in version order (one push in flight, never an
        # older version), so the last row recorded per SKU is the newest.
        self._buffer.setdefault(channel_id, {}).update({sku: (q, v) for sku, q, v in rows})
        if self._task is None and self._buffer:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            try:
                await asyncio.wait_for(self._now.wait(), self._interval)
            except asyncio.TimeoutError:
                pass
            self._now.clear()
            while self._buffer:
                rows, self._buffer = self._buffer, {}
                try:
                    await channel_store.upsert_confirmed(
                        self._pool, [(c, s, q, v) for c, skus in rows.items() for s, (q, v) in skus.items()]
                    )
                    self.writes += 1
                except DATABASE_ERRORS as exc:
                    log.warning("confirmed state not stored; retrying", error=repr(exc), channels=len(rows))
                    for channel_id, skus in rows.items():
                        newer = self._buffer.setdefault(channel_id, {})
                        for sku, value in skus.items():
                            if sku not in newer or newer[sku][1] < value[1]:
                                newer[sku] = value
                    await asyncio.sleep(1.0)
        finally:
            self._task = None

    async def flush(self, timeout: float = 10.0) -> bool:
        """Write everything recorded so far; True when it is stored."""
        if self._task is None and self._buffer:
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._now.set()
        task = self._task
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                return False
        return not self._buffer


class ChannelHub:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pool,
        *,
        dead_letter_base_s: float = 10.0,
        dead_letter_cap_s: float = 300.0,
        dead_letter_tick_s: float = 1.0,
        on_restart: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self._loop = loop
        self._pool = pool
        self._dl_base = dead_letter_base_s
        self._dl_cap = dead_letter_cap_s
        self._dl_tick = dead_letter_tick_s
        self.io = ChannelIO(self, loop)
        self.propagation = PropagationTracker()
        self._on_restart = on_restart
        self.confirmed_writer = ConfirmedWriter(pool, interval_s=5.0)
        self.definitions: dict[str, ChannelDefinition] = {}
        self.actors: dict[str, Any] = {}
        self.dead_letters: Any = None
        self.session: aiohttp.ClientSession | None = None
        self._sends: dict[str, asyncio.Task] = {}  # channel -> its request in flight
        self._held: dict[str, list[tuple[StockChanged, ...]]] = {}  # changes for busy channels
        self._outbox: list[StockChanged] = []
        self._flush_scheduled = False
        self._dead_ops: asyncio.Queue = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._lock = asyncio.Lock()  # one channel create/update/delete at a time
        self._previous_clean = True
        self._stopping = False
        self.restarts = 0
        # per channel: orders, oversold, cancels, ignored, bad_signature (inbound webhooks)
        self.inbound_counts: defaultdict[str, Counter] = defaultdict(Counter)

    # --- life cycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=True),
            headers={"User-Agent": "invsync"},
        )
        self._previous_clean = await channel_store.begin_run(self._pool)
        letters = await channel_store.load_dead_letters(self._pool)
        self.dead_letters = DeadLetterActor.start(
            io=self.io, letters=letters, base_s=self._dl_base, cap_s=self._dl_cap
        )
        self._tasks.append(asyncio.create_task(self._dead_writer()))
        self._tasks.append(asyncio.create_task(self._tick_dead_letters()))
        rows = await channel_store.list_channels(self._pool)
        stock = None
        for row in rows:
            definition = channel_store.definition_of(row)
            self.definitions[definition.id] = definition
            if definition.enabled:
                if stock is None:
                    stock = tuple((s.sku, s.available, s.version) for s in await load_states(self._pool))
                await self._start_actor(definition, stock, resend_all=not self._previous_clean)
        log.info(
            "channels started",
            channels=len(self.definitions),
            running=len(self.actors),
            dead_letters=len(letters),
            previous_run_clean=self._previous_clean,
        )

    async def stop(self) -> None:
        self._stopping = True

        for task in self._tasks[1:]:
            task.cancel()
        refs = list(self.actors.values())
        self.actors.clear()
        await self._loop.run_in_executor(None, lambda: [r.stop(block=True, timeout=10) for r in refs if r.is_alive()])
        for task in list(self._sends.values()):
            task.cancel()
        clean = await self.confirmed_writer.flush()
        dead = self.dead_letters
        if dead is not None:
            await self._loop.run_in_executor(None, lambda: dead.stop(block=True, timeout=10))
        try:
            await asyncio.wait_for(self._dead_ops.join(), timeout=10)
        except asyncio.TimeoutError:
            clean = False
        self._tasks[0].cancel()
        if clean:
            try:
                await channel_store.end_run(self._pool)
            except DATABASE_ERRORS as exc:
                log.warning("could not mark a clean channel shutdown", error=repr(exc))
        if self.session is not None:
            await self.session.close()

    # --- fan-out: called by the committer on the loop --------------------------------------

    def publish(self, changes: Sequence[StockChanged]) -> None:
        """Never blocks, never raises: changes of one loop turn go out as one message per channel."""
        if not changes or not self.actors:
            return
        self.propagation.committed(changes)
        self._outbox.extend(changes)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush_outbox)

    def _flush_outbox(self) -> None:
        self._flush_scheduled = False
        changes = tuple(self._outbox)
        self._outbox.clear()
        message = StockChanges(changes)
        busy, held = self._sends, self._held
        for channel_id, ref in list(self.actors.items()):
            if channel_id in busy:
                # A request is in flight: the actor could not send these yet. They ride along
                # with the answer (PushDone), so the actor wakes once per push.
                held.setdefault(channel_id, []).append(changes)
            else:
                _tell(ref, message)

    # --- what the actors ask for --------------------------------------------------------------

    def _send(self, channel_id: str, ref: Any, request_id: int, request: HttpRequest, timeout: float) -> None:
        if self.actors.get(channel_id) != ref:
            return  # a stopped actor's last wish: its successor decides afresh
        task = self._loop.create_task(self._do_send(channel_id, ref, request_id, request, timeout))
        self._sends[channel_id] = task

    async def _do_send(self, channel_id: str, ref: Any, request_id: int, request: HttpRequest, timeout: float) -> None:
        assert self.session is not None
        done = PushDone(request_id, 0, {}, b"", "cancelled")
        try:
            async with self.session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                body = await response.read()
                done = PushDone(request_id, response.status, dict(response.headers), body, None)
                if response.status >= 400:
                    self.propagation.failed(channel_id, f"HTTP {response.status}")
        except asyncio.TimeoutError:
            done = PushDone(request_id, 0, {}, b"", f"no answer within {timeout} s")
            self.propagation.failed(channel_id, done.error)
        except (aiohttp.ClientError, OSError) as exc:
            done = PushDone(request_id, 0, {}, b"", f"{type(exc).__name__}: {str(exc)[:200]}")
            self.propagation.failed(channel_id, done.error)
        finally:
            # No await from here on: "not busy" and "held changes delivered" happen together.
            if self._sends.get(channel_id) is asyncio.current_task():
                del self._sends[channel_id]
            held = self._held.pop(channel_id, None)
            if held:
                done = msgspec.structs.replace(done, changes=tuple(held))
            _tell(ref, done)

    def _confirmed(self, channel_id: str, rows: list[tuple[str, int, int]]) -> None:
        self.confirmed_writer.record(channel_id, rows)
        self.propagation.confirmed(channel_id, rows)

    def _wake(self, ref: Any, delay: float, message: Any) -> None:
        self._loop.call_later(delay, _tell, ref, message)

    def _tell_channel(self, channel_id: str, message: Any) -> None:
        ref = self.actors.get(channel_id)
        if ref is not None:
            _tell(ref, message)

    async def _dead_writer(self) -> None:
        """Applies dead-letter upserts and deletes in the order the actor made them."""
        while True:
            op, arg, reply = await self._dead_ops.get()
            try:
                while True:
                    try:
                        if op == "upsert":
                            if arg.channel in self.definitions:  # not for a channel deleted meanwhile
                                await channel_store.upsert_dead(self._pool, arg)
                        else:
                            await channel_store.delete_dead(self._pool, *arg)
                        break
                    except DATABASE_ERRORS as exc:
                        log.warning("dead letter not stored; retrying", error=repr(exc))
                        await asyncio.sleep(1.0)
                if reply is not None:
                    reply.send(True)
            finally:
                self._dead_ops.task_done()

    async def _tick_dead_letters(self) -> None:
        from channels.channel_messages import DeadLetterTick

        while True:
            await asyncio.sleep(self._dl_tick)
            _tell(self.dead_letters, DeadLetterTick())

    # --- channel actors ----------------------------------------------------------------------

    def _restart_crashed(self, channel_id: str | None, ref: Any) -> None:
        if self._stopping:
            return
        if channel_id is None:
            if self.dead_letters == ref:
                self._loop.create_task(self._restart_dead_letters())
        elif self.actors.get(channel_id) == ref:
            self.restarts += 1
            self._on_restart("channel")
            self._loop.create_task(self._restart_channel(channel_id))

    async def _restart_channel(self, channel_id: str) -> None:
        async with self._lock:
            definition = self.definitions.get(channel_id)
            await self._stop_actor(channel_id)
            if definition is not None and definition.enabled and not self._stopping:
                await self._start_actor(definition)

    async def _restart_dead_letters(self) -> None:
        self.restarts += 1
        self._on_restart("dead_letters")
        while not self._dead_ops.empty():  # its last writes first, then read them back
            await asyncio.sleep(0.05)
        letters = await channel_store.load_dead_letters(self._pool)
        self.dead_letters = DeadLetterActor.start(io=self.io, letters=letters, base_s=self._dl_base, cap_s=self._dl_cap)
        for channel_id in list(self.actors):
            # Channel actors hold the old reference: give them a fresh start too.
            await self._restart_channel(channel_id)

    async def _start_actor(self, definition: ChannelDefinition, stock=None, resend_all: bool = False) -> None:
        listings = await channel_store.load_listings(self._pool, definition.id)
        ref = ChannelActor.start(definition=definition, listings=listings, io=self.io, dead_letters=self.dead_letters)
        # Registered before the stock is read: a change committed meanwhile reaches it either
        # way, and the actor keeps the newest version of each SKU.
        self.actors[definition.id] = ref
        confirmed = await channel_store.load_confirmed(self._pool, definition.id)
        dead = await channel_store.load_dead_skus(self._pool, definition.id)
        if stock is None:
            stock = tuple((s.sku, s.available, s.version) for s in await load_states(self._pool))
        _tell(ref, InitChannel(stock, confirmed, tuple(dead), resend_all))

    async def _stop_actor(self, channel_id: str) -> None:
        ref = self.actors.pop(channel_id, None)
        self._held.pop(channel_id, None)
        if ref is not None:
            await self._loop.run_in_executor(None, lambda: ref.stop(block=True, timeout=10))
        send = self._sends.get(channel_id)
        if send is not None:
            # Its answer goes nowhere, but the next actor must not race it to the channel.
            await asyncio.wait({send}, timeout=60)
        await self.confirmed_writer.flush()

    # --- used by the HTTP API ----------------------------------------------------------------

    async def create(self, definition: ChannelDefinition):
        async with self._lock:
            row = await channel_store.insert_channel(self._pool, definition)
            if row is None:
                return None
            self.definitions[definition.id] = definition
            if definition.enabled:
                await self._start_actor(definition)
            log.info("channel created", channel=definition.id, kind=definition.kind)
            return row

    async def update(self, definition: ChannelDefinition):
        async with self._lock:
            await self._stop_actor(definition.id)
            row = await channel_store.update_channel(self._pool, definition)
            if row is None:
                return None
            self.definitions[definition.id] = definition
            if definition.enabled:
                await self._start_actor(definition)
            log.info("channel updated", channel=definition.id, enabled=definition.enabled)
            return row

    async def delete(self, channel_id: str) -> bool:
        async with self._lock:
            await self._stop_actor(channel_id)
            self.definitions.pop(channel_id, None)  # from now on its dead letters are not written
            try:
                await asyncio.wait_for(self._dead_ops.join(), timeout=10)
            except asyncio.TimeoutError:
                pass  # the database is away: the delete below fails the same way
            deleted = await channel_store.delete_channel(self._pool, channel_id)
            _tell(self.dead_letters, ChannelRemoved(channel_id))
            if deleted:
                log.info("channel deleted", channel=channel_id)
            return deleted

    async def set_listings(self, channel_id: str, listings: dict[str, str]) -> None:
        await channel_store.replace_listings(self._pool, channel_id, listings)
        self._tell_channel(channel_id, ListingsChanged(listings))

    async def _ask(self, ref: Any, make, timeout: float = 5.0) -> Any:
        if ref is None:
            return None
        reply = Reply(self._loop)
        try:
            ref.tell(make(reply))
        except pykka.ActorDeadError:
            return None
        done, _ = await asyncio.wait({reply.future}, timeout=timeout)
        return reply.future.result() if done else None

    async def channel_status(self, channel_id: str) -> dict | None:
        return await self._ask(self.actors.get(channel_id), Describe)

    async def dead_letter_counts(self) -> dict:
        return await self._ask(self.dead_letters, Describe) or {}

    async def retry_dead_letter(self, channel_id: str, sku: str) -> bool:
        return bool(await self._ask(self.dead_letters, lambda reply: ManualRetry(channel_id, sku, reply)))

    async def discard_dead_letter(self, channel_id: str, sku: str) -> bool:
        return bool(await self._ask(self.dead_letters, lambda reply: Discard(channel_id, sku, reply), timeout=15))


    # --- monitoring -------------------------------------------------------------------------

    def actor_refs(self) -> list[tuple[str, Any]]:
        """(kind, ref) of the channel actors and the dead-letter actor, for mailbox metrics."""
        refs: list[tuple[str, Any]] = [("channel", ref) for ref in list(self.actors.values())]
        if self.dead_letters is not None:
            refs.append(("dead_letters", self.dead_letters))
        return refs

    async def status_rows(self) -> list[dict]:
        """One row per channel for /internal/status (asks each actor, never blocks the loop)."""
        counts = await self.dead_letter_counts()
        rows = []
        for channel_id, definition in sorted(self.definitions.items()):
            described = await self.channel_status(channel_id) if definition.enabled else None
            p50, p99 = self.propagation.latency_ms(channel_id)
            last_error = self.propagation.last_error.get(channel_id)
            last_success = self.propagation.last_success.get(channel_id)
            rows.append(
                {
                    "id": channel_id,
                    "kind": definition.kind,
                    "state": channel_state(definition.enabled, described),
                    "pending": (described or {}).get("pending", 0) + (described or {}).get("in_flight", 0),
                    "unlisted": (described or {}).get("unlisted_skus", 0),
                    "last_success": _iso(last_success) if last_success else None,
                    "last_error": f"{_iso(last_error[0])} {last_error[1]}" if last_error else None,
                    "dead_letters": _dead_letters_of(counts, channel_id),
                    "propagation_p50_ms": p50,
                    "propagation_p99_ms": p99,
                    "counters": (described or {}).get("counters", {}),
                }
            )
        return rows


# Consecutive failed pushes after which the channel counts as down: it is then
# only probed at the backoff cap, like an open circuit breaker.
CIRCUIT_OPEN_AFTER = 5


def channel_state(enabled: bool, described: dict | None) -> str:
    if not enabled:
        return "disabled"
    if not described:
        return "starting"
    if described.get("consecutive_failures", 0) >= CIRCUIT_OPEN_AFTER:
        return "circuit open"
    if described.get("backing_off_s", 0) > 0:
        return "backing off"
    if described.get("throttled_for_s", 0) > 0:
        return "throttled"
    return "healthy"


def _dead_letters_of(counts: dict, channel_id: str) -> int:
    value = counts.get(channel_id, 0) if isinstance(counts, dict) else 0
    if isinstance(value, dict):
        return int(value.get("open", value.get("count", 0)))
    return int(value or 0)


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall))

