"""axe-core, the accessibility engine, run inside a page the tests drive.

``make system-deps`` (scripts/install-system-deps.sh) installs a pinned axe-core from the npm
registry into build/axe-core. The test injects it through Playwright's evaluate (the DevTools
protocol), so the page under test keeps its strict Content-Security-Policy: the served page
never references it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
AXE_PACKAGE = ROOT / "build" / "axe-core" / "node_modules" / "axe-core"
# Every WCAG 2.0, 2.1 and 2.2 success criterion of levels A and AA that axe checks.
WCAG_A_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def axe_version() -> str:
    package = AXE_PACKAGE / "package.json"
    if not package.exists():
        pytest.fail(f"{AXE_PACKAGE} is missing (make system-deps installs axe-core)")
    return str(json.loads(package.read_text())["version"])


def violations(page: Page) -> list[dict[str, Any]]:
    """What axe finds against WCAG A and AA in the page as it is now."""
    axe_version()
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate((AXE_PACKAGE / "axe.min.js").read_text(encoding="utf-8") + "\n;0")
    found: list[dict[str, Any]] = page.evaluate(
        """tags => axe.run(document, {runOnly: {type: "tag", values: tags},
                                       resultTypes: ["violations"]})
                   .then(result => result.violations)""",
        WCAG_A_AA,
    )
    return found


def describe(found: list[dict[str, Any]]) -> str:
    """Violations as lines a person can act on: rule, impact, what to fix, where."""
    lines = []
    for violation in found:
        targets = [" ".join(node["target"]) for node in violation["nodes"]]
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {targets}")
    return "\n".join(lines)
