"""What every benchmark script does with its report: print it, and write it to ``--markdown FILE``."""

from __future__ import annotations

from pathlib import Path


def emit(text: str, markdown: Path | None) -> int:
    """Print `text`; also write it to `markdown` when given. Returns the exit code 0."""
    print(text)
    if markdown is not None:
        markdown.write_text(text + "\n", encoding="utf-8")
    return 0
