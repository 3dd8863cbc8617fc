"""JSON answers and the download's headers."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web

from server.errors import ExportError

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def json_response(
    status: int, body: object, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body, separators=(",", ":")),
        content_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def error_response(error: ExportError, *, retry_after_s: int) -> web.Response:
    """``{"error": {"message": ..., "code": ...}}`` with the error's status and headers."""
    headers = dict(error.headers)
    if error.retry_later:
        headers["Retry-After"] = str(retry_after_s)
    return json_response(
        error.status, {"error": {"message": error.message, "code": error.code}}, headers
    )


def download_headers(filename: str) -> dict[str, str]:
    """Headers of a streamed workbook; ``filename`` is made by the server, never by the client."""
    return {
        "Content-Type": XLSX_CONTENT_TYPE,
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
