"""The `canaryflow` command line: entry points and what the terminal shows (typer, rich).

What belongs here: the command tree and how errors reach the terminal (`canaryflow.cli.root`), one
module per family of commands (`rollouts`, `steering`, `statusview`, `specs`, `replay`, `demo`, `webhook`,
`devtools`) with the heavier work they start (`backtest`, `demorun`), how the commands reach
Prefect (`prefectapi`), and terminal rendering (`progress`, `board`, `help`, `output`). What must
not: logic a flow, a webhook or a test needs too; those live below and are imported here inside the
commands, so that ``canaryflow version``, ``--help``, ``status`` and ``replay`` start fast and never
load Prefect, Kubernetes or FastAPI. This is the top layer: the only package that imports ``flows``
and ``canaryflow.dev``; nothing imports it.
"""

from __future__ import annotations

from canaryflow.cli.root import app, main

__all__ = ["app", "main"]
