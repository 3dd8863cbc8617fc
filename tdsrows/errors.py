"""The fast row path's one exception base."""

from __future__ import annotations


class TdsRowsError(Exception):
    """Base of every error raised by :mod:`tdsrows`."""


class UnsupportedLayout(TdsRowsError, ValueError):
    """The result set has a column the fast path does not decode: use the driver's decoding."""


class DriverMismatch(TdsRowsError, RuntimeError):
    """The installed pytds no longer provides an internal the fast path relies on."""


class StreamError(TdsRowsError, ValueError):
    """The TDS stream is not what the column layout announced."""
