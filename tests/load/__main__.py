"""``python -m tests.load``: see ``--help`` and tests/load/README.md."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from tests.load import options, plot, runner
from tests.load.errors import LoadError
from tests.load.report import render

PROG = "python -m tests.load"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = options.parse(sys.argv[1:] if argv is None else argv)
    except LoadError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        report = runner.run(config)
    except LoadError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    print(render(report), flush=True)
    if config.json_path is not None:
        config.json_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    if config.plot_path is not None:
        try:
            plot.draw(report, config.plot_path)
        except LoadError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 1
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
