"""A rollout's progress in the terminal: one plain line per thing it does, as it does it.

`Progress` is the runtime's event sink (`flows.runtime.EventSink`) for ``canaryflow rollout``: it
prints the flow's sentences (steps, verdicts, the outcome) with the time, so the same lines read
well in a terminal, a CI log or a pipe; Prefect's own console logging stays off (see
`canaryflow.cli.prefectapi`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import IO, Any

import typer

__all__ = ["Progress"]


class Progress:
    """Prints ``HH:MM:SS message`` for every ``log`` event of a rollout."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self._out = out
        self.rollout_id: str | None = None  # the rollout whose events came, once one came

    def __call__(self, rollout_id: str, event: str, details: Mapping[str, Any]) -> None:
        self.rollout_id = rollout_id
        if event != "log":
            return
        stamp = datetime.now().astimezone().strftime("%H:%M:%S")
        typer.echo(f"{stamp} {details.get('message', '')}", file=self._out)
