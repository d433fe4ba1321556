"""A `prefect server` of its own for `canaryflow demo --ui`, run as a child process.

`prefect_server` starts the installed Prefect CLI (``python -m prefect server start``) on 127.0.0.1
and a free port, with a temporary ``PREFECT_HOME`` (a fresh SQLite database, removed afterwards)
and no other ``PREFECT_*`` setting inherited, waits until ``/api/health`` answers, and stops it on
the way out: SIGTERM to its process group (it runs detached from the terminal, so a Ctrl-C there
reaches the demo, which then stops the server cleanly), SIGKILL after a grace period.
The kernel also kills it if the process that started it dies.

This module does not import Prefect (the server is another process): the caller points its own
runs at `PrefectServer.api_url` through ``PREFECT_API_URL`` before it imports Prefect.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from canaryflow.dev.processes import die_with_parent, free_port, stop_groups, wait_until
from canaryflow.errors import PrefectServerError

__all__ = ["PrefectServer", "prefect_server", "server_environment", "stop"]


@dataclass(frozen=True)
class PrefectServer:
    """A running server: its base URL (the UI), its API URL, its home and its log."""

    url: str
    home: Path
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def api_url(self) -> str:
        """What ``PREFECT_API_URL`` should say for runs to report here."""
        return f"{self.url}/api"

    @property
    def ui_url(self) -> str:
        return self.url

    def healthy(self) -> bool:
        """Whether ``/api/health`` answers 200 (False while it starts, or when it is gone)."""
        try:
            return httpx.get(f"{self.api_url}/health", timeout=2.0).status_code == 200
        except httpx.TransportError:
            return False

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def server_environment(home: Path, port: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: `base` (default: ours) without any ``PREFECT_*`` setting, with
    `home` as ``PREFECT_HOME``, 127.0.0.1:`port` as its address, and analytics off.

    The address goes in the environment, not only on the command line: the UI asks the server for
    the API's URL (``/ui-settings``), and the server answers from its settings, so with ``--port``
    alone the browser would call the API on Prefect's default port 4200.
    """
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    return env


@contextlib.contextmanager
def prefect_server(
    *, python: str = sys.executable, timeout: float = 90.0, grace: float = 15.0
) -> Iterator[PrefectServer]:
    """A Prefect server for the duration of a ``with`` block.

    Parameters
    ----------
    python
        The interpreter whose installed Prefect runs the server (default: this one).
    timeout
        Seconds to wait for ``/api/health`` (the first start creates the database).
    grace
        Seconds between SIGTERM and SIGKILL when stopping.

    Raises
    ------
    PrefectServerError
        The server exited or did not answer within `timeout`; the message ends with its log.
    """
    with tempfile.TemporaryDirectory(prefix="canaryflow-prefect-") as directory:
        home = Path(directory)
        log_path = home / "server.log"
        port = free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [python, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=server_environment(home, port),
                cwd=home,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        server = PrefectServer(url=f"http://127.0.0.1:{port}", home=home, log=log_path, process=process)
        try:
            _wait_healthy(server, timeout)
            yield server
        finally:
            stop(server, grace=grace)


def stop(server: PrefectServer, *, grace: float = 15.0) -> None:
    """SIGTERM the server's process group, SIGKILL it after `grace` seconds; reap it. Idempotent."""
    stop_groups([server.process.pid], grace=grace)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.process.wait(timeout=10)


def _wait_healthy(server: PrefectServer, timeout: float) -> None:
    def answered() -> bool:
        if server.process.poll() is not None:
            raise PrefectServerError(
                f"prefect server exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        return server.healthy()

    try:
        wait_until(answered, timeout=timeout, what=f"{server.api_url}/health", interval=0.2)
    except TimeoutError as exc:
        raise PrefectServerError(f"{exc}; last lines of its log:\n{server.log_tail()}") from exc
