"""Retry schedules, as pure functions of the attempt number and a uniform draw in [0, 1)."""

from __future__ import annotations


def full_jitter(attempt: int, base: float, cap: float, draw: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(attempt-1))).

    `attempt` counts failures so far (1 after the first). AWS's "full jitter": spreads retries of
    many clients evenly instead of letting them return in waves.
    """
    if attempt < 1:
        return 0.0
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 62))
    return draw * ceiling


def dead_letter_delay(retries: int, base: float, cap: float, draw: float) -> float:
    """The dead-letter queue's own, slower schedule: half fixed, half jitter, up to `cap`.

    A dead letter is retried at least `ceiling / 2` later, so a channel that is down is asked
    ever more rarely (up to every `cap` seconds) rather than at random short intervals.
    """
    ceiling = min(cap, base * 2.0 ** min(max(retries, 0), 62))
    return ceiling * (0.5 + 0.5 * draw)
