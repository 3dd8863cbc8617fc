"""The TDS token bytes the row path tells apart (MS-TDS 2.2.7); every other token is pytds'."""

from typing import Final

COLMETADATA_TOKEN: Final = 0x81  # MS-TDS 2.2.7.4
ROW_TOKEN: Final = 0xD1  # MS-TDS 2.2.7.19
NBCROW_TOKEN: Final = 0xD2  # MS-TDS 2.2.7.17
