"""What each command's help says about the environment it reads (from `canaryflow.environment`)."""

from __future__ import annotations

from canaryflow.environment import settings_for

__all__ = ["environment_help"]


def environment_help(command: str) -> str:
    """An epilog listing the environment variables `command` reads ('' when none)."""
    settings = settings_for(command)
    if not settings:
        return ""
    lines = ["\b", "Environment:"]
    for s in settings:
        lines += [f"  {s.name}", f"      {s.what}; default: {s.default}"]
    return "\n".join(lines)
