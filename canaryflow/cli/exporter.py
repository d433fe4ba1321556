"""``canaryflow metrics serve``: the controller's own metrics for Prometheus to scrape."""

from __future__ import annotations

import os
import threading
from typing import Annotated

import typer

__all__ = ["serve"]


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 9464,
) -> None:
    """Serve GET /metrics: rollouts by outcome, their durations, rollouts in progress with their
    weights, phases and the judge's latest status per metric, read from the reports directory at
    every scrape (the README's "Metrics, alerts and a dashboard" lists them; alerting rules and a
    Grafana dashboard are in deployments/monitoring/)."""
    from canaryflow.environment import reports_dir
    from canaryflow.exporter import MetricsServer, address_of, listen, registry_for

    reports = reports_dir(os.environ)
    (sock,) = listen(host, port, serving="the metrics", option="--port", every=False)
    server = MetricsServer(sock, registry_for(reports))
    try:
        server.start()
        typer.echo(
            f"canaryflow metrics of {reports} on http://{address_of(host, server.port)}/metrics", err=True
        )
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
