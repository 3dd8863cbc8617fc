"""Text as SpreadsheetML wants it: XML-escaped, Excel's `_xHHHH_` escapes, 32,767-unit limit."""

import re
from typing import Final

# Excel's limit on the characters in one cell, counted in UTF-16 code units (an emoji counts 2).
# Source: Excel specifications and limits, "Total number of characters that a cell can contain".
MAX_CELL_UTF16_UNITS: Final = 32_767

# Characters XML 1.0 forbids (and \r, which XML parsers turn into \n): written as `_xHHHH_`,
# Excel's own convention, so the text round-trips and Excel never offers to repair the file.
# Tab and newline are legal and kept as they are.
_ILLEGAL = re.compile("[\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff]")
# Text that already looks like an escape must itself be escaped (its `_` becomes `_x005F_`),
# otherwise Excel would decode it. A lookahead, so that in "_x005F_x0041_" the underscore that
# ends one lookalike can still start the next.
_LOOKALIKE = re.compile("_(?=x[0-9A-Fa-f]{4}_)")
# One search that finds every character which sends a string down the slow path: markup and
# illegal characters. An escape lookalike is found with `"_x" in text` (cheaper than adding an
# alternative to the search), leading/trailing whitespace with str.strip (anchors make the search
# several times slower).
NEEDS_WORK: Final = re.compile("[\x00-\x1f<>&\ud800-\udfff\ufffe\uffff]").search


def _hex_escape(match: re.Match[str]) -> str:
    return f"_x{ord(match[0]):04X}_"


def escape_text(text: str) -> str:
    """Escape `text` for the inside of a `<t>` element."""
    if "_x" in text:
        text = _LOOKALIKE.sub("_x005F_", text)
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return _ILLEGAL.sub(_hex_escape, text)


def is_plain(text: str) -> bool:
    """True if `text` can be written as it is: nothing to escape, trim or preserve."""
    return (
        len(text) <= MAX_CELL_UTF16_UNITS // 2
        and NEEDS_WORK(text) is None
        and "_x" not in text
        and text.strip() == text
    )


def needs_preserve(text: str) -> bool:
    """Leading or trailing whitespace needs `xml:space="preserve"` or Excel trims it."""
    return text != text.strip()


def utf16_units(text: str) -> int:
    """Length in UTF-16 code units: characters beyond U+FFFF count twice."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def truncate_utf16(text: str, limit: int = MAX_CELL_UTF16_UNITS) -> str | None:
    """`text` cut to at most `limit` UTF-16 units, or None if it already fits.

    Never splits a character: an astral character is one code point here, and a surrogate
    pair that arrived as two separate code points is kept together or dropped together.
    """
    if len(text) <= limit // 2:
        return None
    cut = min(len(text), limit)
    excess = utf16_units(text[:cut]) - limit
    if cut == len(text) and excess <= 0:
        return None
    while excess > 0:
        # Dropping m code points drops between m and 2m units: drop half the excess (rounded
        # up) and measure again, so the cut never overshoots by more than one astral character.
        cut -= (excess + 1) // 2
        excess = utf16_units(text[:cut]) - limit
    if "\ud800" <= text[cut - 1] <= "\udbff" and "\udc00" <= text[cut : cut + 1] <= "\udfff":
        cut -= 1
    return text[:cut]


def escape_attr(text: str) -> str:
    """Escape `text` for a double-quoted XML attribute value (names, format codes)."""
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )
