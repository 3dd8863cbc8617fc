"""Each package's docstring lists its modules, so the lists cannot drift from the tree: every
module a list names exists, and every module file of the package is named.

A list is the docstring's last section, from a line that starts with "Modules", one entry per
module: ``- ``name``: what it holds`` (plain lines between entries may group them). A name is a
module (``name.py``), a subpackage or directory (``name/``) or a C extension's source
(``name.c``). Every ``*.py`` of the package must be named except private ones (``_name.py``;
``__main__.py`` is named too) and, in the test packages, the test modules (``test_*.py``),
which pytest finds by their names.

Every package with a module to list must have a list, except the test packages: of those,
``tests`` and ``tests.load`` must, and any other that has one is held to it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The test packages that must have a list.
REQUIRED_TEST_PACKAGES = ("tests", "tests/load")
HEADING = re.compile(r"^Modules\b")
ENTRY = re.compile(r"^- ``(?P<name>[A-Za-z_][A-Za-z0-9_]*)``: \S")
PLACEHOLDER = re.compile(r"^\w+ package\.?$")


def docstring(package: str) -> str:
    init = ROOT / package / "__init__.py"
    return ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""


def module_list(package: str) -> list[str] | None:
    """The entries of a package's docstring's list, in order; None if it has no list."""
    lines = docstring(package).splitlines()
    starts = [i for i, line in enumerate(lines) if HEADING.match(line)]
    if not starts:
        return None
    return [line for line in lines[starts[0] + 1 :] if line.startswith("- ")]


def listed_names(package: str) -> list[str]:
    names = []
    for line in module_list(package) or []:
        entry = ENTRY.match(line)
        assert entry, f"{package}: an entry not of the form - ``name``: ...: {line!r}"
        names.append(entry["name"])
    return names


def module_files(package: str) -> set[str]:
    """The modules of a package that its list must name."""
    names = set()
    for path in (ROOT / package).glob("*.py"):
        name = path.stem
        if name.startswith("_") and name != "__main__":
            continue
        if package.split("/")[0] == "tests" and name.startswith("test_"):
            continue
        names.add(name)
    return names


def all_packages() -> list[str]:
    """Every package of the tree (a directory with ``__init__.py``), as a relative path."""
    tops = [
        path
        for path in ROOT.iterdir()
        if (path / "__init__.py").exists() and not path.name.startswith(".")
    ]
    return sorted(
        str(init.parent.relative_to(ROOT)) for top in tops for init in top.rglob("__init__.py")
    )


def listed_packages() -> list[str]:
    """The packages held to a list."""
    held = []
    for package in all_packages():
        if package.split("/")[0] == "tests":
            needed = package in REQUIRED_TEST_PACKAGES
        else:
            needed = bool(module_files(package))
        if needed or module_list(package) is not None:
            held.append(package)
    return held


@pytest.fixture(params=listed_packages())
def package(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_first_line_says_what_the_package_does(package: str) -> None:
    first = docstring(package).splitlines()[0] if docstring(package) else ""
    assert first, f"{package}/__init__.py has no docstring"
    assert not PLACEHOLDER.match(first), f"{package}: {first!r} says nothing"


def test_every_listed_module_exists(package: str) -> None:
    assert module_list(package) is not None, f"{package}/__init__.py has no 'Modules' list"
    names = listed_names(package)
    assert len(names) == len(set(names)), f"{package} lists a module twice: {names}"
    base = ROOT / package
    missing = [
        name
        for name in names
        if not any((base / candidate).exists() for candidate in (f"{name}.py", f"{name}.c", name))
    ]
    assert not missing, f"{package}/__init__.py lists modules that do not exist: {missing}"


def test_every_module_is_listed(package: str) -> None:
    unlisted = sorted(module_files(package) - set(listed_names(package)))
    assert not unlisted, f"{package}/__init__.py does not list {unlisted}"
