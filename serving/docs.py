"""Keeps the README's configuration reference generated from the settings models.

    python -m serving.docs          # rewrite the table between the README's markers
    python -m serving.docs --check  # exit 1 when the README is stale (the tests do this too)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from collector.settings import settings_reference
from serving.settings import ServingSettings

README = Path(__file__).resolve().parent.parent / "README.md"
START = "<!-- settings-reference:start -->"
END = "<!-- settings-reference:end -->"


def reference() -> str:
    """Every setting of the sidecar (a superset of the collector's) as a Markdown table."""
    return settings_reference(ServingSettings)


def updated(text: str) -> str:
    """``text`` with the block between the markers replaced by the current reference."""
    head, sep, rest = text.partition(START)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"README lacks the markers {START} ... {END}")
    return f"{head}{START}\n{reference()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.docs", description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = README.read_text()
    new = updated(text)
    if args.check:
        if new != text:
            print("README.md settings reference is stale: run python -m serving.docs")
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
