"""docs/configuration.md's settings tables say what the option tables say: every option of both
services has a row with its flag, its environment variable and its default, and no row names a
setting that does not exist; the README's main settings are rows of the same form and say the
same; ``--help`` is generated from the same tables."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bff.config import API_URL_OPTIONS
from bff.config import OPTIONS as BFF_OPTIONS
from bff.config import default_of as bff_default
from httpedge.options import Option, show_default
from server.__main__ import OPTIONS as API_OPTIONS
from server.__main__ import _default as api_default

ROOT = Path(__file__).parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"
README = ROOT / "README.md"
ROW = re.compile(r"^\| (?P<flag>`--[a-z-]+`)? ?\| `(?P<env>[A-Z_]+)` \| `(?P<default>[^`]*)`")


def settings_rows(document: Path = CONFIGURATION) -> dict[str, tuple[str | None, str]]:
    """Environment variable -> (flag, default) of every settings row of a document."""
    rows: dict[str, tuple[str | None, str]] = {}
    for line in document.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            flag = match["flag"].strip("`") if match["flag"] else None
            assert match["env"] not in rows, f"{match['env']} has two rows"
            rows[match["env"]] = (flag, match["default"])
    return rows


SERVICES = [
    (API_OPTIONS, api_default),
    ((*API_URL_OPTIONS, *BFF_OPTIONS), bff_default),
]


def documented(option: Option, default: object) -> tuple[str | None, str]:
    return option.flag, "required" if option.secret and option.flag else show_default(
        option, default
    )


def test_every_option_has_its_row_with_its_flag_and_default() -> None:
    rows = settings_rows()
    for options, default in SERVICES:
        for option in options:
            assert option.env in rows, f"docs/configuration.md has no row for {option.env}"
            assert rows[option.env] == documented(option, default(option)), option.env


def test_every_settings_row_is_an_option() -> None:
    known = {o.env for options, _ in SERVICES for o in options}
    assert set(settings_rows()) == known


def test_the_readme_main_settings_are_options_with_their_flag_and_default() -> None:
    documented_by_env = {
        option.env: documented(option, default(option))
        for options, default in SERVICES
        for option in options
    }
    rows = settings_rows(README)
    assert rows, "the README lists no main settings"
    for env, row in rows.items():
        assert env in documented_by_env, f"the README names {env}, which is no option"
        assert row == documented_by_env[env], env


@pytest.mark.parametrize("module", ["server", "bff"])
def test_help_names_each_flag_with_its_variable(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    options = API_OPTIONS if module == "server" else (*API_URL_OPTIONS, *BFF_OPTIONS)
    for option in options:
        assert option.env in text
        if option.flag is not None:
            assert option.flag in text
