"""`build_app`, what `canaryflow webhook serve` runs: secrets from the environment, routes from a file."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from canaryflow.dev.processes import free_port
from canaryflow.errors import SpecError
from canaryflow.triggers import InMemoryRolloutStarter
from canaryflow.webhooks.serve import build_app
from tests.integration.webhooks.conftest import serving, unused_loopback_url
from tests.unit.webhooks import payloads as p


@pytest.fixture
def routes_file(tmp_path: Path) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(
        p.routes_yaml(
            deliveries=str(tmp_path / "state" / "deliveries.sqlite3"),
            preview="config/rollouts/web.yaml",
            gitlab="config/rollouts/api-quick.yaml",
        )
    )
    return path


def test_a_route_whose_spec_is_missing_or_invalid_stops_the_receiver_from_starting(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        p.routes_yaml(deliveries=str(tmp_path / "deliveries.sqlite3"), gitlab="config/rollouts/web.yaml")
    )
    with pytest.raises(SpecError) as missing:
        build_app(
            path,
            environ={"CANARYFLOW_GITHUB_SECRET": "a-secret-long-enough"},
            starter=InMemoryRolloutStarter(),
        )
    assert missing.value.summary() == (
        f"{path}: routes[2] ({p.REPOSITORY}) rolls out config/rollouts/web-preview.yaml: "
        "config/rollouts/web-preview.yaml: no such rollout spec (give the path of one; examples are in "
        "config/rollouts/)"
    )
    assert not (tmp_path / "deliveries.sqlite3").exists()  # nothing was opened, nothing started


def test_a_route_whose_release_spec_is_missing_stops_the_receiver_from_starting(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        f"deliveries: {tmp_path / 'deliveries.sqlite3'}\nroutes:\n"
        "  - {repository: a/b, branch: main, release: config/releases/none.yaml, image: 'r.io/w:{sha}'}\n"
    )
    with pytest.raises(SpecError) as missing:
        build_app(
            path,
            environ={"CANARYFLOW_GITHUB_SECRET": "a-secret-long-enough"},
            starter=InMemoryRolloutStarter(),
        )
    assert missing.value.summary() == (
        f"{path}: routes[0] (a/b) releases config/releases/none.yaml: config/releases/none.yaml: no such "
        "release spec (give the path of one; examples are in config/releases/)"
    )
    assert not (tmp_path / "deliveries.sqlite3").exists()


def test_build_app_reads_secrets_from_the_environment_and_files(routes_file: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "gitlab-token"
    token_file.write_text(p.GITLAB_TOKEN + "\n")
    environ = {"CANARYFLOW_GITHUB_SECRET": p.GITHUB_SECRET, "CANARYFLOW_GITLAB_TOKEN_FILE": str(token_file)}
    starter = InMemoryRolloutStarter()
    with serving(build_app(routes_file, environ=environ, starter=starter)) as base_url:
        body = p.body_of(p.github_push())
        github = httpx.post(f"{base_url}/hooks/github", content=body, headers=p.github_headers(body))
        gitlab = httpx.post(
            f"{base_url}/hooks/gitlab", content=p.body_of(p.gitlab_push()), headers=p.gitlab_headers()
        )
    assert (github.status_code, gitlab.status_code) == (202, 202)
    assert len(starter.started) == 2
    assert (tmp_path / "state" / "deliveries.sqlite3").exists()


def test_build_app_without_any_secret_refuses_to_start(routes_file: Path) -> None:
    with pytest.raises(SpecError, match="no webhook secret"):
        build_app(routes_file, environ={}, starter=InMemoryRolloutStarter())


def test_build_app_reports_an_invalid_routes_file(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(
        "routes:\n  - repository: a/b\n    branch: main\n    rollout: r.yaml\n    image: 'x:{nope}'\n"
    )
    with pytest.raises(SpecError) as info:
        build_app(path, environ={"CANARYFLOW_GITHUB_SECRET": "a-secret-long-enough"})
    assert info.value.problems == [
        f"{path}:5 routes[0].image: unknown placeholder {{nope}} (allowed: sha, short_sha, ref_name)"
    ]


def test_serve_runs_the_receiver_with_the_prefect_starter(routes_file: Path, tmp_path: Path) -> None:
    """`serve` as the CLI calls it, in its own process: with the Prefect API unreachable a push is
    accepted, queued, and the failed start is logged with the deployment's name."""
    shutil.copytree(Path(__file__).resolve().parents[3] / "config", tmp_path / "config")  # its working dir
    port, metrics_port = (int(unused_loopback_url().split(":")[2].split("/")[0]) for _ in range(2))
    code = (
        "import sys\nfrom pathlib import Path\nfrom canaryflow.webhooks.serve import serve\n"
        f"serve(Path(sys.argv[1]), host='127.0.0.1', port={port}, metrics_port={metrics_port})\n"
    )
    env = {
        **os.environ,
        "CANARYFLOW_GITHUB_SECRET": p.GITHUB_SECRET,
        "PREFECT_API_URL": unused_loopback_url(),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(routes_file)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    try:
        output = []
        for line in process.stdout:  # uvicorn says when it listens
            output.append(line)
            if "Uvicorn running on" in line:
                break
        assert "Uvicorn running on" in "".join(output), "".join(output)
        base_url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base_url}/healthz").json() == {"status": "ok", "queued": 0}
        body = p.body_of(p.github_push())
        response = httpx.post(
            f"{base_url}/hooks/github", content=body, headers=p.github_headers(body), timeout=30
        )
        assert (response.status_code, response.json()["status"]) == (202, "accepted")
        for line in process.stdout:  # the dispatcher logs the failed start
            output.append(line)
            if "not started" in line:
                break
        assert "'rollout/rollout'" in output[-1], "".join(output)
        health = httpx.get(f"{base_url}/healthz").json()
        assert health["queued"] == 1
        assert "'rollout/rollout'" in health["last_error"]
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert 'canaryflow_webhook_start_failures_total{cause="unavailable"}' in scraped
        assert "canaryflow_webhook_queued 1.0" in scraped
    finally:
        process.terminate()
        rest = process.stdout.read()  # not communicate(): it would skip what the reader buffered
        process.stdout.close()
        process.wait(timeout=30)
    logged = "".join(output) + rest
    assert "POST /hooks/github" in logged, logged
    assert "of push 0d1a26e accepted for config/rollouts/web.yaml" in logged, logged
    assert p.GITHUB_SECRET not in logged


def _serve_cli(routes_file: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``canaryflow webhook serve --config routes_file *options`` in the repository (the routes' specs
    are relative to it), for a command that is expected to fail at once."""
    command = [
        str(Path(sys.executable).with_name("canaryflow")),
        "webhook",
        "serve",
        "--config",
        str(routes_file),
    ]
    return subprocess.run(
        [*command, *options],
        cwd=Path(__file__).resolve().parents[3],
        env={**os.environ, "CANARYFLOW_GITHUB_SECRET": p.GITHUB_SECRET},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_hooks_port_in_use_is_one_line_exit_1_and_nothing_is_created_or_started(
    routes_file: Path, tmp_path: Path
) -> None:
    metrics_port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        done = _serve_cli(routes_file, "--port", str(busy), "--metrics-port", str(metrics_port))
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [  # no traceback, no uvicorn line, no "metrics on"
        f"canaryflow: error: cannot serve the hooks on 127.0.0.1:{busy}: Address already in use; "
        "choose another --port or stop what listens there"
    ]
    assert not (tmp_path / "state").exists()  # the delivery store was not created


def test_a_metrics_port_in_use_is_one_line_exit_1_and_nothing_is_created(
    routes_file: Path, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        done = _serve_cli(routes_file, "--port", str(free_port()), "--metrics-port", str(busy))
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"canaryflow: error: cannot serve the metrics on 127.0.0.1:{busy}: Address already in use; "
        "choose another --metrics-port (0: no metrics) or stop what listens there"
    ]
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    ("option", "value"), [("--port", "0"), ("--port", "-1"), ("--port", "65536"), ("--metrics-port", "99999")]
)
def test_a_port_outside_its_range_is_a_usage_error_before_anything_starts(
    routes_file: Path, tmp_path: Path, option: str, value: str
) -> None:
    ports = {"--port": str(free_port()), "--metrics-port": "0", option: value}
    done = _serve_cli(routes_file, *(part for name, given in ports.items() for part in (name, given)))
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"canaryflow: error: Invalid value for '{option}': "), line
    assert not (tmp_path / "state").exists()


_SERVE = [sys.executable, "-m", "canaryflow", "webhook", "serve", "--config"]


def _own_env(tmp_path: Path) -> dict[str, str]:
    """A shell that never set PREFECT_API_URL or a Prefect profile (canaryflow's state in tmp_path)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {
        **env,
        "HOME": str(tmp_path),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "CANARYFLOW_STATE_DIR": str(tmp_path / "canaryflow-state"),
        "CANARYFLOW_GITHUB_SECRET": p.GITHUB_SECRET,
    }


def test_without_any_prefect_api_the_receiver_says_what_to_set_and_creates_nothing(
    routes_file: Path, tmp_path: Path
) -> None:
    """Not a temporary Prefect server of its own, which no worker or UI would ever see."""
    shutil.copytree(Path(__file__).resolve().parents[3] / "config", tmp_path / "config")
    done = subprocess.run(
        [*_SERVE, str(routes_file), "--port", str(free_port()), "--metrics-port", "0"],
        cwd=tmp_path, env=_own_env(tmp_path), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 5, done.stderr
    assert done.stderr.splitlines() == [
        "canaryflow: error: no Prefect API: PREFECT_API_URL is not set and no local server runs; set "
        "PREFECT_API_URL to your Prefect server's API (e.g. http://127.0.0.1:4200/api), or start "
        "canaryflow's local one: canaryflow dev prefect up"
    ]
    assert not (tmp_path / "state").exists()  # the delivery store was not created
    assert not (tmp_path / "prefect-home").exists()  # Prefect never ran


@pytest.mark.slow
def test_the_receiver_starts_rollouts_on_canaryflow_s_local_server(routes_file: Path, tmp_path: Path) -> None:
    """`canaryflow dev prefect up` and no PREFECT_API_URL, as the README's first steps leave a
    shell: the receiver names that server and its push becomes a flow run there."""
    repository = Path(__file__).resolve().parents[3]
    shutil.copytree(repository / "config", tmp_path / "config")
    env = _own_env(tmp_path)
    canaryflow = [sys.executable, "-m", "canaryflow"]
    up = subprocess.run(
        [*canaryflow, "dev", "prefect", "up"], env=env, capture_output=True, text=True, timeout=300
    )
    assert up.returncode == 0, up.stderr
    receiver: subprocess.Popen[str] | None = None
    try:
        shown = subprocess.run(
            [*canaryflow, "dev", "prefect", "env"], env=env, capture_output=True, text=True
        )
        (url,) = [
            line.split("=", 1)[1].strip("'\"") for line in shown.stdout.split() if "PREFECT_API_URL=" in line
        ]
        deploy = "from tests.fixtures.cellpools import deploy_stand_ins; deploy_stand_ins('rollout')"
        subprocess.run(
            [sys.executable, "-c", deploy],
            cwd=repository,
            env={**env, "PREFECT_API_URL": url},
            check=True,
            timeout=120,
        )
        port = free_port()
        receiver = subprocess.Popen(
            [*_SERVE, str(routes_file), "--port", str(port), "--metrics-port", "0"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert receiver.stdout is not None
        output = []
        for line in receiver.stdout:
            output.append(line)
            if "Uvicorn running on" in line:
                break
        said = "".join(output)
        assert f"rollouts start through the Prefect API at {url} (from canaryflow's local server" in said, (
            said
        )
        body = p.body_of(p.github_push())
        answer = httpx.post(
            f"http://127.0.0.1:{port}/hooks/github", content=body, headers=p.github_headers(body)
        )
        # "accepted" when the start outlasts the reply's wait (a busy machine): the run follows.
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] in ("started", "accepted"), answer.text
        runs = _runs_once_created(url)
        assert [run["parameters"]["request"]["image"] for run in runs] == [
            f"registry.example.com/hello/world:{p.AFTER}"
        ]
    finally:
        if receiver is not None:
            receiver.terminate()
            receiver.communicate(timeout=30)
        subprocess.run([*canaryflow, "dev", "prefect", "down"], env=env, capture_output=True, timeout=120)


def _runs_once_created(url: str, *, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The Prefect API's flow runs, as soon as there is one (the dispatcher creates it)."""
    deadline = time.monotonic() + timeout
    while True:
        runs: list[dict[str, Any]] = httpx.post(f"{url}/flow_runs/filter", json={}).json()
        if runs or time.monotonic() > deadline:
            return runs
        time.sleep(0.2)


def test_a_secret_that_cannot_be_read_is_said_before_the_prefect_api_is_sought(
    routes_file: Path, tmp_path: Path
) -> None:
    shutil.copytree(Path(__file__).resolve().parents[3] / "config", tmp_path / "config")
    env = {k: v for k, v in _own_env(tmp_path).items() if k != "CANARYFLOW_GITHUB_SECRET"}
    missing = tmp_path / "no-such-secret"
    done = subprocess.run(
        [*_SERVE, str(routes_file), "--port", str(free_port()), "--metrics-port", "0"],
        cwd=tmp_path, env={**env, "CANARYFLOW_GITHUB_SECRET_FILE": str(missing)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        f"canaryflow: error: CANARYFLOW_GITHUB_SECRET_FILE: cannot read the secret file {missing}: "
        "No such file or directory"
    ]
