"""Randomised differential test: seeded layouts, values and NULL patterns, pytds vs fast path.

Each seed builds its own result set (column types drawn from every type the fast path
decodes, nullable or not, values at and between the limits, NULL rates from none to most) and
its own packet size; a failure names the seed, which reproduces it exactly.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from sql.devserver import DevServer, run_in_thread
from sql.devserver.columns import Column, spec_json
from tests.devclient import dev_connect
from tests.test_tdsrows.support import comparable, fast_rows, pytds_rows

SEEDS = range(12)
Gen = Callable[[random.Random], object]


def _text(rng: random.Random, alphabet: str, most: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, most)))


def _day(rng: random.Random, first_year: int, last_year: int) -> str:
    year = rng.randint(first_year, last_year)
    return f"{year:04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _clock(rng: random.Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"


def _decimal(precision: int, scale: int) -> Gen:
    def gen(rng: random.Random) -> object:
        digits = rng.randint(1, precision)
        magnitude = rng.randrange(10**digits)
        text = str(magnitude).rjust(scale + 1, "0")
        whole, fraction = text[: len(text) - scale] or "0", text[len(text) - scale :]
        sign = rng.choice(["", "-"])
        return f"{sign}{whole}.{fraction}" if scale else f"{sign}{whole}"

    return gen


def _datetime2(scale: int) -> Gen:
    def gen(rng: random.Random) -> object:
        year = rng.choice([1, 1753, 1899, 1900, 2024, 9999, rng.randint(1, 9999)])
        fraction = "." + "".join(rng.choice(string.digits) for _ in range(scale)) if scale else ""
        return (
            f"{year:04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}{fraction}"
        )

    return gen


_LATIN = string.ascii_letters + " \u00e9\u00e8\u00fc\u20ac\u0161\u00bd"
_UNICODE = _LATIN + "\u6771\u4eac\u041c\u0430\U0001f600\u0391"

# (declaration, generator, can be NOT NULL)
CHOICES: list[tuple[str, Gen, bool]] = [
    ("tinyint", lambda r: r.randint(0, 255), True),
    ("smallint", lambda r: r.randint(-32768, 32767), True),
    ("int", lambda r: r.randint(-(2**31), 2**31 - 1), True),
    ("bigint", lambda r: r.randint(-(2**63), 2**63 - 1), True),
    ("bit", lambda r: r.random() < 0.5, True),
    ("real", lambda r: r.choice([r.uniform(-1e6, 1e6), 0.0, "nan", "inf"]), True),
    ("float", lambda r: r.choice([r.uniform(-1e300, 1e300), r.random(), -0.0, "-inf"]), True),
    ("money", lambda r: f"{r.randint(-(10**14), 10**14)}.{r.randint(0, 9999):04d}", True),
    ("smallmoney", lambda r: f"{r.randint(-214747, 214747)}.{r.randint(0, 9999):04d}", True),
    (
        "date",
        lambda r: f"{r.randint(1, 9999):04d}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
        False,
    ),
    ("datetime", lambda r: f"{_day(r, 1753, 9999)} {_clock(r)}.{r.randint(0, 999):03d}", True),
    ("smalldatetime", lambda r: f"{_day(r, 1900, 2078)} {_clock(r)[:5]}", True),
    ("uniqueidentifier", lambda r: str(__import__("uuid").UUID(int=r.getrandbits(128))), False),
    ("varchar(30)", lambda r: _text(r, _LATIN, 30), False),
    ("char(7)", lambda r: _text(r, string.ascii_letters, 7), False),
    ("nvarchar(30)", lambda r: _text(r, _UNICODE, 14), False),
    ("varbinary(20)", lambda r: r.randbytes(r.randint(0, 20)).hex(), False),
]
CHOICES += [
    (f"decimal({p},{s})", _decimal(p, s), False)
    for p, s in [(9, 2), (18, 4), (19, 0), (28, 10), (38, 38), (38, 6)]
]
CHOICES += [(f"datetime2({s})", _datetime2(s), False) for s in (0, 3, 7)]
CHOICES += [(f"time({s})", lambda r, s=s: _datetime2(s)(r).split(" ")[1], False) for s in (0, 5)]  # type: ignore[misc]


@pytest.fixture(scope="module")
def server() -> Iterator[DevServer]:
    with run_in_thread(port=0) as srv:
        yield srv


@dataclass(frozen=True)
class RandomResult:
    """A seeded result set: its spec (JSON), the packet size to read it with, a description."""

    spec: str
    packet_size: int
    where: str


def random_result(
    seed: int, choices: list[tuple[str, Gen, bool]] = CHOICES, label: str = ""
) -> RandomResult:
    rng = random.Random(seed)
    picks = [rng.choice(choices) for _ in range(rng.randint(1, 24))]
    columns = []
    for i, (declaration, _, fixed) in enumerate(picks):
        nullable = not fixed or rng.random() < 0.5
        columns.append(Column(f"c{i}", declaration, nullable=nullable))
    null_rate = rng.choice([0.0, 0.05, 0.3, 0.8])
    rows: list[list[Any]] = []
    for _ in range(rng.randint(1, 300)):
        rows.append(
            [
                None if column.nullable and rng.random() < null_rate else gen(rng)
                for column, (_, gen, _) in zip(columns, picks, strict=True)
            ]
        )
    row_tokens = rng.choice(["auto", "auto", "row", "nbcrow"])
    packet_size = rng.choice([512, rng.randint(512, 4096), 4096, 32767])
    spec = spec_json(columns, rows, row_tokens=row_tokens, repeat=rng.choice([1, 3]))
    where = f"seed {seed}{label}: {len(columns)} columns, {row_tokens}, packets of {packet_size}"
    return RandomResult(spec, packet_size, where)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_layouts_decode_as_pytds_does(server: DevServer, seed: int) -> None:
    result = random_result(seed)
    connection = dev_connect(server.port, blocksize=result.packet_size)
    try:
        expected = pytds_rows(connection, result.spec)
        got, _ = fast_rows(connection, result.spec)
    finally:
        connection.close()
    assert comparable(got) == comparable(expected), result.where
