"""The dead-letter actor: deliveries that kept failing, persisted, retried, visible.

One entry per (channel, SKU): the newest failed delivery. It is retried on the queue's own
schedule (see backoff.dead_letter_delay: up to `cap_s`, 5 minutes by default) by asking the
channel actor for one more attempt with the *current* quantity; a success (then or through the
normal flow) drains it, a failure comes back as DeadLettered and pushes the next attempt further
out. Entries survive restarts (the loop side persists every change, in order).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import msgspec
import pykka
import structlog

from channels.backoff import dead_letter_delay
from channels.channel_messages import (
    ChannelRemoved,
    DeadLettered,
    DeadLetterTick,
    Describe,
    Discard,
    Drained,
    ManualRetry,
)

log = structlog.get_logger("invsync.dead_letters")


class Letter(msgspec.Struct):
    channel: str
    sku: str
    version: int
    quantity: int
    error: str
    attempts: int  # every attempt, by the channel actor and by this queue
    retries: int  # retries by this queue (drives its backoff)
    next_at: float  # wall-clock seconds


class DeadLetterActor(pykka.ThreadingActor):
    def __init__(
        self,
        *,
        io: Any,
        letters: list[Letter],
        base_s: float = 10.0,
        cap_s: float = 300.0,
        clock=time.time,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self._io = io
        self._letters: dict[tuple[str, str], Letter] = {(l.channel, l.sku): l for l in letters}
        self._base_s = base_s
        self._cap_s = cap_s
        self._clock = clock
        self._rng = random.Random(seed)
        self.dead_lettered: Counter[str] = Counter()
        self.drained: Counter[str] = Counter()
        self.discarded: Counter[str] = Counter()
        self.retried: Counter[str] = Counter()

    def on_failure(self, exc_type, exc_value, tb) -> None:
        log.error("dead-letter actor crashed; the hub restarts it from the database", error=repr(exc_value))
        self._io.crashed(None, self.actor_ref)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, DeadLettered):
            self._add(message)
        elif isinstance(message, Drained):
            self._drain(message)
        elif isinstance(message, DeadLetterTick):
            self._retry_due(self._clock())
        elif isinstance(message, ManualRetry):
            letter = self._letters.get((message.channel, message.sku))
            if letter is not None:
                letter.next_at = 0.0
                self._retry_due(self._clock())
            message.reply.send(letter is not None)
        elif isinstance(message, Discard):
            letter = self._letters.pop((message.channel, message.sku), None)
            if letter is not None:
                self.discarded[message.channel] += 1
                log.info("dead letter discarded", channel=message.channel, sku=message.sku)
            self._io.delete_dead(message.channel, message.sku, None, message.reply)
            self._io.forget_dead(message.channel, message.sku)
        elif isinstance(message, ChannelRemoved):
            for key in [k for k in self._letters if k[0] == message.channel]:
                del self._letters[key]
        elif isinstance(message, Describe):
            message.reply.send(self.describe())
        return None

    def _add(self, message: DeadLettered) -> None:
        now = self._clock()
        for entry in message.entries:
            key = (message.channel, entry.sku)
            previous = self._letters.get(key)
            retries = previous.retries + 1 if previous is not None else 0
            attempts = (previous.attempts if previous is not None else 0) + entry.attempts
            delay = dead_letter_delay(retries, self._base_s, self._cap_s, self._rng.random())
            letter = Letter(message.channel, entry.sku, entry.version, entry.quantity, entry.error, attempts, retries, now + delay)
            self._letters[key] = letter
            if previous is None:
                self.dead_lettered[message.channel] += 1
            self._io.upsert_dead(letter)

    def _drain(self, message: Drained) -> None:
        for sku, version in message.items:
            letter = self._letters.pop((message.channel, sku), None)
            if letter is None:
                continue
            self.drained[message.channel] += 1
            log.info("dead letter drained", channel=message.channel, sku=sku, version=version)
            self._io.delete_dead(message.channel, sku, None, None)

    def _retry_due(self, now: float) -> None:
        due: dict[str, list[str]] = {}
        for letter in self._letters.values():
            if letter.next_at <= now:
                due.setdefault(letter.channel, []).append(letter.sku)
                # Provisional: if the channel never answers (disabled, removed) ask again later.
                letter.next_at = now + dead_letter_delay(letter.retries + 1, self._base_s, self._cap_s, self._rng.random())
        for channel, skus in due.items():
            self.retried[channel] += len(skus)
            self._io.retry_dead(channel, tuple(skus))

    def describe(self) -> dict:
        open_per_channel: Counter[str] = Counter(channel for channel, _ in self._letters)
        channels = set(open_per_channel) | set(self.dead_lettered) | set(self.drained) | set(self.discarded)
        return {
            channel: {
                "open": open_per_channel.get(channel, 0),
                "dead_lettered": self.dead_lettered.get(channel, 0),
                "retried": self.retried.get(channel, 0),
                "drained": self.drained.get(channel, 0),
                "discarded": self.discarded.get(channel, 0),
            }
            for channel in sorted(channels)
        }
