"""JSON answers and the download's headers."""

from __future__ import annotations

from aiohttp import web

from httpedge.responses import error_response as json_error
from httpedge.responses import json_response
from server.errors import ExportError

__all__ = ["XLSX_CONTENT_TYPE", "download_headers", "error_response", "json_response"]

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def error_response(error: ExportError, *, retry_after_s: int) -> web.Response:
    """``{"error": {"message": ..., "code": ...}}`` with the error's status and headers."""
    headers = dict(error.headers)
    if error.retry_later:
        headers["Retry-After"] = str(retry_after_s)
    return json_error(error.status, error.code, error.message, headers)


def download_headers(filename: str) -> dict[str, str]:
    """Headers of a streamed workbook; ``filename`` is made by the server, never by the client."""
    return {
        "Content-Type": XLSX_CONTENT_TYPE,
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
