"""One way to reach Prefect: ``PREFECT_API_URL``, else the active profile's, else canaryflow's local
server; none of them set, or none answering, is one line that says what to set, and nothing else
happens (no Prefect import, no traceback, no database)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from canaryflow.cli.prefectapi import find_api
from canaryflow.dev.processes import free_port


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "CANARYFLOW_STATE_DIR": str(tmp_path / "state"),
        **extra,
    }


@pytest.mark.parametrize(
    "command",
    [
        ["promote", "web-1"],
        ["abort", "web-1"],
        ["pause", "web-1"],
        ["resume", "web-1"],
        ["promote", "web-1", "--full", "--reason", "x"],
    ],
    ids=" ".join,
)
def test_without_any_prefect_api_the_command_says_what_to_set(tmp_path: Path, command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "canaryflow", *command],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=60,
        check=False,
    )
    assert done.returncode == 5  # transient: start one, or point at one, and run again
    assert done.stderr.splitlines() == [
        "canaryflow: error: no Prefect API: PREFECT_API_URL is not set and no local server runs; set "
        "PREFECT_API_URL to your Prefect server's API (e.g. http://127.0.0.1:4200/api), or start "
        "canaryflow's local one: canaryflow dev prefect up"
    ]
    assert not (tmp_path / "prefect-home").exists()  # Prefect never ran: no database, no profile


def test_an_api_that_does_not_answer_is_named_with_where_it_came_from(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    done = subprocess.run(
        [sys.executable, "-m", "canaryflow", "promote", "web-1"],
        capture_output=True,
        text=True,
        env=_env(tmp_path, PREFECT_API_URL=url),
        timeout=60,
        check=False,
    )
    assert done.returncode == 5
    (line,) = done.stderr.splitlines()
    assert line.startswith(
        f"canaryflow: error: the Prefect API at {url} (from PREFECT_API_URL) does not answer"
    )


@pytest.mark.parametrize("url", ["notaurl", "127.0.0.1:4200/api", "ftp://prefect.example.com/api"])
def test_an_api_url_that_is_not_one_is_a_setting_to_fix_not_an_outage(tmp_path: Path, url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "canaryflow", "history", "--prefect"],
        capture_output=True,
        text=True,
        env=_env(tmp_path, PREFECT_API_URL=url, CANARYFLOW_REPORTS_DIR=str(tmp_path / "reports")),
        timeout=60,
        check=False,
    )
    assert done.returncode == 1  # invalid input, not 5 (retry later)
    (line,) = done.stderr.splitlines()
    assert line.startswith(
        f"canaryflow: error: the Prefect API URL {url!r} (from PREFECT_API_URL) is not an http(s) URL; set"
    )


def test_the_active_profile_is_used_when_the_variable_is_not_set(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(
        'active = "team"\n\n[profiles.team]\nPREFECT_API_URL = "https://prefect.example.com/api"\n'
        '\n[profiles.local]\nPREFECT_API_URL = "http://127.0.0.1:4200/api"\n'
    )
    env = {"PREFECT_PROFILES_PATH": str(profiles), "CANARYFLOW_STATE_DIR": str(tmp_path / "state")}
    api = find_api(env)
    assert api is not None
    assert api.url == "https://prefect.example.com/api"
    assert api.source == f"Prefect profile 'team' ({profiles})"
    assert find_api({**env, "PREFECT_PROFILE": "local"}).url == "http://127.0.0.1:4200/api"  # type: ignore[union-attr]
    assert find_api({**env, "PREFECT_API_URL": "http://x/api"}).source == "PREFECT_API_URL"  # type: ignore[union-attr]
