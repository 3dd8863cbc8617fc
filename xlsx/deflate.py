"""The sheets' deflate: ISA-L's (the ``isal`` package) at level 1, zlib's otherwise.

Why: at level 1, zlib's deflate was a third of the writer's time. ISA-L's level 1 compresses
the same sheet XML about three times faster (810 vs 263 MB/s on this project's machine) to the
same size (19.2% vs 19.6% of the XML): the writer gains about a fifth of its speed, and the
export API, whose worker thread both decodes rows and writes the workbook, about 5%. The output
is ordinary raw deflate (RFC 1951), which every zip reader inflates.

zipstream-ng takes no compressor argument: every entry asks the module-level function
``zipstream.ng._get_compressor(compress_type, level)`` (zipfile's) for one. :func:`zip_level`
hands zipstream-ng a level of the marker type :class:`_FastLevel`, and the wrapper installed
below answers that level with an ISA-L compressor. Every other call, other ZipStream users in
the same process included, goes to the original function unchanged. If zipstream-ng stops
exposing the hook, or ``isal`` is not installed, level 1 is plain zlib (slower, equally valid);
``ACCELERATED`` tells which, and a test checks the fast path is the one in use.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any, Final

import zipstream.ng as _zipstream_ng

_isal_zlib: Any
try:
    from isal import isal_zlib as _isal_zlib
except ImportError:  # pragma: no cover - isal is a declared dependency
    _isal_zlib = None

# The zlib level ISA-L replaces, and the ISA-L level that replaces it: ISA-L's levels are 0-3,
# and its level 1 gives zlib level 1's size (benchmark above); at levels 2-9 a caller asks for
# smaller files, which zlib's slower levels give.
_ACCELERATED_LEVEL: Final = 1
_ISAL_LEVEL: Final = 1
_RAW_DEFLATE_WBITS: Final = -15  # no zlib header: what zip entries hold (as zipfile asks)


class _FastLevel(int):
    """A deflate level that asks for ISA-L's compressor (still an int for zipstream's checks)."""


_original: Callable[..., Any] | None = getattr(_zipstream_ng, "_get_compressor", None)


def _get_compressor(compress_type: int, compresslevel: int | None = None) -> Any:
    if isinstance(compresslevel, _FastLevel) and _isal_zlib is not None:
        return _isal_zlib.compressobj(_ISAL_LEVEL, zlib.DEFLATED, _RAW_DEFLATE_WBITS)
    assert _original is not None
    return _original(compress_type, compresslevel)


if _original is not None and _isal_zlib is not None:
    _zipstream_ng._get_compressor = _get_compressor
    # The CRC-32 of every entry, too: ISA-L's is the same checksum (ISO-HDLC, as zip's), about
    # 14x quicker than zlib's on 64 KiB of sheet XML (1.2 vs 16.6 us), so it is safe for every
    # zipstream-ng user in the process.
    if getattr(_zipstream_ng, "crc32", None) is zlib.crc32:
        _zipstream_ng.crc32 = _isal_zlib.crc32

ACCELERATED: Final = (
    _isal_zlib is not None and getattr(_zipstream_ng, "_get_compressor", None) is _get_compressor
)


def zip_level(level: int) -> int:
    """The level to give zipstream-ng for a deflate level the caller asked for."""
    if level == _ACCELERATED_LEVEL and ACCELERATED:
        return _FastLevel(level)
    return level
