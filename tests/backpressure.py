"""Backpressure seen from the TDS dev server: production stays within what the buffers hold
while a reader somewhere down the chain holds off.

"No rows for a second" does not prove a pause: a loaded machine can leave a producer quiet
that long while it still fills buffers, and a chain that leaks (pulls rows at the driver's pace
into an unbounded queue) is quiet between its steps. So a test holds its reader off, waits for
the dev server's own record of a pause, then has another connection fetch rows to the end with
pytds (the witness). While the witness decodes them, a chain that kept pulling rows for the
held-off reader gets as much time to do so (its worker decodes with pytds too, sharing the GIL
or the cores with the witness) and passes the bound, however loaded the machine; a chain that
works stays where its buffers stopped it. Then the test asserts the bound:

    poll(lambda: db.stats.backpressure_pauses > pauses, what="production to wait for the reader")
    fetch_elsewhere(db.port)
    assert_held(db.stats, since=rows_before, bound=120_000)
"""

from __future__ import annotations

from sql.devserver.server import DevServerStats
from tests.devclient import dev_connect

# Rows the witness fetches by default: ~4 s of pytds decoding on an idle core, during which a
# leaking export pulls ~140k rows (measured), past a bound set ~60k above what buffers hold.
WITNESS_ROWS = 150_000
_PROCEDURE = "dbo.spGenerateData"
_BATCH = 5_000


def fetch_elsewhere(port: int, rows: int = WITNESS_ROWS) -> None:
    """Fetch ``rows`` rows to the end on a connection of its own (blocking: call it from a
    thread other than the dev server's event loop)."""
    with dev_connect(port, timeout=60) as conn, conn.cursor() as cursor:
        cursor.callproc(_PROCEDURE, (rows,))
        fetched = 0
        while batch := cursor.fetchmany(_BATCH):
            fetched += len(batch)
        while cursor.nextset():
            pass
    assert fetched == rows


def assert_held(
    stats: DevServerStats, *, since: int = 0, bound: int, witnessed: int = WITNESS_ROWS
) -> int:
    """The rows produced for the held-off reader (sent since ``since``, a ``stats.rows_sent``
    count taken before its request, less the ``witnessed`` ones), after asserting ``bound``."""
    held = stats.rows_sent - since - witnessed
    assert held <= bound, f"{held:,} rows produced for a reader that holds off (bound {bound:,})"
    return held
