"""``X-Request-ID``: one id follows a download through the BFF's and the API's logs."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Final

HEADER: Final = "X-Request-ID"
# Ids we accept from a client: short, and safe to put in a log line or a header as they are.
_WELL_FORMED: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")


def is_well_formed(value: str | None) -> bool:
    return value is not None and _WELL_FORMED.fullmatch(value) is not None


def new_request_id() -> str:
    """128 random bits as 32 hex digits: unguessable, and unique without coordination."""
    return uuid.uuid4().hex


def request_id_of(headers: Mapping[str, str]) -> str:
    """The client's ``X-Request-ID`` when well formed, else a new one."""
    given = headers.get(HEADER)
    return given if given is not None and is_well_formed(given) else new_request_id()
