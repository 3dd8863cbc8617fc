"""The BFF's URL space under ``/exports/`` and ``/reports``, and the API paths it maps to.

Every report the API offers is downloaded at ``/exports/<id>`` and relayed to the API's
``/export/<id>``. The BFF does not know the API's catalog (it changes with the API, not with
us) and so relays any id that is well formed; the API answers ``404 UNKNOWN_REPORT`` for an id
it does not have. An id that is not well formed (upper case, ``..``, an encoded ``/``, empty,
too long, more path segments) cannot be any report's, so we answer it ourselves and nothing
the client made up ever reaches the API's path. ``/exports/ticket`` and
``/exports/status/<ticket>`` belong to the BFF (the page's download tickets); the API never
uses those two words as report ids, and they are matched before any id.
"""

from __future__ import annotations

import re
from typing import Final

EXPORTS_PREFIX: Final = "/exports/"
TICKET_PATH: Final = EXPORTS_PREFIX + "ticket"
STATUS_PREFIX: Final = EXPORTS_PREFIX + "status/"
# The report catalog: the same path on the BFF and on the API.
REPORTS_PATH: Final = "/reports"
API_REPORTS_PATH: Final = "/reports"
# The API's report ids: URL-safe slugs, so an id goes into a path as it is, unescaped.
REPORT_ID: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# The BFF's own words under /exports/: never report ids (the API's catalog never uses them).
RESERVED_IDS: Final = frozenset({"ticket", "status"})


def report_id_of(path: str) -> str | None:
    """The report id of a (decoded) request path ``/exports/<id>``; None when the path is not
    under /exports/ or its remainder is not an id (a reserved word included)."""
    if not path.startswith(EXPORTS_PREFIX):
        return None
    candidate = path[len(EXPORTS_PREFIX) :]
    if candidate in RESERVED_IDS or REPORT_ID.fullmatch(candidate) is None:
        return None
    return candidate


def api_export_path(report_id: str, raw_query: str = "") -> str:
    """The API's download path (and query) for a report id already checked by
    :func:`report_id_of`. The query goes as the client sent it, byte for byte: the API
    decides which parameters are valid, and re-encoding could change what it is told."""
    return f"/export/{report_id}" + (f"?{raw_query}" if raw_query else "")
