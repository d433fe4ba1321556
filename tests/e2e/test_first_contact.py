"""First contact, as a user meets canaryflow: ``canaryflow check`` and ``canaryflow rollout`` as
processes, against the real local control plane, a real Prometheus scraping simulated traffic of the
target's real pods, and a real Prefect API.

A ready target passes the preflight and a rollout runs with its steps printed. Every refusal (a
missing spec, a bad image, Prometheus or the API server or Prefect unreachable, credentials without
a verb, a metric without data, a setting missing) is one line on standard error, exits with the
code of the README's table, shows no traceback, and changes nothing: no Deployment, no flow run, no
report.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from canaryflow.clock import SystemClock
from canaryflow.cluster.kubernetes import KubernetesCluster
from canaryflow.dev.processes import free_port
from canaryflow.dev.stacks import GOOD_IMAGE, PROFILES, STABLE_IMAGE
from canaryflow.reports import scan_statuses
from canaryflow.simulation import AppRef, MetricsServer, RealTimeDriver, TrafficSimulator
from tests.contract.harness import KubernetesHarness, role_rules

pytestmark = [pytest.mark.kube, pytest.mark.prometheus, pytest.mark.slow]

SPEC = """\
apiVersion: canaryflow/v1
kind: Rollout
metadata: {{name: web-first-contact}}
spec:
  target: {{namespace: {namespace}, deployment: web, container: web, service: web}}
  baseline: true
  progressDeadline: 1m
  steps:
    - setWeight: 20
    - analyze: {{interval: 3s, maxDuration: 45s}}
  failurePolicy: {{onFailure: rollback, onInconclusive: rollback}}
  analysis: {{minExposureSeconds: 6, minIntervals: 2}}
"""


@dataclass(frozen=True)
class Served:
    """The example target serving traffic that Prometheus scrapes, and how to run the CLI on it."""

    harness: KubernetesHarness
    namespace: str
    spec: Path
    env: dict[str, str]
    directory: Path

    def run(self, *args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
        environment = {**self.env, **{k: v for k, v in env.items() if v is not None}}
        for name in (k for k, v in env.items() if v is None):
            environment.pop(name, None)
        return subprocess.run(
            [sys.executable, "-m", "canaryflow", *args],
            capture_output=True,
            text=True,
            env=environment,
            cwd=self.directory,
            timeout=240,
            check=False,
        )

    def stable(self) -> tuple[str, list[str]]:
        """The stable's image and every Deployment of the namespace."""
        observed = self.harness.observe("web")
        assert observed is not None
        return observed.images["web"], self.harness.deployments()


@pytest.fixture(scope="module")
def served(
    local_kube: Any, prometheus: Any, prefect_harness: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("first-contact")
    harness = KubernetesHarness(local_kube.kubeconfig)
    try:
        harness.create_app("web", image=STABLE_IMAGE, replicas=10)
        spec = directory / "web.yaml"
        spec.write_text(SPEC.format(namespace=harness.namespace))
        with KubernetesCluster.from_kubeconfig(local_kube.kubeconfig) as watcher:
            simulator = TrafficSimulator(
                watcher,
                [AppRef(harness.namespace, "web")],
                clock=SystemClock(),
                seed=5,
                rate_per_pod=1000.0,
                profiles=PROFILES,
            )
            with RealTimeDriver(simulator, tick=0.25), MetricsServer(simulator) as server:
                prometheus.add_targets(f"first-contact-{harness.namespace}", [server.target])
                stable = f'http_requests_total{{namespace="{harness.namespace}",track="stable"}}'
                prometheus.wait_for_samples(stable, 8)
                env = {
                    **{k: v for k, v in os.environ.items() if not k.startswith(("CANARYFLOW_", "PREFECT_"))},
                    "KUBECONFIG": str(local_kube.kubeconfig),
                    "CANARYFLOW_PROMETHEUS_URL": prometheus.url,
                    "CANARYFLOW_REPORTS_DIR": str(directory / "reports"),
                    "CANARYFLOW_STATE_DIR": str(directory / "state"),
                    "PREFECT_API_URL": str(prefect_harness.api.url),
                    "PREFECT_HOME": str(directory / "prefect-home"),
                    "COLUMNS": "200",
                }
                yield Served(harness, harness.namespace, spec, env, directory)
    finally:
        harness.close()


def _flow_runs() -> int:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return len(client.read_flow_runs(limit=200))


def _dead_kubeconfig(served: Served) -> str:
    path = served.directory / "dead-kubeconfig"
    config = json.loads(Path(served.env["KUBECONFIG"]).read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    path.write_text(json.dumps(config))
    return str(path)


def _untrusting_kubeconfig(served: Served) -> str:
    """The kubeconfig with its user's certificate (issued by the cluster's CA, not the CA) as the
    authority to trust: the API server's certificate then fails verification."""
    path = served.directory / "untrusting-kubeconfig"
    config = json.loads(Path(served.env["KUBECONFIG"]).read_text())
    user = config["users"][0]["user"]["client-certificate-data"]
    config["clusters"][0]["cluster"]["certificate-authority-data"] = user
    path.write_text(json.dumps(config))
    return str(path)


def _without_patch(served: Served) -> str:
    path = served.directory / "no-patch-kubeconfig"
    if not path.exists():
        rules = [dict(rule) for rule in role_rules()]
        for rule in rules:
            rule["verbs"] = [
                v for v in rule["verbs"] if not (v == "patch" and "deployments" in rule["resources"])
            ]
        served.harness.kubeconfig_as_service_account(rules, path)
    return str(path)


NO_DATA_METRICS = """\
  analysis:
    minExposureSeconds: 6
    minIntervals: 2
    metrics:
      - name: checkout-errors
        type: ratio
        bad: sum(increase(checkout_failures_total{namespace="{namespace}", track="{track}"}[{interval}]))
        total: sum(increase(checkout_total{namespace="{namespace}", track="{track}"}[{interval}]))
"""


def _without_data(served: Served) -> str:
    """The spec with a metric nothing exports."""
    path = served.directory / "no-data.yaml"
    old = "  analysis: {minExposureSeconds: 6, minIntervals: 2}\n"
    path.write_text(served.spec.read_text().replace(old, NO_DATA_METRICS))
    return str(path)


def test_check_passes_on_a_ready_target_and_changes_nothing(served: Served) -> None:
    before = served.stable()

    checked = served.run("check", str(served.spec), "--image", GOOD_IMAGE)

    assert checked.returncode == 0, checked.stderr
    lines = checked.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:5]] == [
        "ok  spec",
        "ok  image",
        "ok  cluster",
        "ok  weights",
        "ok  metrics",
    ]
    assert "the credentials may do all a rollout does" in lines[2]
    assert "reachable at" in lines[3]
    assert "error-rate, latency: data for the stable track" in lines[4]
    assert lines[-1] == f"ready: canaryflow rollout {served.spec} --image {GOOD_IMAGE}"
    assert served.stable() == before


TYPO_METRICS = """\
  analysis:
    minExposureSeconds: 6
    minIntervals: 2
    metrics:
      - name: errors
        type: ratio
        bad: >-
          sum(increase(http_requests_totl{namespace="{namespace}", code=~"5..",
          track="{track}"}[{interval}]))
        total: sum(increase(http_requests_total{namespace="{namespace}", track="{track}"}[{interval}]))
"""


def test_check_warns_of_a_metric_name_prometheus_has_no_series_of(served: Served) -> None:
    """A typo in a bad query reads as no errors, not as no data: the check would pass in silence."""
    path = served.directory / "typo.yaml"
    path.write_text(
        served.spec.read_text().replace(
            "  analysis: {minExposureSeconds: 6, minIntervals: 2}\n", TYPO_METRICS
        )
    )
    before = served.stable()

    checked = served.run("check", str(path), "--image", GOOD_IMAGE)

    assert checked.returncode == 0, checked.stderr
    (warning,) = [line for line in checked.stdout.splitlines() if line.startswith("warning")]
    assert warning == (
        f"warning  metrics: errors: Prometheus has no series named http_requests_totl: check the spelling in "
        f"{path}; until such a series exists, the judge counts none of its requests"
    )
    assert served.stable() == before


def test_check_warns_when_the_stable_already_runs_the_image(served: Served) -> None:
    checked = served.run("check", str(served.spec), "--image", STABLE_IMAGE)

    assert checked.returncode == 0, checked.stderr
    (warning,) = [line for line in checked.stdout.splitlines() if line.startswith("warning")]
    assert warning == (
        f"warning  image: the stable of {served.namespace}/web already runs {STABLE_IMAGE}: the rollout "
        "would compare it with itself, and its promotion changes nothing"
    )


def _refusals() -> list[Any]:
    """(name, command, environment changes, exit code, words of the one line)."""
    unused = f"http://127.0.0.1:{free_port()}"
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("missing spec", "spec:missing", {}, 1, "no such rollout spec"),
        ("bad image", "image:Bad Image!!", {}, 1, "is not a valid image reference"),
        (
            "no Prometheus URL",
            "",
            {"CANARYFLOW_PROMETHEUS_URL": None},
            1,
            "CANARYFLOW_PROMETHEUS_URL is not set",
        ),
        ("Prometheus unreachable", "", {"CANARYFLOW_PROMETHEUS_URL": unused}, 5, "Prometheus did not answer"),
        ("API server unreachable", "", {"KUBECONFIG": "dead"}, 5, "did not answer"),
        (  # a setting to fix, not an outage to wait out
            "API server certificate not trusted",
            "",
            {"KUBECONFIG": "untrusted"},
            3,
            "has a certificate that failed verification",
        ),
        (
            "no permission to patch",
            "",
            {"KUBECONFIG": "no-patch"},
            3,
            "may not patch deployments in namespace",
        ),
        ("no data", "spec:no-data", {}, 4, "has no data for the stable track"),
        ("misspelled target", "spec:typo", {}, 3, "/wbe does not exist; check spec.target in"),
    ]
    params = [pytest.param(c, "check", id=f"check: {c[0]}") for c in cases]
    params += [pytest.param(c, "rollout", id=f"rollout: {c[0]}") for c in cases]
    prefect_down = ("Prefect unreachable", "", {"PREFECT_API_URL": f"{unused}/api"}, 5, "does not answer")
    params.append(pytest.param(prefect_down, "rollout", id="rollout: Prefect unreachable"))
    return params


@pytest.mark.parametrize(("case", "command"), _refusals())
def test_every_refusal_is_one_line_with_its_exit_code_and_changes_nothing(
    served: Served, case: tuple[str, str, dict[str, Any], int, str], command: str
) -> None:
    _name, change, env, code, words = case
    spec, image = str(served.spec), GOOD_IMAGE
    if change == "spec:missing":
        spec = str(served.directory / "missing.yaml")
    elif change == "spec:no-data":
        spec = _without_data(served)
    elif change == "spec:typo":
        spec = str(served.directory / "typo.yaml")
        Path(spec).write_text(served.spec.read_text().replace("deployment: web", "deployment: wbe"))
    elif change.startswith("image:"):
        image = change.removeprefix("image:")
    env = dict(env)
    if env.get("KUBECONFIG") == "dead":
        env["KUBECONFIG"] = _dead_kubeconfig(served)
    elif env.get("KUBECONFIG") == "untrusted":
        env["KUBECONFIG"] = _untrusting_kubeconfig(served)
    elif env.get("KUBECONFIG") == "no-patch":
        env["KUBECONFIG"] = _without_patch(served)
    before, runs = served.stable(), _flow_runs()

    refused = served.run(command, spec, "--image", image, **env)

    assert refused.returncode == code, refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("canaryflow: error: ")
    assert words in line
    assert "Traceback" not in refused.stdout + refused.stderr
    assert served.stable() == before  # no canary, no baseline, the stable untouched
    assert _flow_runs() == runs  # nothing started in Prefect
    assert not (served.directory / "reports").exists()


def test_check_shows_what_passed_before_prometheus_refuses(served: Served) -> None:
    refused = served.run(
        "check",
        str(served.spec),
        "--image",
        GOOD_IMAGE,
        CANARYFLOW_PROMETHEUS_URL=f"http://127.0.0.1:{free_port()}",
    )

    assert refused.returncode == 5, refused.stderr
    checks = [line.split(":")[0] for line in refused.stdout.splitlines()]
    assert checks == ["ok  spec", "ok  image", "ok  cluster", "ok  weights"]
    assert "Prometheus did not answer" in refused.stderr


def test_ctrl_c_rolls_back_the_rollout_this_terminal_runs(served: Served) -> None:
    """Nothing else would: a rollout run in a terminal has no worker, hook or automation."""
    from flows.rollout import INTERRUPTED

    before = served.stable()
    process = subprocess.Popen(
        [sys.executable, "-m", "canaryflow", "rollout", str(served.spec), "--image", GOOD_IMAGE],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=served.env,
        cwd=served.directory,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # the canary is up once the analysis looked
            if "interval 1:" in line:
                break
        else:
            raise AssertionError(f"the rollout ended before its first look: {process.wait()}")
        assert served.stable()[1] == sorted([*before[1], "web-baseline", "web-canary"])
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
        process.wait()

    assert process.returncode == 130, err
    assert "Traceback" not in out + err
    assert err.splitlines()[0] == (
        "canaryflow: interrupted: stopping, and rolling back a canary already up (Ctrl-C again leaves "
        f"it for `canaryflow rollout {served.spec} --resume`)"
    )
    said = out.strip().splitlines()
    assert said[-2].endswith(f" aborted: {INTERRUPTED}")
    assert said[-1].startswith("report: ")
    assert served.stable() == before  # no canary, no baseline, the stable as it was
    (report,) = scan_statuses(served.directory / "reports").found
    assert (report.result, report.reason) == ("aborted", INTERRUPTED)
    shutil.rmtree(served.directory / "reports")  # the next test's report is its own


def test_rollout_runs_in_this_terminal_and_promotes(served: Served) -> None:
    """Last in this module: it changes the target (the good image is promoted)."""
    done = served.run("rollout", str(served.spec), "--image", GOOD_IMAGE)

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "ok  metrics" in out  # the preflight, before anything starts
    assert f"ok  spec: {served.spec}: {served.namespace}/web, 2 steps" in out  # as `check` says it
    assert f"ok  image: {GOOD_IMAGE}" in out
    assert "step 1/2 setWeight 20%" in out
    assert "interval 1:" in out
    assert " promoted: " in out
    assert "Traceback" not in out + done.stderr
    assert done.stderr == ""  # Prefect's own console logs stay off the terminal
    image, deployments = served.stable()
    assert (image, deployments) == (GOOD_IMAGE, ["web"])
