"""What each request of a load run does, decided up front from a seed (pure).

The shares are apportioned exactly (largest remainder), then the order is shuffled, so a run
of 200 requests with 30 % aborts has exactly 60 aborting clients, and the same seed gives the
same requests in the same order with the same parameters.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from tests.load.errors import LoadError


class Behaviour(enum.StrEnum):
    NORMAL = "normal"  # downloads as fast as it can
    SLOW = "slow"  # reads at a throttled rate
    ABORT = "abort"  # goes away after some bytes or some seconds
    BAD = "bad"  # sends parameters the API must refuse


@dataclass(frozen=True)
class BadRequest:
    """A query string the API must refuse with 400 and ``code`` (see tests.load.reports)."""

    query: str
    code: str


@dataclass(frozen=True)
class Shares:
    """Fractions of the requests per behaviour; normal downloads take the rest."""

    slow: float = 0.0
    abort: float = 0.0
    bad: float = 0.0

    def __post_init__(self) -> None:
        for name in ("slow", "abort", "bad"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise LoadError(f"the {name} share must be between 0 and 1, got {value}")
        if self.slow + self.abort + self.bad > 1.0 + 1e-9:
            raise LoadError("the slow, abort and bad shares add up to more than 1")

    def by_behaviour(self) -> dict[Behaviour, float]:
        rest = max(0.0, 1.0 - self.slow - self.abort - self.bad)
        return {
            Behaviour.NORMAL: rest,
            Behaviour.SLOW: self.slow,
            Behaviour.ABORT: self.abort,
            Behaviour.BAD: self.bad,
        }


@dataclass(frozen=True)
class AbortRange:
    """Where an aborting client goes away: after a byte count or after some seconds, each
    drawn uniformly from its range; ``by`` is "bytes", "seconds" or "mixed" (half each)."""

    by: str = "mixed"
    min_bytes: int = 1
    max_bytes: int = 0  # 0: the expected size of the file
    min_seconds: float = 0.0
    max_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.by not in ("bytes", "seconds", "mixed"):
            raise LoadError(f"abort-by must be bytes, seconds or mixed, got {self.by!r}")
        if self.min_bytes < 1 or (self.max_bytes and self.max_bytes < self.min_bytes):
            raise LoadError("abort byte range must be 1 <= min <= max")
        if not 0 <= self.min_seconds <= self.max_seconds:
            raise LoadError("abort seconds range must be 0 <= min <= max")


@dataclass(frozen=True)
class Request:
    index: int
    behaviour: Behaviour
    query: str  # the query string as sent, percent-encoded (a bad one for BAD)
    abort_after_bytes: int | None = None
    abort_after_seconds: float | None = None
    refusal: str | None = None  # BAD: the code the API's 400 must carry


def apportion(total: int, shares: dict[Behaviour, float]) -> dict[Behaviour, int]:
    """Exact counts per behaviour that add up to ``total`` (largest remainder method)."""
    raw = {b: total * share for b, share in shares.items()}
    counts = {b: math.floor(value) for b, value in raw.items()}
    left = total - sum(counts.values())
    by_remainder = sorted(raw, key=lambda b: (raw[b] - counts[b], shares[b]), reverse=True)
    for behaviour in by_remainder[:left]:
        counts[behaviour] += 1
    return counts


def make_plan(
    *,
    requests: int,
    query: str,
    bad: Sequence[BadRequest],
    shares: Shares,
    aborts: AbortRange,
    expected_size: int,
    seed: int,
) -> list[Request]:
    """``requests`` requests sending ``query``, the bad ones one of ``bad`` each (drawn
    uniformly); ``expected_size`` (bytes of one file) is the default upper end of the abort
    byte range."""
    if shares.bad and not bad:
        raise LoadError("a bad share, but no bad request to send")
    rng = random.Random(seed)
    counts = apportion(requests, shares.by_behaviour())
    order = [b for b, n in counts.items() for _ in range(n)]
    rng.shuffle(order)
    max_bytes = aborts.max_bytes or max(aborts.min_bytes, expected_size)
    plan = []
    for index, behaviour in enumerate(order):
        if behaviour is Behaviour.BAD:
            refused = rng.choice(bad)
            plan.append(Request(index, behaviour, refused.query, refusal=refused.code))
        elif behaviour is Behaviour.ABORT:
            by = aborts.by if aborts.by != "mixed" else rng.choice(("bytes", "seconds"))
            if by == "bytes":
                after = rng.randint(aborts.min_bytes, max_bytes)
                plan.append(Request(index, behaviour, query, abort_after_bytes=after))
            else:
                seconds = round(rng.uniform(aborts.min_seconds, aborts.max_seconds), 3)
                plan.append(Request(index, behaviour, query, abort_after_seconds=seconds))
        else:
            plan.append(Request(index, behaviour, query))
    return plan
