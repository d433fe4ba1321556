"""What each command's help says about the environment it reads (from `canaryflow.environment`)."""

from __future__ import annotations

import textwrap

from canaryflow.environment import settings_for

__all__ = ["environment_help"]


def environment_help(command: str) -> str:
    """An epilog listing the environment variables `command` reads ('' when none)."""
    settings = settings_for(command)
    if not settings:
        return ""
    lines = ["\b", "Environment:"]
    for s in settings:  # wrapped here: "\b" keeps click from re-flowing the list (click's help is 80 wide)
        lines += [
            f"  {s.name}",
            *textwrap.wrap(
                f"{s.what}; default: {s.default}",
                76,
                initial_indent=" " * 6,
                subsequent_indent=" " * 6,
                break_on_hyphens=False,
                break_long_words=False,
            ),
        ]
    return "\n".join(lines)
