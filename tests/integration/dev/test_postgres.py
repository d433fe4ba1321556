"""`canaryflow.dev.postgres`: a throwaway PostgreSQL, and a Prefect server whose database it holds.

Real programs: Debian's ``postgresql`` (its ``initdb``, ``postgres`` and ``psql``) and
``prefect server``. The production-stack test builds on both; these tests say which part broke.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from canaryflow.dev.postgres import ROLE, LocalPostgres, postgres_binaries
from canaryflow.dev.prefectserver import prefect_server
from canaryflow.errors import LocalPostgresError
from tests.fixtures.debian import debian_program


@pytest.fixture
def binaries() -> Path:
    found = postgres_binaries()
    if found is None:
        debian_program("initdb", "postgresql", "the PostgreSQL tests")  # skips, or fails on CI
    assert found is not None
    return found


def _psql(server: LocalPostgres, sql: str) -> str:
    address = ["-h", "127.0.0.1", "-p", str(server.port), "-U", ROLE, "-d", "prefect"]
    done = subprocess.run(
        [str(server.binaries / "psql"), *address, "-tAc", sql],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.strip()


def test_a_started_server_answers_on_loopback_and_stop_removes_everything(binaries: Path) -> None:
    server = LocalPostgres.start(binaries)
    try:
        assert server.database_url == f"postgresql+asyncpg://{ROLE}@127.0.0.1:{server.port}/prefect"
        assert _psql(server, "select current_database() || ' ' || current_user") == f"prefect {ROLE}"
        workdir = server.workdir
        assert (workdir / "data" / "PG_VERSION").exists()
    finally:
        server.stop()
    assert not workdir.exists()
    assert server.process is not None
    assert server.process.poll() is not None


def test_a_failed_start_says_which_program_failed_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(LocalPostgresError, match=r"^initdb failed"):
        LocalPostgres.start(tmp_path / "no-postgresql-here")
    assert list(tmp_path.glob("canaryflow-postgres-*")) == []


def test_prefect_server_keeps_its_database_in_postgresql(binaries: Path) -> None:
    with (
        LocalPostgres.start(binaries) as database,
        prefect_server(database_url=database.database_url) as server,
    ):
        created = httpx.post(f"{server.api_url}/flows/", json={"name": "kept-in-postgresql"}, timeout=30)
        assert created.status_code in (200, 201), created.text
        assert not (server.home / "prefect.db").exists()
        assert (
            _psql(database, "select name from flow where name = 'kept-in-postgresql'") == "kept-in-postgresql"
        )
