"""The load harness's one exception base."""

from __future__ import annotations


class LoadError(RuntimeError):
    """The harness cannot run as asked (bad option, unreachable target, stack failed)."""


class InvalidDownload(LoadError, ValueError):
    """A downloaded body is not the complete, valid workbook that was asked for."""
