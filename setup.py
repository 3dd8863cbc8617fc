"""Compiled parts: everything else is declared in setup.cfg.

Two optional C extensions speed up the export's row path: ``tdsrows._rowscan`` (ROW/NBCROW
tokens to typed primitive cells) and ``xlsx._rowxml`` (primitive cells to worksheet `<row>`
XML). Both are optional: where no C compiler is found the install goes on and the same rows go
through the pure-Python generated code (slower, same bytes; the API logs which at start).
"""

from setuptools import Extension, setup

# -ffp-contract=off: no fused multiply-add, so every double operation rounds exactly as
# CPython's own arithmetic does (the XML must hold the same digits as Python's repr).
_FLAGS = ["-O2", "-ffp-contract=off"]

setup(
    ext_modules=[
        Extension(
            "tdsrows._rowscan", ["tdsrows/_rowscan.c"], extra_compile_args=_FLAGS, optional=True
        ),
        Extension("xlsx._rowxml", ["xlsx/_rowxml.c"], extra_compile_args=_FLAGS, optional=True),
    ]
)
