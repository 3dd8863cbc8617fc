"""The package's exceptions: one base, each also a standard type so callers may catch either."""


class XlsxError(Exception):
    """Base of every error raised by the xlsx package."""


class XlsxValueError(XlsxError, ValueError):
    """An argument or a value that cannot be written (bad sheet name, limit out of range...)."""


class UnsupportedValueError(XlsxValueError, TypeError):
    """A cell value whose type has no encoder; the message names the type, row and column."""
