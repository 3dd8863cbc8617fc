"""The BFF's exceptions: one base, each also a standard type so callers can catch either."""

from __future__ import annotations


class BffError(Exception):
    """Base of every error raised by the ``bff`` package."""


class ConfigError(BffError, ValueError):
    """A configuration value (flag or environment variable) is malformed."""


class UpstreamAborted(BffError, ConnectionError):
    """The API broke off a body mid-stream; our own response was aborted the same way.

    A ``ConnectionError``: to the client it is the same as a broken connection, and the relay
    handles it with the other ways a connection breaks.
    """


class UpstreamUnavailable(BffError, ConnectionError):
    """The API could not be reached or broke the connection before answering: 502."""


class UpstreamConnectFailed(UpstreamUnavailable):
    """No connection to one API could be opened (refused, or not within the connect timeout).

    Nothing reached that API, so the request can go to another one as it is.
    """


class UpstreamTimeout(BffError, TimeoutError):
    """The API did not send its response headers in time: 504."""


class ClientStalled(BffError, ConnectionError):
    """Our client accepted no bytes for the client write timeout: treated as gone."""


class UpstreamTooLarge(UpstreamUnavailable):
    """An answer the BFF buffers whole (the report catalog) is larger than it accepts: no
    usable answer, so a 502 like any other, without holding the excess in memory."""
