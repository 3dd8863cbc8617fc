"""Resident memory sampling for the export log: RSS at the start, every N rows, at the end.

RSS is process-wide: with several exports running, each export's figures include the others'.
The peak is the highest sample this export took, not the kernel's high-water mark, so it
says what this export saw while it ran.
"""

from __future__ import annotations

import logging

import psutil  # type: ignore[import-untyped]  # no stubs installed (types-psutil)

_MIB = 1024 * 1024


class ProcessMemory:
    """Reads this process's resident set size."""

    def __init__(self) -> None:
        self._process = psutil.Process()

    def rss(self) -> int:
        return int(self._process.memory_info().rss)


class MemoryLog:
    """One export's RSS samples: logged as they are taken, the highest kept."""

    def __init__(self, memory: ProcessMemory, logger: logging.Logger, label: str) -> None:
        self._memory = memory
        self._logger = logger
        self._label = label
        self.start_bytes = 0
        self.peak_bytes = 0

    def sample(self, stage: str) -> int:
        rss = self._memory.rss()
        if not self.start_bytes:
            self.start_bytes = rss
        self.peak_bytes = max(self.peak_bytes, rss)
        self._logger.info("%s memory %s: RSS %.1f MiB", self._label, stage, rss / _MIB)
        return rss


def mib(count: int) -> float:
    return count / _MIB
