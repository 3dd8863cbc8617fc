"""How long the fuzz tests run: a short, fixed run in every test run, or a long one on demand.

Every test of this package draws its inputs with Hypothesis under :func:`fuzz`:

- by default (``make test``): a few hundred examples per test, derandomized (the same inputs on
  every run and every machine, so a failure is never a matter of luck) and without the example
  database (nothing written to the tree);
- ``make fuzz`` (``ROWCODE_FUZZ_EXAMPLES=N``): N examples per test from a fresh random seed,
  failures kept in ``.hypothesis/`` and replayed first on the next run; Hypothesis prints the
  seed and a reproduction blob for any failure (``--hypothesis-seed=S`` replays a whole run).

Why Hypothesis rather than atheris: a pure-Python wheel that installs with pip on any
CPython, including one whose extensions are built with AddressSanitizer (atheris needs Clang's
libFuzzer and its own instrumented build); inputs are built from strategies of the wire's own
structure (layouts, tokens, length prefixes, mutations) and shrunk to a minimal failing stream;
it runs inside pytest, seeded and bounded. What it lacks is coverage guidance: the strategies
aim at the edges instead (lengths one off, cuts at every offset, every kind of column).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Final

from hypothesis import HealthCheck, Phase, settings

# Set by `make fuzz`: examples per test (the test process reads its environment; no package does).
_LONG: Final = os.environ.get("ROWCODE_FUZZ_EXAMPLES")


def fuzz(examples: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Hypothesis settings of a fuzz test: ``examples`` per run by default (derandomized), or
    the long run's count (random)."""
    common: dict[str, Any] = {
        "deadline": None,  # a 2-core shared machine: time per example varies by the second
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
        # No "explain" phase: it traces every line (sys.settrace before Python 3.12), which
        # makes shrinking a failure here take minutes instead of seconds.
        "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    }
    if _LONG:
        return settings(max_examples=int(_LONG), print_blob=True, **common)
    return settings(max_examples=examples, derandomize=True, database=None, **common)
