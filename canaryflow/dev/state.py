"""Where the local stacks keep their state between commands (not in the repository)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["state_dir"]


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$CANARYFLOW_STATE_DIR``, else ``$XDG_STATE_HOME/canaryflow`` (``~/.local/state/canaryflow``)."""
    values = os.environ if env is None else env
    explicit = values.get("CANARYFLOW_STATE_DIR")
    if explicit:
        return Path(explicit)
    return Path(values.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "canaryflow"
