"""A throwaway PostgreSQL (Debian's ``postgresql`` package) on 127.0.0.1, for Prefect's database in
the production-shaped stack tests and benchmarks.

`LocalPostgres.start` runs ``initdb`` into a new temporary directory (trust authentication for one
role, ``canaryflow``, reachable only on loopback), starts ``postgres`` on a free port with its
socket in that directory, creates the database ``prefect`` and returns once it answers;
`LocalPostgres.database_url` is what ``PREFECT_SERVER_DATABASE_CONNECTION_URL`` should say.
PostgreSQL refuses to run as root: as root, the programs run as Debian's ``postgres`` user,
which owns the directory. The server dies with the process that started it (the kernel kills it),
so a test run that is killed leaves no database behind. `stop` shuts it down (fast mode, then
SIGKILL) and removes the directory. Errors are `LocalPostgresError` with the tail of the server's log.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from canaryflow.dev.processes import die_with_parent, free_port, tail, wait_until
from canaryflow.errors import LocalPostgresError

__all__ = ["DATABASE", "ROLE", "LocalPostgres", "postgres_binaries"]

ROLE = "canaryflow"
DATABASE = "prefect"
_DEBIAN = Path("/usr/lib/postgresql")
_SYSTEM_USER = "postgres"


def postgres_binaries() -> Path | None:
    """The directory of Debian's newest installed ``initdb``/``postgres``, or None without one."""
    found = sorted(
        (p for p in _DEBIAN.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class LocalPostgres:
    """A running PostgreSQL: its port, its directory, and the URL Prefect's server connects to."""

    def __init__(self, binaries: Path, workdir: Path, *, port: int) -> None:
        self.binaries = binaries
        self.workdir = workdir
        self.port = port
        self.data = workdir / "data"
        self.log_file = workdir / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def database_url(self) -> str:
        """``postgresql+asyncpg://canaryflow@127.0.0.1:<port>/prefect`` (Prefect's async driver)."""
        return f"postgresql+asyncpg://{ROLE}@127.0.0.1:{self.port}/{DATABASE}"

    @classmethod
    def start(cls, binaries: Path | None = None, *, ready_timeout: float = 60.0) -> Self:
        """Initialise a cluster in a new temporary directory, start it and create the database.

        Raises
        ------
        LocalPostgresError
            PostgreSQL is not installed, or ``initdb``, the server or ``createdb`` failed.
        """
        found = binaries or postgres_binaries()
        if found is None:
            raise LocalPostgresError("PostgreSQL is not installed (Debian package 'postgresql')")
        workdir = Path(tempfile.mkdtemp(prefix="canaryflow-postgres-"))
        server = cls(found, workdir, port=free_port())
        try:
            server._initdb()
            server._serve(ready_timeout)
            server._run("createdb", "-h", "127.0.0.1", "-p", str(server.port), "-U", ROLE, DATABASE)
        except BaseException:
            server.stop()
            raise
        return server

    def _as_owner(self) -> list[str]:
        """The command prefix that runs a program as the directory's owner (``postgres`` as root)."""
        return ["runuser", "-u", _SYSTEM_USER, "--"] if os.geteuid() == 0 else []

    @staticmethod
    def _become_owner_and_die_with_parent() -> None:
        """``preexec_fn`` of the server: as root, become ``postgres``; then ask the kernel to kill
        it when its parent dies (after the change of user, which clears that request)."""
        if os.geteuid() == 0:
            owner = pwd.getpwnam(_SYSTEM_USER)
            os.setgroups([])
            os.setgid(owner.pw_gid)
            os.setuid(owner.pw_uid)
        die_with_parent()

    def _run(self, program: str, *args: str) -> None:
        try:
            done = subprocess.run(
                [*self._as_owner(), str(self.binaries / program), *args],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LocalPostgresError(f"{program} failed: {exc}") from exc
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise LocalPostgresError(f"{program} failed: " + " / ".join(output))

    def _initdb(self) -> None:
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam(_SYSTEM_USER)
            except KeyError as exc:
                raise LocalPostgresError(
                    f"running as root needs the system user {_SYSTEM_USER!r} (Debian's postgresql creates it)"
                ) from exc
            os.chown(self.workdir, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", ROLE, "--auth=trust", "--no-sync", "-E", "UTF8")

    def _serve(self, ready_timeout: float) -> None:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.workdir),
            "max_connections": "300",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        flags = [item for key, value in settings.items() for item in ("-c", f"{key}={value}")]
        log = self.log_file.open("ab")
        with log:
            if os.geteuid() == 0:
                owner = pwd.getpwnam(_SYSTEM_USER)
                os.chown(self.log_file, owner.pw_uid, owner.pw_gid)
            self.process = subprocess.Popen(
                [str(self.binaries / "postgres"), "-D", str(self.data), *flags],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=self._become_owner_and_die_with_parent,
            )

        def answers() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise LocalPostgresError(
                    f"postgres exited with {self.process.returncode}:\n{tail(self.log_file)}"
                )
            done = subprocess.run(
                [str(self.binaries / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                check=False,
            )
            return done.returncode == 0

        try:
            wait_until(answers, timeout=ready_timeout, what=f"PostgreSQL on port {self.port}", interval=0.2)
        except TimeoutError as exc:
            raise LocalPostgresError(f"{exc}; last lines of its log:\n{tail(self.log_file)}") from exc

    def stop(self) -> None:
        """Stop the server (SIGINT: fast shutdown; SIGKILL after 20 s) and remove its directory."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, 2)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, 9)
                self.process.wait(timeout=10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
