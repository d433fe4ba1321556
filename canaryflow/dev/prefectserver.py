"""canaryflow's own ``prefect server``: the local default Prefect API, and throwaway ones for tests.

Two ways to run one (``python -m prefect server start`` of the installed Prefect, on 127.0.0.1,
with no other ``PREFECT_*`` setting inherited):

- `LocalPrefect`: the documented local default. ``canaryflow dev prefect up`` starts it in the
  background with its home (SQLite database, log, ``state.json``) in `default_home`, and it keeps
  running until ``canaryflow dev prefect down``; the commands that need Prefect find it through
  `running_server` when ``PREFECT_API_URL`` is not set. The demo starts it for its own duration
  when it is not running. Its database is created or migrated by `prepare_database` *before* the
  server starts (once per Prefect version), never raced against a start-up timeout.
- `prefect_server`: a server in a temporary home for the duration of a ``with`` block (tests).

Stopping is SIGTERM to the server's process group (it runs detached from the terminal, so a Ctrl-C
there reaches the caller, which stops it cleanly), SIGKILL after a grace period. This module does
not import Prefect (the server is another process): callers point their runs at
`PrefectServer.api_url` through ``PREFECT_API_URL`` before they import Prefect.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import httpx

from canaryflow.dev.processes import (
    alive,
    die_with_parent,
    free_port,
    port_is_free,
    stop_groups,
    tail,
    wait_until,
)
from canaryflow.dev.state import state_dir
from canaryflow.errors import PrefectServerError

__all__ = [
    "LocalPrefect",
    "PrefectServer",
    "default_home",
    "prefect_server",
    "prepare_database",
    "running_server",
    "server_environment",
    "stop",
]

_STATE = "state.json"
_DEFAULT_PORT = 4200
Say = Callable[[str], None]


@dataclass(frozen=True)
class PrefectServer:
    """A running server: its base URL (the UI), its home, its log and its process id."""

    url: str
    home: Path
    log: Path
    pid: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        """What ``PREFECT_API_URL`` should say for runs to report here."""
        return f"{self.url}/api"

    @property
    def ui_url(self) -> str:
        return self.url

    def healthy(self, timeout: float = 2.0) -> bool:
        """Whether ``/api/health`` answers 200 (False while it starts, or when it is gone)."""
        try:
            return httpx.get(f"{self.api_url}/health", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def log_tail(self, lines: int = 20) -> str:
        return tail(self.log, lines)


def default_home(env: Mapping[str, str] | None = None) -> Path:
    """Where the local server keeps its database and state: ``$CANARYFLOW_STATE_DIR/prefect``
    (default ``$XDG_STATE_HOME/canaryflow/prefect``, i.e. ``~/.local/state/canaryflow/prefect``)."""
    return state_dir(env) / "prefect"


def server_environment(
    home: Path, port: int, base: Mapping[str, str] | None = None, *, database_url: str | None = None
) -> dict[str, str]:
    """The server's environment: `base` (default: ours) without any ``PREFECT_*`` setting, with
    `home` as ``PREFECT_HOME``, 127.0.0.1:`port` as its address, and analytics off. With
    `database_url` (``postgresql+asyncpg://...``), its database is there instead of SQLite in `home`.

    The address goes in the environment, not only on the command line: the UI asks the server for
    the API's URL (``/ui-settings``), and the server answers from its settings, so with ``--port``
    alone the browser would call the API on Prefect's default port 4200. ``PREFECT_UI_URL`` gives
    the links in notifications (`flows.notifications`) their address.
    """
    env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_UI_URL": f"http://127.0.0.1:{port}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
    )
    if database_url is not None:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    return env


def prepare_database(
    home: Path, *, python: str = sys.executable, say: Say = lambda _: None, database_url: str | None = None
) -> bool:
    """Create or migrate the SQLite database in `home` (or the one at `database_url`) with
    ``prefect server database upgrade``, once per installed Prefect version; return whether it ran.

    Raises
    ------
    PrefectServerError
        The migration failed; the message ends with its output.
    """
    home.mkdir(parents=True, exist_ok=True)
    stamp = home / f".database-prefect-{version('prefect')}"
    if stamp.exists() and (database_url is not None or (home / "prefect.db").exists()):
        return False
    say(f"Preparing Prefect's database in {home} (once; about half a minute)")
    done = subprocess.run(
        [python, "-m", "prefect", "server", "database", "upgrade", "-y"],
        env=server_environment(home, _DEFAULT_PORT, database_url=database_url),
        cwd=home,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise PrefectServerError(f"preparing Prefect's database in {home} failed:\n{output}")
    stamp.touch()
    return True


def _start(
    home: Path,
    port: int,
    *,
    python: str,
    die_with_caller: bool,
    database_url: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> PrefectServer:
    log_path = home / "server.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [python, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**server_environment(home, port, database_url=database_url), **(extra or {})},
            cwd=home,
            start_new_session=True,
            preexec_fn=die_with_parent if die_with_caller else None,
        )
    return PrefectServer(
        url=f"http://127.0.0.1:{port}", home=home, log=log_path, pid=process.pid, process=process
    )


def _wait_healthy(server: PrefectServer, timeout: float) -> None:
    def answered() -> bool:
        exited = server.process.poll() if server.process is not None else (None if alive(server.pid) else 1)
        if exited is not None:
            raise PrefectServerError(f"prefect server exited with {exited}:\n{server.log_tail()}")
        return server.healthy()

    try:
        wait_until(answered, timeout=timeout, what=f"{server.api_url}/health", interval=0.2)
    except TimeoutError as exc:
        raise PrefectServerError(f"{exc}; last lines of its log:\n{server.log_tail()}") from exc


def stop(server: PrefectServer, *, grace: float = 15.0) -> None:
    """SIGTERM the server's process group, SIGKILL it after `grace` seconds; reap it. Idempotent."""
    stop_groups([server.pid], grace=grace)
    if server.process is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.process.wait(timeout=10)


def running_server(home: Path, *, timeout: float = 1.0) -> PrefectServer | None:
    """The local server recorded in `home`, if its process lives and its API answers."""
    try:
        state = json.loads((home / _STATE).read_text())
        server = PrefectServer(url=state["url"], home=home, log=home / "server.log", pid=int(state["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not alive(server.pid) or not server.healthy(timeout=timeout):
        return None
    return server


class LocalPrefect:
    """Bring the local server up in `home` (its database prepared first) and down again."""

    def __init__(self, home: Path, *, python: str = sys.executable, say: Say = lambda _: None) -> None:
        self.home = home
        self.python = python
        self._say = say

    def up(self, *, timeout: float = 120.0, die_with_caller: bool = False) -> PrefectServer:
        """Start the server (idempotent: a running one is returned as it is) and wait until it
        answers. With `die_with_caller`, the kernel stops it when this process dies."""
        running = running_server(self.home)
        if running is not None:
            return running
        self.down()
        prepare_database(self.home, python=self.python, say=self._say)
        port = _DEFAULT_PORT if port_is_free(_DEFAULT_PORT) else free_port()
        server = _start(self.home, port, python=self.python, die_with_caller=die_with_caller)
        try:
            _wait_healthy(server, timeout)
        except BaseException:
            stop(server)
            raise
        (self.home / _STATE).write_text(json.dumps({"url": server.url, "pid": server.pid}))
        self._say(f"Prefect server {server.url} is up (UI: {server.ui_url})")
        return server

    def down(self) -> bool:
        """Stop the server recorded in `home`; return whether one was running."""
        try:
            pid = int(json.loads((self.home / _STATE).read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        was_running = alive(pid)
        stop_groups([pid])
        (self.home / _STATE).unlink(missing_ok=True)
        return was_running


@contextlib.contextmanager
def prefect_server(
    *,
    python: str = sys.executable,
    timeout: float = 120.0,
    grace: float = 15.0,
    database_url: str | None = None,
    environment: Mapping[str, str] | None = None,
) -> Iterator[PrefectServer]:
    """A Prefect server in a temporary home for the duration of a ``with`` block (killed with the
    caller if it dies; its home is removed afterwards). Its database is SQLite in that home, or the
    (PostgreSQL) one at `database_url`, migrated first; `environment` adds ``PREFECT_SERVER_*``
    settings (e.g. a larger connection pool).

    Raises
    ------
    PrefectServerError
        The database could not be prepared, or the server exited or did not answer within
        `timeout`; the message ends with its log.
    """
    with tempfile.TemporaryDirectory(prefix="canaryflow-prefect-") as directory:
        home = Path(directory)
        prepare_database(home, python=python, database_url=database_url)
        server = _start(
            home,
            free_port(),
            python=python,
            die_with_caller=True,
            database_url=database_url,
            extra=environment,
        )
        try:
            _wait_healthy(server, timeout)
            yield server
        finally:
            stop(server, grace=grace)
