"""``/metrics`` for the simulator: a prometheus_client collector, its HTTP server and a real-time driver.

Exposed series (one per pod; a pod's series disappear with it)::

    http_requests_total{namespace,app,track,pod,code}          code "200" or "500"
    http_request_duration_seconds_bucket{namespace,app,track,pod,le}   (+ _sum and _count)

Both codes are exposed from a pod's first scrape on (at 0), so ``increase()`` over the ``500``
series is 0 rather than absent for a pod that has not failed yet. Every scrape first brings the
simulator up to its clock's now. The server binds 127.0.0.1 on a free port, uses a private registry
(never the global one) and serves from a daemon thread until `MetricsServer.stop`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Self

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from canaryflow.simulation.traffic import TrafficSimulator

__all__ = ["MetricsServer", "RealTimeDriver", "SimulatorCollector"]

_POD_LABELS = ["namespace", "app", "track", "pod"]


def le_label(bound: float) -> str:
    """The ``le`` label of a bucket bound, as Prometheus client libraries write it (``+Inf``, ``0.005``)."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


class SimulatorCollector:
    """A prometheus_client collector that reads a `TrafficSimulator` at every scrape."""

    def __init__(self, simulator: TrafficSimulator) -> None:
        self._simulator = simulator
        self._le = [le_label(b) for b in simulator.le]

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily("http_requests", "HTTP requests by response code.", labels=[])
        yield HistogramMetricFamily("http_request_duration_seconds", "HTTP request latency.", labels=[])

    def collect(self) -> Iterator[Metric]:
        self._simulator.sync()
        requests = CounterMetricFamily(
            "http_requests", "HTTP requests by response code.", labels=[*_POD_LABELS, "code"]
        )
        duration = HistogramMetricFamily(
            "http_request_duration_seconds", "HTTP request latency.", labels=_POD_LABELS
        )
        for s in self._simulator.series():
            labels = [s.namespace, s.app, s.track, s.pod]
            requests.add_metric([*labels, "200"], s.ok)
            requests.add_metric([*labels, "500"], s.errors)
            duration.add_metric(labels, list(zip(self._le, s.buckets, strict=True)), s.latency_sum)
        yield requests
        yield duration


class MetricsServer:
    """Serves ``/metrics`` for one simulator on 127.0.0.1 (a free port unless `port` is given)."""

    def __init__(self, simulator: TrafficSimulator, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(SimulatorCollector(simulator))
        self._host = host
        self._requested_port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("the metrics server is already running")
        self._server, self._thread = start_http_server(self._requested_port, self._host, self._registry)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the metrics server is not running")
        return int(self._server.server_port)

    @property
    def target(self) -> str:
        """``host:port``, as a Prometheus scrape config names it."""
        return f"{self._host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.target}/metrics"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class RealTimeDriver:
    """Keeps a simulator in step with its (real) clock: `sync` every `tick` seconds in a thread.

    Scrapes and reads sync too; the driver makes the per-step ground truth fine-grained. While it
    runs, only the driver lists the pods: a scrape draws with the pods it last followed, so a slow API
    server holds up the driver's tick and never a scrape (whose timeout Prometheus counts as a gap).
    """

    def __init__(self, simulator: TrafficSimulator, *, tick: float = 0.25) -> None:
        if tick <= 0:
            raise ValueError(f"tick must be > 0, got {tick}")
        self._simulator = simulator
        self._tick = tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("the driver is already running")
        self._stop = threading.Event()  # its own: a thread that outlived a stop keeps the old one set
        thread = threading.Thread(target=self._run, args=(self._stop,), name="traffic-simulator", daemon=True)
        self._simulator.add_driver(+1)
        try:
            thread.start()
        except BaseException:
            self._simulator.add_driver(-1)
            raise
        self._thread = thread
        return self

    def _run(self, stop: threading.Event) -> None:
        try:  # a driver that dies (an error it cannot follow the pods through) hands listing back
            while True:
                self._simulator.sync(follow_pods=True)
                if stop.wait(self._tick):
                    return
        finally:
            self._simulator.add_driver(-1)

    def stop(self) -> None:
        """Stop the thread and wait for it (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
