"""``canaryflow undo SPEC --reason TEXT``: take back the target's last promotion, at once.

The fast way back when a promoted release turns out bad after the analysis: the stable returns to
the image it ran before the last promotion, with no canary and no analysis, and rolls out like
any Deployment update. What was undone, who asked and why are recorded on the stable
(``canaryflow/undone``). The spec names the target and its progress deadline; nothing else is
read, and nothing is written when the spec or the reason is missing, a rollout is under way on
the target or holds its lock (abort it instead), or somebody set another image since the
promotion. The undo holds the target's lock (its Lease) while it writes, so no rollout starts
meanwhile.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from canaryflow.cli.steering import ByOption, operator

__all__ = ["undo"]


def undo(
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="The rollout spec of the target.")],
    reason: Annotated[str, typer.Option(help="Why; recorded on the target with who asked.")],
    by: ByOption = None,
) -> None:
    """Undo the target's last promotion: the stable goes back to the image it ran before, at once,
    with no analysis. Refused while a rollout is under way on the target or when somebody set
    another image since."""
    from canaryflow.cluster.port import TargetRef
    from canaryflow.environment import cluster_from_env, reports_dir
    from canaryflow.errors import UsageError
    from canaryflow.liveness import this_process
    from canaryflow.spec import load_spec
    from canaryflow.undoing import undo_target

    if not reason.strip():
        raise UsageError("give --reason TEXT: an undo is recorded with why")
    loaded = load_spec(spec)
    t = loaded.target
    target = TargetRef(
        namespace=t.namespace, deployment=t.deployment, container=t.container, service=t.service
    )
    cluster = cluster_from_env(os.environ)
    try:
        undo_target(
            cluster,
            target,
            progress_deadline=loaded.spec.progress_deadline,
            note=f"by {operator(by)}: {reason.strip()}",
            identity=f"undo/{operator(by)}/{socket.gethostname()}/{os.getpid()}",
            details={**this_process(), "image": "undo"},
            reports_dir=reports_dir(os.environ),
            triggered_by="canaryflow undo",
            say=typer.echo,
            warn=lambda line: typer.echo(line, err=True),
        )
    finally:
        close = getattr(cluster, "close", None)
        if close is not None:
            close()
