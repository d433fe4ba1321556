"""What every benchmark script does with its report: print it, and write it to ``--markdown FILE``;
and the arguments the cell-by-cell benchmarks share."""

from __future__ import annotations

import argparse
from pathlib import Path


def emit(text: str, markdown: Path | None) -> int:
    """Print `text`; also write it to `markdown` when given. Returns the exit code 0."""
    print(text)
    if markdown is not None:
        markdown.write_text(text + "\n", encoding="utf-8")
    return 0


def cell_arguments(doc: str | None, *, runs: int) -> argparse.ArgumentParser:
    """A parser described by the first line of `doc`, with ``--runs`` (per cell, default `runs`),
    ``--jobs`` (processes, default 1) and ``--markdown FILE``."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0] if doc else None)
    parser.add_argument("--runs", type=int, default=runs, help=f"runs per cell (default {runs})")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    return parser
