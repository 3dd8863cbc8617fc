"""xl/theme/theme1.xml: the DrawingML theme every workbook Excel creates carries.

Cells here never refer to theme colours or fonts (styles.xml names Calibri outright), but Excel
writes a theme into every new workbook and validators that follow the Open XML SDK's part rules
expect one. This is a minimal valid theme: the twelve colour slots of Office's default palette,
Calibri Light / Calibri as heading and body fonts (the fonts styles.xml uses), and the smallest
format scheme the schema allows: three fill, line, effect and background fill styles each, the
minimum of CT_FillStyleList, CT_LineStyleList, CT_EffectStyleList and
CT_BackgroundFillStyleList. Element order follows ECMA-376 Part 1, §20.1.6 (CT_OfficeStyleSheet:
themeElements; CT_BaseStyles: clrScheme, fontScheme, fmtScheme) and §20.1.4.1 (the schemes).
The part is constant, so it is built once at import.
"""

from typing import Final

DRAWINGML_NS: Final = "http://schemas.openxmlformats.org/drawingml/2006/main"
THEME_NAME: Final = "Office Theme"
SCHEME_NAME: Final = "Office"


def _srgb(hex_rgb: str) -> str:
    return f'<a:srgbClr val="{hex_rgb}"/>'


# CT_ColorScheme's twelve slots, in schema order (§20.1.6.2): dark/light text and background,
# six accents, hyperlink and followed hyperlink. dk1/lt1 follow the system's window colours as
# Excel's own default theme does; lastClr is what a reader without system colours shows.
_COLOR_SLOTS: Final = (
    ("dk1", '<a:sysClr val="windowText" lastClr="000000"/>'),
    ("lt1", '<a:sysClr val="window" lastClr="FFFFFF"/>'),
    ("dk2", _srgb("44546A")),
    ("lt2", _srgb("E7E6E6")),
    ("accent1", _srgb("4472C4")),
    ("accent2", _srgb("ED7D31")),
    ("accent3", _srgb("A5A5A5")),
    ("accent4", _srgb("FFC000")),
    ("accent5", _srgb("5B9BD5")),
    ("accent6", _srgb("70AD47")),
    ("hlink", _srgb("0563C1")),
    ("folHlink", _srgb("954F72")),
)

# CT_FontCollection: latin, ea and cs are all required; an empty typeface means "no override".
_FONT_COLLECTION: Final = '<a:latin typeface="{}"/><a:ea typeface=""/><a:cs typeface=""/>'
_MAJOR_FONT: Final = "Calibri Light"  # headings
_MINOR_FONT: Final = "Calibri"  # body text: the font of every cell in styles.xml

# "phClr" is the placeholder the object that picks a style fills with its own colour.
_PLACEHOLDER: Final = '<a:schemeClr val="phClr"/>'
_SOLID: Final = f"<a:solidFill>{_PLACEHOLDER}</a:solidFill>"
# Each list runs subtle, moderate, intense (fillStyleLst §20.1.4.1.13, lnStyleLst §20.1.4.1.21,
# effectStyleLst §20.1.4.1.12, bgFillStyleLst §20.1.4.1.7). Line widths in EMU, 12,700 per point.
_LINE_WIDTHS: Final = (6350, 12700, 19050)
_LINE: Final = (
    '<a:ln w="{}" cap="flat" cmpd="sng" algn="ctr">'
    f'{_SOLID}<a:prstDash val="solid"/><a:miter lim="800000"/></a:ln>'
)
_STYLES_PER_LIST: Final = 3  # the schema's minOccurs for each of the four style lists


def _theme_xml() -> bytes:
    colors = "".join(f"<a:{slot}>{color}</a:{slot}>" for slot, color in _COLOR_SLOTS)
    fonts = (
        f"<a:majorFont>{_FONT_COLLECTION.format(_MAJOR_FONT)}</a:majorFont>"
        f"<a:minorFont>{_FONT_COLLECTION.format(_MINOR_FONT)}</a:minorFont>"
    )
    fills = _SOLID * _STYLES_PER_LIST
    lines = "".join(_LINE.format(width) for width in _LINE_WIDTHS)
    effects = "<a:effectStyle><a:effectLst/></a:effectStyle>" * _STYLES_PER_LIST
    backgrounds = _SOLID * _STYLES_PER_LIST
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<a:theme xmlns:a="{DRAWINGML_NS}" name="{THEME_NAME}"><a:themeElements>'
        f'<a:clrScheme name="{SCHEME_NAME}">{colors}</a:clrScheme>'
        f'<a:fontScheme name="{SCHEME_NAME}">{fonts}</a:fontScheme>'
        f'<a:fmtScheme name="{SCHEME_NAME}">'
        f"<a:fillStyleLst>{fills}</a:fillStyleLst>"
        f"<a:lnStyleLst>{lines}</a:lnStyleLst>"
        f"<a:effectStyleLst>{effects}</a:effectStyleLst>"
        f"<a:bgFillStyleLst>{backgrounds}</a:bgFillStyleLst>"
        "</a:fmtScheme></a:themeElements></a:theme>"
    ).encode()


THEME_XML: Final = _theme_xml()
