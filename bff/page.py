"""The download page: three small static files, loaded once, served with strict headers.

The page builds its forms from the report catalog (``GET /reports``) and shows each download's
progress from its status (``bff.downloads``, ``bff.progress``); docs/page.md describes it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

# No inline script or style anywhere, so the policy needs no hashes or nonces: everything comes
# from our own origin, nothing may frame the page, forms and <base> cannot be redirected.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# JSON answers load inside the page's hidden download frame, so only our own page may frame them.
JSON_CSP = "default-src 'none'; frame-ancestors 'self'"

SECURITY_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP 2
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """URL path -> asset. The files are served as they are: the page learns the reports, their
    parameters and bounds from ``/reports`` at run time."""
    folder = resources.files("bff") / "static"
    assets: dict[str, Asset] = {}
    for name, path in (
        ("index.html", "/"),
        ("page.js", "/static/page.js"),
        ("page.css", "/static/page.css"),
    ):
        body = (folder / name).read_bytes()
        suffix = name[name.rindex(".") :]
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        assets[path] = Asset(body, _TYPES[suffix], etag)
    return assets
