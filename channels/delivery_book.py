"""What one channel should be shown, what it has confirmed, and what to send next: pure state.

The channel actor owns one DeliveryBook and does the plumbing around it; every decision lives here
so it can be tested without threads, sockets or clocks:

- `offer`: a committed stock change. Only the newest version per SKU is kept (coalescing: ten
  changes while the channel is busy become one push). A change whose channel quantity the channel
  already confirmed is not sent again, unless an earlier push of that SKU has an unknown outcome.
- `select`: the next batch: due entries, not in flight, at most `limit`, each with the *current*
  quantity and its version. A version lower than one the channel confirmed is never selected.
- `settle`: the outcomes of a push: confirmed (remember it), throttled (resend, not a failure),
  retry (backoff, count the attempt, dead-letter after `max_attempts`), failed (dead-letter now).

The quantity a channel shows is `max(0, available - buffer)`. A SKU without a listing on a channel
that needs one is never sent there and is reported in `unlisted`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Container, Iterable, Sequence

import msgspec

from channels.backoff import full_jitter
from channels.wire_types import PushOutcome, Update


def channel_quantity(available: int, buffer: int) -> int:
    return max(0, available - buffer)


class Policy(msgspec.Struct, frozen=True):
    buffer: int = 0
    max_attempts: int = 8
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 30.0


class Entry(msgspec.Struct):
    quantity: int
    version: int
    not_before: float = 0.0


class DeadEntry(msgspec.Struct, frozen=True):
    sku: str
    quantity: int
    version: int
    attempts: int
    error: str


class Settled(msgspec.Struct):
    confirmed: list[tuple[str, int, int]]  # (sku, quantity, version): to persist
    dead: list[DeadEntry]  # to the dead-letter actor
    drained: list[tuple[str, int]]  # (sku, version): dead-lettered SKUs now delivered
    throttle_until: float | None = None  # the channel asked us to stop until then
    channel_pause_until: float | None = None  # every entry failed: back off the whole channel


class Counters(msgspec.Struct):
    requests: int = 0
    confirmed: int = 0
    throttled: int = 0
    retried: int = 0
    failed: int = 0
    dead_lettered: int = 0
    skipped_unchanged: int = 0


class PendingEntries(dict):
    """SKU -> Entry, with the SKUs also queued in arrival order.

    Choosing the next batch takes from the front of the queue instead of
    scanning (or copying) every pending SKU, which would make a first push of
    a large catalogue quadratic. The queue may hold SKUs that were removed or
    queued twice since; those are skipped when they come up.
    """

    def __init__(self) -> None:
        super().__init__()
        self.order: deque[str] = deque()

    def __setitem__(self, sku: str, entry: Entry) -> None:
        if sku not in self:
            self.order.append(sku)
        super().__setitem__(sku, entry)

    def take_due(self, now: float, limit: int, in_flight: Container[str]) -> list[tuple[str, Entry]]:
        """Up to `limit` due entries not in flight, removed, oldest first."""
        taken: list[tuple[str, Entry]] = []
        waiting: list[str] = []
        order = self.order
        while order and len(taken) < limit:
            sku = order.popleft()
            entry = self.get(sku)
            if entry is None:
                continue  # removed since it was queued (or queued twice and already taken)
            if entry.not_before > now or sku in in_flight:
                waiting.append(sku)
                continue
            del self[sku]
            taken.append((sku, entry))
        order.extendleft(reversed(waiting))
        return taken

    def earliest(self, now: float, in_flight: Container[str]) -> float | None:
        """The earliest `not_before` (returns at once when something is already due)."""
        earliest = None
        for sku, entry in self.items():
            if sku in in_flight:
                continue
            if entry.not_before <= now:
                return entry.not_before
            if earliest is None or entry.not_before < earliest:
                earliest = entry.not_before
        return earliest


class DeliveryBook:
    def __init__(self, policy: Policy, listed: Callable[[str], bool] = lambda sku: True) -> None:
        self.policy = policy
        self._listed = listed
        self.latest: dict[str, tuple[int, int]] = {}  # sku -> (available, version): the truth as known
        self.confirmed: dict[str, tuple[int, int]] = {}  # sku -> (quantity, version) the channel holds
        self.uncertain: set[str] = set()  # a push whose outcome is unknown: the channel may show it
        self.pending = PendingEntries()
        self.in_flight: dict[str, Update] = {}
        self.attempts: dict[str, int] = {}
        self.dead: set[str] = set()  # SKUs with an open dead letter on this channel
        self.unlisted: set[str] = set()
        self.failures = 0  # consecutive whole-batch failures (channel-level backoff)
        self.counters = Counters()

    # --- what the channel should show ------------------------------------------------------

    def load(
        self,
        stock: Iterable[tuple[str, int, int]],
        confirmed: dict[str, tuple[int, int]],
        dead: Iterable[str] = (),
        resend_all: bool = False,
    ) -> None:
        """Start-up: the stock table and what the channel last confirmed; queue what differs."""
        for sku, (quantity, version) in confirmed.items():
            self.confirmed[sku] = (quantity, version)
            if resend_all:
                self.uncertain.add(sku)
        self.dead.update(dead)
        for sku, available, version in stock:
            self.offer(sku, available, version)

    def offer(self, sku: str, available: int, version: int, origin: bool = False) -> None:
        """A committed change of `sku`. `origin`: this channel's own order caused it.

        The origin channel is pushed too. It lowered its own count when it
        sold, but a push of ours (an absolute quantity, computed before its
        sale was committed) may have overwritten that since, and nothing would
        ever correct it: the store's own count is not something we can know.
        """
        known = self.latest.get(sku)
        if known is not None and known[1] >= version:
            return  # an older or repeated change: the newer one already counts
        self.latest[sku] = (available, version)
        if origin:
            self.uncertain.add(sku)  # what it shows now is its own doing
        self._consider(sku)

    def _consider(self, sku: str) -> None:
        available, version = self.latest[sku]
        if not self._listed(sku):
            self.unlisted.add(sku)
            self.pending.pop(sku, None)
            return
        self.unlisted.discard(sku)
        quantity = channel_quantity(available, self.policy.buffer)
        shown = self.confirmed.get(sku)
        settled_sku = sku not in self.uncertain and sku not in self.in_flight and sku not in self.pending
        if shown is not None and shown[0] == quantity and settled_sku:
            self.counters.skipped_unchanged += 1
            return
        entry = self.pending.get(sku)
        if entry is None:
            self.pending[sku] = Entry(quantity, version)
        else:
            entry.quantity, entry.version = quantity, version

    def relist(self) -> None:
        """Listings changed: reconsider every SKU we know."""
        for sku in list(self.latest):
            if sku not in self.pending and sku not in self.in_flight:
                self._consider(sku)
            elif not self._listed(sku):
                self._consider(sku)

    def retry_dead(self, skus: Iterable[str], now: float) -> list[str]:
        """The dead-letter actor asks for one more attempt with the current quantity.

        Returns the SKUs that need no push at all (unknown, unlisted or already shown): the
        caller reports them as drained.
        """
        done = []
        for sku in skus:
            known = self.latest.get(sku)
            if known is None or not self._listed(sku):
                done.append(sku)
                continue
            self.dead.add(sku)
            quantity = channel_quantity(known[0], self.policy.buffer)
            shown = self.confirmed.get(sku)
            if shown is not None and shown[0] == quantity and sku not in self.uncertain and sku not in self.in_flight:
                self.dead.discard(sku)
                done.append(sku)
                continue
            # One attempt: if it fails again it goes straight back to the dead-letter queue.
            self.attempts[sku] = max(self.attempts.get(sku, 0), self.policy.max_attempts - 1)
            if sku not in self.in_flight:
                self.pending[sku] = Entry(quantity, known[1], now)
        return done

    def forget_dead(self, sku: str) -> None:
        self.dead.discard(sku)

    # --- what to send --------------------------------------------------------------------

    def next_due(self, now: float = float("-inf")) -> float | None:
        """The earliest `not_before` of a pending entry (None: nothing pending)."""
        return self.pending.earliest(now, self.in_flight)

    def select(self, now: float, limit: int) -> list[Update]:
        """The next batch, marked in flight. Empty when nothing is due."""
        batch: list[Update] = []
        for sku, entry in self.pending.take_due(now, limit, self.in_flight):
            shown = self.confirmed.get(sku)
            if shown is not None:
                if entry.version < shown[1]:
                    continue  # never behind what the channel holds (cannot happen; kept as a guard)
                if shown[0] == entry.quantity and sku not in self.uncertain:
                    self.counters.skipped_unchanged += 1
                    continue
            update = Update(sku, entry.quantity, entry.version)
            self.in_flight[sku] = update
            batch.append(update)
        if batch:
            self.counters.requests += 1
        return batch

    # --- what came back ------------------------------------------------------------------

    def settle(self, outcomes: Sequence[PushOutcome], now: float, draw: Callable[[], float]) -> Settled:
        result = Settled([], [], [])
        policy = self.policy
        all_retry = bool(outcomes)
        for outcome in outcomes:
            sent = self.in_flight.pop(outcome.sku, None)
            if sent is None:
                continue
            sku = sent.sku
            if outcome.status != "retry":
                all_retry = False
            if outcome.status == "confirmed":
                self.counters.confirmed += 1
                self.uncertain.discard(sku)
                self.attempts.pop(sku, None)
                shown = self.confirmed.get(sku)
                if shown is None or shown[1] <= sent.version:
                    self.confirmed[sku] = (sent.quantity, sent.version)
                    result.confirmed.append((sku, sent.quantity, sent.version))
                if sku in self.dead:
                    self.dead.discard(sku)
                    result.drained.append((sku, sent.version))
                entry = self.pending.get(sku)
                if entry is not None and entry.quantity == sent.quantity:
                    del self.pending[sku]  # the newer version shows the same number
            elif outcome.status == "throttled":
                self.counters.throttled += 1
                wait = outcome.retry_after if outcome.retry_after is not None else 1.0
                until = now + wait
                result.throttle_until = max(result.throttle_until or 0.0, until)
                self._requeue(sku, sent, 0.0)
            elif outcome.status == "retry":
                self.counters.retried += 1
                self.uncertain.add(sku)  # a 5xx or a timeout may have been applied
                if outcome.retry_after == 0.0:
                    self._requeue(sku, sent, 0.0)  # failed because of another item: not its attempt
                    continue
                attempts = self.attempts.get(sku, 0) + 1
                self.attempts[sku] = attempts
                if attempts >= policy.max_attempts:
                    result.dead.append(self._dead_letter(sku, sent, attempts, outcome.error or "retry"))
                    continue
                delay = full_jitter(attempts, policy.backoff_base_s, policy.backoff_cap_s, draw())
                if outcome.retry_after is not None:
                    delay = max(delay, outcome.retry_after)
                self._requeue(sku, sent, now + delay)
            else:  # failed: permanent for this SKU
                self.counters.failed += 1
                attempts = self.attempts.get(sku, 0) + 1
                result.dead.append(self._dead_letter(sku, sent, attempts, outcome.error or "failed"))
        if all_retry:
            self.failures += 1
            pause = full_jitter(self.failures, policy.backoff_base_s, policy.backoff_cap_s, draw())
            result.channel_pause_until = now + pause
        elif outcomes:
            self.failures = 0
        return result

    def _requeue(self, sku: str, sent: Update, not_before: float) -> None:
        entry = self.pending.get(sku)
        if entry is None:
            self.pending[sku] = Entry(sent.quantity, sent.version, not_before)
        else:
            entry.not_before = max(entry.not_before, not_before)

    def _dead_letter(self, sku: str, sent: Update, attempts: int, error: str) -> DeadEntry:
        self.counters.dead_lettered += 1
        self.attempts.pop(sku, None)
        entry = self.pending.pop(sku, None)
        self.dead.add(sku)
        if entry is not None and entry.version > sent.version:
            return DeadEntry(sku, entry.quantity, entry.version, attempts, error)
        return DeadEntry(sku, sent.quantity, sent.version, attempts, error)

    def abandon_in_flight(self) -> None:
        """The request's answer will never come (actor restart): its outcome is unknown."""
        for sku, sent in list(self.in_flight.items()):
            self.uncertain.add(sku)
            self._requeue(sku, sent, 0.0)
        self.in_flight.clear()
