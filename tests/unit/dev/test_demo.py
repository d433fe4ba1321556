"""The demo's building blocks that need no cluster: the example app it applies, its own Prefect
server (started for real: health answers, then nothing is left), and its refusals."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from canaryflow.cli.demorun import run_demo
from canaryflow.dev.prefectserver import prefect_server, server_environment
from canaryflow.dev.stacks import STABLE_IMAGE, TARGET, example_app_documents
from canaryflow.errors import PrefectServerError, UsageError, exit_code_for


def test_the_example_app_is_applied_on_the_demo_image_and_size() -> None:
    documents = example_app_documents(image=STABLE_IMAGE, replicas=4)

    kinds = [(d["kind"], d["metadata"]["name"]) for d in documents]
    assert kinds == [("Namespace", "shop"), ("Deployment", "web"), ("Service", "web")]
    deployment = documents[1]
    assert deployment["spec"]["replicas"] == 4
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [(TARGET.container, STABLE_IMAGE)]
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "web", "track": "stable"}
    assert documents[2]["spec"]["selector"] == {"app": "web"}


def test_an_unknown_cluster_kind_is_refused_before_anything_starts() -> None:
    with pytest.raises(UsageError, match=r"unknown cluster kind.*kube") as refused:
        run_demo(cluster="minikube")
    assert exit_code_for(refused.value) == 2  # usage, as for --cells 9 or --judge foo


def test_the_server_inherits_no_prefect_setting(tmp_path: Path) -> None:
    base = {
        "PATH": "/usr/bin",
        "PREFECT_API_URL": "http://127.0.0.1:1/api",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": "postgresql+asyncpg://example.com/prefect",
    }

    env = server_environment(tmp_path, 4321, base)

    assert env == {
        "PATH": "/usr/bin",
        "PREFECT_HOME": str(tmp_path),
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": "4321",
        "PREFECT_UI_URL": "http://127.0.0.1:4321",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_the_prefect_server_answers_and_leaves_nothing_behind() -> None:
    with prefect_server(timeout=120) as server:
        health = httpx.get(f"{server.api_url}/health", timeout=5)
        assert health.status_code == 200
        assert health.json() is True
        # The UI in a browser calls the API where the server says it is: this server, not :4200.
        ui_settings = httpx.get(f"{server.url}/ui-settings", timeout=5).json()
        assert ui_settings["api_url"] == server.api_url
        assert server.home.is_dir()
        pid = server.process.pid
        assert os.getpgid(pid) == pid  # detached: a Ctrl-C reaches the demo, not it

    assert server.process.returncode is not None
    assert not _group_alive(pid)
    assert not server.home.exists()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.api_url}/health", timeout=2)


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'no prefect here' >&2\nexit 3\n")
    fake.chmod(0o755)

    with (
        pytest.raises(PrefectServerError, match=r"database .* failed:\n.*no prefect here"),
        prefect_server(python=str(fake), timeout=30),
    ):
        pass  # pragma: no cover - never entered
