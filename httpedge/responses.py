"""JSON answers: the one error shape of the API and the BFF."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import web


def json_response(
    status: int, payload: object, headers: Mapping[str, str] | None = None
) -> web.Response:
    """``payload`` as compact JSON, never cached, never sniffed as anything else."""
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    response = web.Response(status=status, body=body, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if headers:
        response.headers.update(headers)
    return response


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """``{"error": {"message": ..., "code": ...}}``: a stable code for programs, a sentence for
    people. The message never repeats what the client sent and never names our own classes."""
    return json_response(status, {"error": {"message": message, "code": code}}, headers)
