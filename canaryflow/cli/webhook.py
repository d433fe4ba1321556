"""``canaryflow webhook serve``: the receiver of git pushes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

__all__ = ["serve"]


def serve(
    config: Annotated[Path, typer.Option(help="Routes file (YAML).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8080,
    unready_after: Annotated[
        float,
        typer.Option(
            help="Seconds of failed starts (Prefect unreachable) after which GET /readyz answers 503; "
            "0: never (pushes wait in the outbox; right for a single receiver).",
            min=0,
        ),
    ] = 600.0,
    metrics_port: Annotated[
        int,
        typer.Option(help="Port of GET /metrics (apart from the hooks); 0: no metrics.", min=0, max=65535),
    ] = 9466,
) -> None:
    """Serve POST /hooks/github and /hooks/gitlab, starting rollouts for pushes.

    Secrets come from CANARYFLOW_GITHUB_SECRET, CANARYFLOW_GITLAB_TOKEN and
    CANARYFLOW_GITLAB_SIGNING_TOKEN (or *_FILE naming a file). Rollouts start through the Prefect
    API every command uses (PREFECT_API_URL, the active profile's, or canaryflow's local server),
    named in the log at start; while it does not answer, pushes wait in the outbox.
    """
    from canaryflow.webhooks.serve import serve as serve_webhooks

    def prefect() -> str:
        """Point this process's Prefect at the API every command uses (never a temporary server
        of its own); where, for the log."""
        from canaryflow.cli.output import debugging
        from canaryflow.cli.prefectapi import locate, use

        api = locate(os.environ)
        use(api, debug=debugging())
        parts = urlsplit(api.url)
        shown = parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()  # never a password
        return f"{shown} (from {api.source})"

    serve_webhooks(
        config,
        host=host,
        port=port,
        unready_after=unready_after,
        metrics_port=metrics_port,
        prefect=prefect,
    )
