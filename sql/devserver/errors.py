"""The dev server's one exception base, and what it raises for bytes that are not TDS."""


class DevServerError(Exception):
    """Base of every error the dev server raises."""


class ProtocolError(DevServerError, ValueError):
    """The peer sent bytes that do not follow TDS framing; the connection cannot continue."""


class SpecError(DevServerError, ValueError):
    """A ``dbo.spColumns`` spec the dev server cannot serve; the message says where and why."""
