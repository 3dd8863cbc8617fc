"""Why a walk over a packet's rows stopped, besides a token byte that is not a row (>= 0).

Every walk returns one: the generated decoder and fill (:mod:`tdsrows.codegen`,
:mod:`tdsrows.genfill`), the compiled scanner (:mod:`tdsrows.scan`) and the two joined to it
(:mod:`tdsrows.scandecode`, :mod:`tdsrows.scanfill`). ``tdsrows/_rowscan.c`` defines the same
numbers as its own ``STOP_*`` and exports them under those names: these definitions are the
ones every Python caller uses, also where the extension is not built, and
tests/test_tdsrows/test_c_constants.py holds the extension's values equal to them.
"""

from typing import Final

INCOMPLETE: Final = -1  # the bytes end inside (or right at the start of) the next row
FULL: Final = -2  # the row limit or the room reached: the next row comes next time
SLOW: Final = -3  # the next row, whole, holds a value no primitive cell holds
MALFORMED: Final = -4  # the next row holds a value its column's type does not have
