"""A local Prometheus (Debian's ``prometheus`` binary) on 127.0.0.1, for the demo and the tests.

`LocalPrometheus.start` runs the binary on a free loopback port with a temporary TSDB and a config
that scrapes every second; `add_targets` rewrites the config, reloads it (``POST /-/reload``) and
returns once every target has been scraped successfully. `stop` terminates (then kills) the process
and removes its files. Errors are `LocalPrometheusError` with the tail of Prometheus' log.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from canaryflow.dev.processes import die_with_parent, free_port, on_lasting_thread, wait_until
from canaryflow.errors import LocalPrometheusError

__all__ = ["SCRAPE_INTERVAL_SECONDS", "LocalPrometheus"]

SCRAPE_INTERVAL_SECONDS = 1.0


class LocalPrometheus:
    """A running Prometheus: its base URL, its scrape targets, and helpers to query it."""

    def __init__(self, binary: str, workdir: Path, *, port: int, remove_workdir: bool = False) -> None:
        self.workdir = workdir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.config_file = workdir / "prometheus.yml"
        self.log_file = workdir / "prometheus.log"
        self._remove_workdir = remove_workdir
        self._jobs: dict[str, list[str]] = {}
        self._intervals: dict[str, float] = {}
        self._labels: dict[str, dict[str, str]] = {}
        self._write_config()
        self._log = self.log_file.open("wb")
        args = [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]

        def start() -> subprocess.Popen[bytes]:
            # killed by the kernel when this process dies (a demo or test run killed or closed with
            # its terminal): `stop` is for the ends that run Python
            return subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )

        # the kernel ties it to the thread that forks: fork on one that lives as long as the process
        self.process = on_lasting_thread(start)
        self._http = httpx.Client(base_url=self.url, timeout=5.0)

    @classmethod
    def start(cls, binary: str | None = None, *, ready_timeout: float = 30.0) -> Self:
        """Start one in a new temporary directory (removed by `stop`) and wait until it is ready."""
        path = binary or shutil.which("prometheus")
        if path is None:
            raise LocalPrometheusError("the prometheus binary is not installed (Debian package 'prometheus')")
        server = cls(path, Path(tempfile.mkdtemp(prefix="canaryflow-prometheus-")), port=free_port())
        server._remove_workdir = True
        try:
            server.wait_ready(ready_timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _write_config(self) -> None:
        interval = f"{SCRAPE_INTERVAL_SECONDS:g}s"
        config = {
            "global": {
                "scrape_interval": interval,
                "evaluation_interval": interval,
                "scrape_timeout": interval,
            },
            "scrape_configs": [
                {
                    "job_name": job,
                    "static_configs": [{"targets": targets, "labels": self._labels.get(job, {})}],
                    **self._job_interval(job),
                }
                for job, targets in self._jobs.items()
            ],
        }
        self.config_file.write_text(json.dumps(config, indent=1))  # JSON is YAML

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise LocalPrometheusError(
                    f"prometheus exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                return self._http.get("/-/ready").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, timeout=timeout, what=f"{self.url}/-/ready")

    def _job_interval(self, job: str) -> dict[str, str]:
        interval = self._intervals.get(job)
        if interval is None:
            return {}
        return {"scrape_interval": f"{interval:g}s", "scrape_timeout": f"{interval:g}s"}

    def add_targets(
        self,
        job: str,
        targets: Sequence[str],
        *,
        timeout: float = 20.0,
        scrape_interval: float | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """Scrape `targets` (``host:port``) as `job`; return once each has been scraped and is up.
        `scrape_interval` (also the job's scrape timeout) replaces the global second for this job:
        for a target whose exposition takes longer than a second on a busy machine. `labels` are
        added to every series of the job (a cell's ``cluster``, as a shared Prometheus would)."""
        self._jobs[job] = list(targets)
        self._labels[job] = dict(labels or {})
        if scrape_interval is not None:
            self._intervals[job] = scrape_interval
        self._write_config()
        response = self._http.post("/-/reload")
        if response.status_code != 200:
            raise LocalPrometheusError(f"reload failed: {response.text}\n{self.log_tail()}")

        def all_up() -> bool:
            active = self._http.get("/api/v1/targets").json()["data"]["activeTargets"]
            health = {t["labels"]["instance"]: t["health"] for t in active if t["labels"]["job"] == job}
            return all(health.get(target) == "up" for target in targets)

        wait_until(all_up, timeout=timeout, what=f"targets {list(targets)} up in job {job}")

    def query(self, promql: str, *, at: float | None = None) -> list[Any]:
        """``data.result`` of an instant query."""
        params = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
        body = self._http.get("/api/v1/query", params=params).json()
        if body.get("status") != "success":
            raise LocalPrometheusError(f"query {promql!r} failed: {body}")
        return list(body["data"]["result"])

    def wait_for_samples(self, selector: str, count: int, *, timeout: float = 60.0) -> None:
        """Wait until the series of `selector` has at least `count` scraped samples in the last 5 minutes."""

        def enough() -> bool:
            result = self.query(f"min(count_over_time({selector}[5m]))")
            return bool(result) and float(result[0]["value"][1]) >= count

        wait_until(enough, timeout=timeout, what=f"{count} samples of {selector}", interval=0.25)

    def stop(self) -> None:
        """Terminate (then kill) the process; remove the directory `start` made. Idempotent."""
        self._http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        if self._remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
