"""Controller metrics in the Prometheus exposition format (``canaryflow metrics serve``).

Computed at every scrape from what canaryflow records durably, the reports directory: the
history (`canaryflow.history`) for what ended, each open rollout's ``status.json``
(`canaryflow.reports`) for what runs now. So the figures survive restarts of anything, any number
of workers may write the directory, and the exporter holds no state of its own.

Metrics (labels ``target`` = ``namespace/deployment`` and ``cell`` = the release cell a rollout ran in,
empty for a plain rollout: several cells may share one target's name, and one reports directory):

- ``canaryflow_rollouts_ended_total{target, cell, result}``: rollouts that ended, by how
  (``promoted``, ``rolled-back``, ``aborted``, ``superseded``, ``undone``);
- ``canaryflow_rollout_duration_seconds{target, cell, result}``: a histogram of how long they took
  (for a rolled-back rollout, how long its canary served: the time to detect and restore);
- ``canaryflow_rollouts_in_progress{target, cell}``: rollouts that have not ended;
- ``canaryflow_rollout_weight_percent{target, cell, rollout, kind}``: the canary's ``requested`` and
  ``effective`` weight of each rollout in progress;
- ``canaryflow_rollout_phase{target, cell, rollout, phase}``: 1 for the phase each rollout in progress
  is in;
- ``canaryflow_judge_metric_status{target, cell, rollout, metric, status}``: 1 for the latest status of
  each metric the judge follows in a rollout in progress;
- ``canaryflow_history_unreadable_lines``: lines of the history that could not be read;
- ``canaryflow_reports_unreadable``: rollout reports (``status.json``) that could not be read (the
  others are still counted).

Serving them: `listen` binds the listening socket first (a port in use is an `InputError` that
names the address and the option to change, before anything starts or is created), and
`MetricsServer` serves a registry on it; ``canaryflow webhook serve`` binds and serves its own
metrics and its hooks (uvicorn, on the socket `listen` bound) the same way.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.types import WSGIApplication

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from canaryflow.errors import InputError
from canaryflow.history import read_history
from canaryflow.reports import scan_statuses

__all__ = [
    "BACKLOG",
    "DURATION_BUCKETS",
    "MetricsServer",
    "RolloutCollector",
    "address_of",
    "listen",
    "registry_for",
]

#: Seconds: a fast rollback, minutes of analysis, an approval that waited hours.
DURATION_BUCKETS = (60.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 86400.0)


class RolloutCollector(Collector):
    """A `prometheus_client` collector over the reports directory `reports_dir`."""

    def __init__(self, reports_dir: Path) -> None:
        self.reports_dir = reports_dir

    def collect(self) -> Iterator[Metric]:
        history = read_history(self.reports_dir)
        ended = CounterMetricFamily(
            "canaryflow_rollouts_ended", "Rollouts that ended, by how.", labels=["target", "cell", "result"]
        )
        records = history.records
        for (target, cell, result), count in sorted(
            Counter((r.target, r.cell or "", r.result) for r in records).items()
        ):
            ended.add_metric([target, cell, result], count)
        yield ended
        durations: defaultdict[tuple[str, str, str], list[float]] = defaultdict(list)
        for record in records:
            durations[(record.target, record.cell or "", record.result)].append(
                max(0.0, record.duration.total_seconds())
            )
        histogram = HistogramMetricFamily(
            "canaryflow_rollout_duration_seconds",
            "How long rollouts took, start to end, by how they ended.",
            labels=["target", "cell", "result"],
        )
        for labels, values in sorted(durations.items()):
            buckets = [(_le(bound), float(sum(v <= bound for v in values))) for bound in DURATION_BUCKETS]
            buckets.append(("+Inf", float(len(values))))
            histogram.add_metric(list(labels), buckets, sum(values))
        yield histogram
        unreadable = GaugeMetricFamily(
            "canaryflow_history_unreadable_lines", "Lines of the rollout history that could not be read."
        )
        unreadable.add_metric([], history.unreadable)
        yield unreadable
        yield from self._open()

    def _open(self) -> Iterator[Metric]:
        # One unreadable report (being replaced, truncated) is counted, never hides the others.
        scanned = scan_statuses(self.reports_dir)
        statuses = [s for s in scanned.found if not s.phase.final]
        unreadable = GaugeMetricFamily(
            "canaryflow_reports_unreadable", "Rollout reports (status.json) that could not be read."
        )
        unreadable.add_metric([], len(scanned.unreadable))
        yield unreadable
        progress = GaugeMetricFamily(
            "canaryflow_rollouts_in_progress", "Rollouts that have not ended.", labels=["target", "cell"]
        )
        for (target, cell), count in sorted(Counter((s.target, s.cell or "") for s in statuses).items()):
            progress.add_metric([target, cell], count)
        yield progress
        weight = GaugeMetricFamily(
            "canaryflow_rollout_weight_percent",
            "The canary's requested and effective weight.",
            labels=["target", "cell", "rollout", "kind"],
        )
        phase = GaugeMetricFamily(
            "canaryflow_rollout_phase",
            "The phase of each rollout in progress.",
            labels=["target", "cell", "rollout", "phase"],
        )
        judge = GaugeMetricFamily(
            "canaryflow_judge_metric_status",
            "The judge's latest status of each metric of each rollout in progress.",
            labels=["target", "cell", "rollout", "metric", "status"],
        )
        for s in statuses:
            where = [s.target, s.cell or "", s.rollout_id]
            weight.add_metric([*where, "requested"], s.weight)
            weight.add_metric([*where, "effective"], s.effective_weight)
            phase.add_metric([*where, s.phase.value], 1)
            for name, metric in (s.verdict.metrics if s.verdict else {}).items():
                judge.add_metric([*where, name, metric.status], 1)
        yield weight
        yield phase
        yield judge


def _le(bound: float) -> str:
    return f"{bound:g}" if bound < 1e5 else repr(bound)


def registry_for(reports_dir: Path) -> CollectorRegistry:
    """A registry with the collector of `reports_dir` alone (no process metrics)."""
    registry = CollectorRegistry()
    registry.register(RolloutCollector(reports_dir))
    return registry


#: Connections that may wait to be accepted (the kernel caps it at ``net.core.somaxconn``); uvicorn's.
BACKLOG = 2048


def address_of(host: str, port: int) -> str:
    """``host:port`` as a URL writes it (``[::1]:8080`` for an IPv6 address)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen(host: str, port: int, *, serving: str, option: str, every: bool = True) -> list[socket.socket]:
    """TCP sockets bound to `host`:`port` and listening, for a server to take (`MetricsServer`,
    uvicorn's ``Server.serve(sockets=...)``): one per address `host` resolves to, as asyncio binds
    them (``localhost`` is often ``127.0.0.1`` and ``::1``; ``""`` is every interface), or only the
    first with `every` False. Bind them before anything else is created or started: a port in use
    is then found first, and nothing can take the port in between.

    Raises
    ------
    InputError
        When `port` is not a port, `host` is not an address of this machine, or the port cannot
        be bound (in use, or privileged); the message names the address, what would have been
        served there (`serving`, e.g. ``"the metrics"``) and the option to change (`option`).
        Nothing stays bound then.
    """
    if not 0 <= port <= 65535:
        where = address_of(host, port)
        raise InputError(f"cannot serve {serving} on {where}: not a port; give {option} in 1-65535")
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise InputError(
            f"cannot serve {serving} on {host}: {exc.strerror}; choose another --host (an address of "
            "this machine)"
        ) from exc
    addresses = list(
        dict.fromkeys((family, kind, proto, sockaddr) for family, kind, proto, _, sockaddr in found)
    )
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, sockaddr in addresses if every else addresses[:1]:
            sockets.append(_bound(family, kind, proto, sockaddr, serving=serving, option=option))
    except InputError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bound(
    family: socket.AddressFamily,
    kind: socket.SocketKind,
    proto: int,
    sockaddr: Any,
    *,
    serving: str,
    option: str,
) -> socket.socket:
    where = address_of(str(sockaddr[0]), int(sockaddr[1]))
    sock: socket.socket | None = None
    try:
        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets.
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: not a port in use
        if family == socket.AF_INET6:  # as asyncio: the IPv4 address is bound by a socket of its own
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
    except OSError as exc:
        if sock is not None:
            sock.close()
        if exc.errno == errno.EADDRINUSE:
            fix = f"choose another {option} or stop what listens there"
        elif exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            fix = "choose another --host (an address of this machine)"
        elif exc.errno == errno.EACCES:
            fix = f"choose another {option} (one above 1023 needs no privilege)"
        else:
            fix = f"choose another {option}"
        raise InputError(f"cannot serve {serving} on {where}: {exc.strerror or exc}; {fix}") from exc
    return sock


class MetricsServer:
    """GET /metrics of `registry` (Prometheus' text format) on `sock`, a listening socket from
    `listen`: served by a daemon thread from `start` until `stop`, which closes the socket (also
    when it never started)."""

    def __init__(self, sock: socket.socket, registry: CollectorRegistry) -> None:
        try:
            self._httpd = _BoundWSGIServer(sock, make_wsgi_app(registry))
        except BaseException:
            sock.close()
            raise
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it serves on."""
        return self._httpd.server_port

    def start(self) -> None:
        """Serve, in a daemon thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="canaryflow-metrics", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (when started) and close the socket."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()


class _QuietHandler(WSGIRequestHandler):
    """Logs no request (Prometheus scrapes every few seconds)."""

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing."""


class _BoundWSGIServer(ThreadingMixIn, WSGIServer):
    """A WSGI server on a socket bound and listening already (socketserver's `server_bind` and
    `server_activate` are the documented places to change how it gets one)."""

    daemon_threads = True  # a request's thread never holds up the exit

    def __init__(self, sock: socket.socket, app: WSGIApplication) -> None:
        self._listening = sock
        self.address_family = sock.family
        super().__init__(sock.getsockname()[:2], _QuietHandler)
        self.set_app(app)

    def server_bind(self) -> None:
        self.socket.close()  # the socket socketserver made: this one serves on the bound one
        self.socket = self._listening
        self.server_address = self.socket.getsockname()
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])
        self.setup_environ()

    def server_activate(self) -> None:
        """(The socket listens already.)"""
