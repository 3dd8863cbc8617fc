"""Every local link of the project's Markdown resolves: the file it names exists (relative to the
linking file) and the anchor it names is a heading of the target, as GitHub slugs headings, or
an explicit ``<a id=...>``/``<a name=...>``. Links to other sites (http, https, mailto) are not
followed. Pure file reading: no network, no git."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Directories that hold no documentation of ours: the virtualenv, build output, caches.
SKIPPED_DIRS = {"build", "node_modules", "__pycache__"}
# The documents that must be checked, whatever else the walk finds.
REQUIRED = {"README.md", "docs/benchmarks.md", "docs/operations.md", "tests/load/README.md"}
EXTERNAL = re.compile(r"^(?:https?|mailto):", re.IGNORECASE)

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# An inline link or image: [text](target) or [text](target "title"); the text may hold one
# level of brackets.
INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]"  # [text]
    r"\(\s*(<[^>]*>|[^()\s]*)(?:\s+\"[^\"]*\")?\s*\)"  # (target "title")
)
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
ATX_HEADING = re.compile(r"^\s{0,3}(#{1,6})(?:\s+(.*?))?(?:\s+#+)?\s*$")
SETEXT_UNDERLINE = re.compile(r"^\s{0,3}(?:=+|-+)\s*$")
EXPLICIT_ANCHOR = re.compile(r"<a\s[^>]*?\b(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
LINK_IN_TEXT = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\([^)]*\)")


def markdown_files() -> list[Path]:
    """Every Markdown file of the project, outside hidden directories, the build and caches."""
    found: list[Path] = []
    for directory, subdirs, files in os.walk(ROOT):
        subdirs[:] = sorted(
            d
            for d in subdirs
            if not d.startswith(".") and d not in SKIPPED_DIRS and not d.endswith(".egg-info")
        )
        found.extend(Path(directory) / f for f in sorted(files) if f.endswith(".md"))
    return found


def prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence = match[1]
                continue
            yield number, line
        elif match and match[1][0] == fence[0] and len(match[1]) >= len(fence):
            fence = None


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text (links as their text, code spans as their
    content) lowercased, punctuation but hyphens and underscores removed, spaces as hyphens."""
    text = LINK_IN_TEXT.sub(r"\1", heading.strip())
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    """Every anchor a link may name in a Markdown file: its headings' slugs (a repeated one
    numbered -1, -2, ... as GitHub numbers them) and its explicit <a id/name> anchors."""
    text = path.read_text(encoding="utf-8")
    found: set[str] = set()
    seen: dict[str, int] = {}

    def add_heading(heading: str) -> None:
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")

    previous: tuple[int, str] | None = None
    for number, line in prose_lines(text):
        found.update(EXPLICIT_ANCHOR.findall(line))
        heading = ATX_HEADING.match(line)
        if heading:
            add_heading(heading[2] or "")
        elif (
            SETEXT_UNDERLINE.match(line)
            and previous is not None
            and previous[0] == number - 1
            and previous[1].strip()
            and not previous[1].lstrip().startswith(("|", "#", ">", "-", "*"))
        ):
            add_heading(previous[1])
        previous = (number, line)
    return frozenset(found)


def local_links(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, target) of every link of a Markdown file that is not to another site."""
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        prose = CODE_SPAN.sub("code", line)
        targets = [m[1] for m in INLINE_LINK.finditer(prose)]
        definition = REFERENCE_DEFINITION.match(prose)
        if definition:
            targets.append(definition[1])
        for target in targets:
            target = target.strip("<>")
            if target and not EXTERNAL.match(target):
                yield number, target


def broken(path: Path, target: str) -> str | None:
    """Why a link from ``path`` to ``target`` does not resolve, or None when it does."""
    file_part, _, anchor = target.partition("#")
    file_part = unquote(file_part)
    if not file_part:
        linked = path
    elif file_part.startswith("/"):
        linked = ROOT / file_part.lstrip("/")
    else:
        linked = path.parent / file_part
    shown = linked.resolve().relative_to(ROOT) if linked.resolve().is_relative_to(ROOT) else linked
    if not linked.exists():
        return f"{shown} does not exist"
    if anchor and linked.suffix == ".md" and unquote(anchor) not in anchors(linked.resolve()):
        return f"{shown} has no heading or anchor #{anchor}"
    return None


FILES = markdown_files()


def test_the_documents_are_all_found() -> None:
    found = {str(p.relative_to(ROOT)) for p in FILES}
    assert not REQUIRED - found, f"not found: {sorted(REQUIRED - found)}"


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_every_local_link_resolves(path: Path) -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{number}: ({target}): {reason}"
        for number, target in local_links(path)
        if (reason := broken(path, target)) is not None
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("How it works", "how-it-works"),
        ("The export API (`server/`)", "the-export-api-server"),
        ("HTTP limits (both services)", "http-limits-both-services"),
        ("The BFF's relay", "the-bffs-relay"),
        ("Signals: reload and shutdown", "signals-reload-and-shutdown"),
        ("`dbo.spEcho ...`: the arguments back as data", "dbospecho--the-arguments-back-as-data"),
        ("A [linked](other.md) heading", "a-linked-heading"),
        ("snake_case and 1.5x", "snake_case-and-15x"),
    ],
)
def test_slugs_are_githubs(heading: str, expected: str) -> None:
    assert slug(heading) == expected


def test_repeated_headings_are_numbered(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n## Notes\n\n## Notes\n\n```\n## Not a heading\n```\n\n"
        'Setext\n------\n\n<a id="here"></a>\n',
        encoding="utf-8",
    )
    assert anchors(page) == {"title", "notes", "notes-1", "setext", "here"}
