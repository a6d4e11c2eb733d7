"""The pure channel decisions: coalescing, what to send, backoff, token bucket (hypothesis)."""

from __future__ import annotations

import random

from hypothesis import example, given, settings
from hypothesis import strategies as st

from channels.backoff import dead_letter_delay, full_jitter
from channels.delivery_book import DeliveryBook, Policy, channel_quantity
from channels.rate_limit import TokenBucket
from channels.wire_types import PushOutcome

SKUS = ["A", "B", "C", "D"]

step = st.one_of(
    st.tuples(st.just("change"), st.sampled_from(SKUS), st.integers(-3, 3)),
    st.tuples(st.just("origin"), st.sampled_from(SKUS), st.integers(-2, 0)),
    st.tuples(st.just("send"), st.integers(1, 3), st.sampled_from(
        ["confirmed", "throttled", "retry_applied", "retry_lost", "failed", "partial"]
    )),
    st.tuples(st.just("retry_dead"), st.just(None), st.just(None)),
    st.tuples(st.just("time"), st.just(None), st.floats(0, 5)),
)


class FakeChannel:
    """A store: applies what reaches it, like the simulator, and counts stale versions."""

    def __init__(self) -> None:
        self.shown: dict[str, int] = {}
        self.newest: dict[str, int] = {}
        self.stale = 0

    def apply(self, sku: str, quantity: int, version: int) -> None:
        if version < self.newest.get(sku, 0):
            self.stale += 1
        self.newest[sku] = max(version, self.newest.get(sku, 0))
        self.shown[sku] = quantity


@settings(max_examples=2000, deadline=None)
@given(st.lists(step, max_size=60), st.integers(0, 2), st.integers(0, 2**32))
# Found by hypothesis: a store's own sale after a failed push, and while a push was pending.
@example([("change", "A", 0), ("send", 1, "confirmed"), ("change", "A", 1), ("send", 1, "failed"), ("origin", "A", 0)], 0, 0)
@example([("change", "B", 0), ("send", 1, "confirmed"), ("change", "B", 1), ("origin", "B", -1)], 0, 0)
def test_the_book_sends_current_quantities_never_goes_back_and_converges(steps, buffer, seed):
    rng = random.Random(seed)
    book = DeliveryBook(Policy(buffer=buffer, max_attempts=3, backoff_base_s=1, backoff_cap_s=4))
    store = FakeChannel()
    truth: dict[str, tuple[int, int]] = {}
    dead: set[str] = set()
    now = 0.0

    def commit(sku: str, delta: int, origin: bool) -> None:
        available, version = truth.get(sku, (5, 0))
        available = max(0, available + delta)
        truth[sku] = (available, version + 1)
        if origin and sku in store.shown:
            # The store sold it itself: it shows what it had minus what it sold.
            store.shown[sku] = max(0, store.shown[sku] + delta)
        book.offer(sku, available, version + 1, origin=origin)

    def send(limit: int, outcome: str) -> None:
        batch = book.select(now, limit)
        for update in batch:
            # Always the current quantity of the newest version known.
            assert (update.quantity, update.version) == (channel_quantity(truth[update.sku][0], buffer), truth[update.sku][1])
        outcomes = []
        for i, update in enumerate(batch):
            kind = outcome if outcome != "partial" else ("failed" if i == 0 else "confirmed")
            if kind in ("confirmed", "retry_applied"):
                store.apply(update.sku, update.quantity, update.version)
            status = {"retry_applied": "retry", "retry_lost": "retry"}.get(kind, kind)
            outcomes.append(PushOutcome(update.sku, update.version, status, retry_after=0.5 if status == "throttled" else None))
        settled = book.settle(outcomes, now, rng.random)
        dead.update(d.sku for d in settled.dead)
        dead.difference_update(sku for sku, _ in settled.drained)

    for kind, a, b in steps:
        if kind == "change":
            commit(a, b, False)
        elif kind == "origin":
            commit(a, b, True)
        elif kind == "send":
            send(a, b)
        elif kind == "retry_dead":
            done = book.retry_dead(sorted(dead), now)
            dead.difference_update(done)
        else:
            now += b

    # The channel comes back and stays healthy: everything converges.
    for _ in range(50):
        now += 100.0
        done = book.retry_dead(sorted(dead), now)
        dead.difference_update(done)
        send(4, "confirmed")
    assert store.stale == 0
    for sku, (available, _) in truth.items():
        assert store.shown.get(sku) == channel_quantity(available, buffer), (sku, store.shown, truth)
    assert not book.pending and not book.in_flight and not dead


def test_coalescing_keeps_only_the_newest_change():
    book = DeliveryBook(Policy())
    for version in range(1, 11):
        book.offer("A", 100 - version, version)
    batch = book.select(0.0, 100)
    assert [(u.sku, u.quantity, u.version) for u in batch] == [("A", 90, 10)]
    book.offer("A", 95, 5)  # an older change arriving late changes nothing
    assert not book.pending


def test_a_change_while_in_flight_waits_and_a_late_confirm_does_not_win():
    book = DeliveryBook(Policy())
    book.offer("A", 5, 1)
    (first,) = book.select(0.0, 10)
    book.offer("A", 4, 2)
    assert book.select(0.0, 10) == []  # one request per SKU at a time
    book.settle([PushOutcome("A", 1, "confirmed")], 0.0, random.random)
    (second,) = book.select(0.0, 10)
    assert (second.quantity, second.version) == (4, 2)


def test_unchanged_channel_quantities_are_not_resent_unless_a_push_is_in_doubt():
    book = DeliveryBook(Policy(buffer=3))
    book.load([("A", 2, 7)], {"A": (0, 6)})
    assert not book.pending  # max(0, 2 - 3) == 0 is what the channel shows
    book.offer("A", 10, 8)
    (update,) = book.select(0.0, 10)
    book.settle([PushOutcome("A", 8, "retry")], 0.0, lambda: 0.0)  # timed out: may or may not be applied
    book.offer("A", 1, 9)  # channel quantity 0 again, as confirmed before, but the push above is in doubt
    (again,) = book.select(10.0, 10)
    assert (again.quantity, again.version) == (0, 9)


def test_throttled_is_not_an_attempt_and_failures_dead_letter_after_max_attempts():
    book = DeliveryBook(Policy(max_attempts=2, backoff_base_s=1, backoff_cap_s=1))
    book.offer("A", 5, 1)
    for _ in range(5):
        book.select(0.0, 10)
        settled = book.settle([PushOutcome("A", 1, "throttled", retry_after=1.0)], 0.0, random.random)
        assert settled.throttle_until == 1.0 and not settled.dead
    book.select(0.0, 10)
    assert not book.settle([PushOutcome("A", 1, "retry")], 0.0, random.random).dead
    book.select(5.0, 10)
    settled = book.settle([PushOutcome("A", 1, "retry", error="HTTP 500")], 5.0, random.random)
    assert [(d.sku, d.attempts, d.error) for d in settled.dead] == [("A", 2, "HTTP 500")]
    assert not book.pending and book.dead == {"A"}


def test_unlisted_skus_are_not_sent_and_are_reported():
    book = DeliveryBook(Policy(), listed=lambda sku: sku != "B")
    book.offer("A", 1, 1)
    book.offer("B", 1, 1)
    assert [u.sku for u in book.select(0.0, 10)] == ["A"]
    assert book.unlisted == {"B"}


@given(st.integers(1, 40), st.floats(0.001, 10), st.floats(0.001, 100), st.floats(0, 0.999999))
def test_full_jitter_stays_within_the_exponential_ceiling(attempt, base, cap, draw):
    delay = full_jitter(attempt, base, cap, draw)
    assert 0 <= delay <= min(cap, base * 2 ** (attempt - 1))


@given(st.integers(0, 40), st.floats(0, 0.999999))
def test_dead_letter_delay_grows_to_five_minutes_at_most(retries, draw):
    delay = dead_letter_delay(retries, 10.0, 300.0, draw)
    assert min(300.0, 10.0 * 2**retries) / 2 <= delay <= 300.0


@settings(max_examples=200)
@given(
    st.floats(0.5, 50), st.integers(1, 10),
    st.lists(st.floats(0, 0.5), min_size=1, max_size=200),
    st.lists(st.floats(0, 3), max_size=5),
)
def test_token_bucket_never_allows_more_than_burst_plus_rate_per_second(rate, burst, gaps, pauses):
    bucket = TokenBucket(rate, burst, 0.0)
    now, sent = 0.0, []
    for i, gap in enumerate(gaps):
        now += gap
        if i < len(pauses):
            bucket.pause_until(now + pauses[i])
        wait = bucket.wait(now)
        now += wait
        assert bucket.wait(now) < 1e-9
        bucket.take(now)
        sent.append(now)
    for start in sent:
        in_window = sum(1 for t in sent if start <= t < start + 1.0)
        assert in_window <= burst + rate + 1e-6


def test_the_origin_store_is_corrected_when_our_push_overwrote_its_own_sale():
    """Found by the marketplace load test: a store sells (14 -> 13 on its own), our push
    of another store's sale (13, computed before its sale was committed) lands on it, and
    then its sale is committed: the truth is 12 and the store must be told so."""
    book = DeliveryBook(Policy())
    book.offer("A", 14, 1)
    (first,) = book.select(0.0, 10)
    book.settle([PushOutcome("A", 1, "confirmed")], 0.0, lambda: 0.5)
    book.offer("A", 13, 2)  # another store's sale
    (second,) = book.select(0.0, 10)
    book.settle([PushOutcome("A", 2, "confirmed")], 0.0, lambda: 0.5)  # overwrote the store's own 13 with 13
    book.offer("A", 12, 3, origin=True)  # now its own sale is committed
    batch = book.select(0.0, 10)
    assert [(u.sku, u.quantity, u.version) for u in batch] == [("A", 12, 3)]
