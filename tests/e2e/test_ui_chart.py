"""The verdict's chart is visible in the Prefect UI: a headless Chromium looks at the artifact page.

A real ``prefect server`` (the one ``canaryflow demo --ui`` starts) receives the artifacts of a
real rollout of the good image on the simulated stack, run by a child process pointed at it. The
browser then loads the verdict artifact's page the way a person would: the UI must have rendered
the markdown's image (a PNG ``data:`` URI) as an ``<img>``, and the screenshot must show the
chart's canary red and baseline blue, which nothing else on the page uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.debian import debian_program

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CANARY_RED = (0xD6, 0x27, 0x28)  # flows.charts colours
BASELINE_BLUE = (0x1F, 0x77, 0xB4)


def child(reports: str) -> None:
    """The rollout of the good image on the simulated stack, reporting to ``PREFECT_API_URL``."""
    from canaryflow.clock import ManualClock
    from canaryflow.dev.stacks import GOOD_IMAGE, simulated_stack
    from canaryflow.requests import RolloutRequest
    from flows import Runtime, rollout, use_runtime
    from tests.e2e.conftest import DEMO_SPEC

    clock = ManualClock()
    stack = simulated_stack(clock, rate_per_pod=200.0)
    clock.advance(60.0)  # the target has been serving: the preflight sees its traffic
    runtime = Runtime(
        cluster=stack.cluster,
        metrics=stack.metrics,
        clock=stack.clock,
        reports_dir=Path(reports),
        retry_delays=(0.0,),
    )
    with use_runtime(runtime):
        outcome = rollout(RolloutRequest(spec=DEMO_SPEC, image=GOOD_IMAGE))
    print(json.dumps({"rollout_id": outcome.rollout_id, "result": outcome.result}), flush=True)


@pytest.fixture
def chromium() -> str:
    return debian_program("chromium", "chromium", "the Prefect UI test")


@pytest.fixture
def server() -> Any:
    from canaryflow.dev.prefectserver import prefect_server

    with prefect_server(timeout=120) as running:
        yield running


def _browse(chromium: str, profile: Path, url: str, *how: str) -> str:
    done = subprocess.run(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--window-size=1400,2400",
            "--virtual-time-budget=30000",  # lets the page's API calls and rendering finish
            *how,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _has_colour(pixels: Any, rgb: tuple[int, int, int], tolerance: int = 8) -> bool:
    import numpy as np

    distance = np.abs(pixels[:, :, :3].astype(int) - np.array(rgb)).max(axis=2)
    return bool((distance <= tolerance).sum() >= 50)  # a line, not a stray anti-aliased pixel


def test_the_verdict_chart_renders_in_the_prefect_ui(chromium: str, server: Any, tmp_path: Path) -> None:
    from matplotlib.image import imread

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
        "PREFECT_API_URL": server.api_url,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PYTHONPATH": str(REPO),
    }
    program = "import sys; from tests.e2e.test_ui_chart import child; child(sys.argv[1])"
    ran = subprocess.run(
        [sys.executable, "-c", program, str(tmp_path / "reports")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    outcome = json.loads(ran.stdout.strip().splitlines()[-1])
    assert outcome["result"] == "promoted"
    found = httpx.post(
        f"{server.api_url}/artifacts/filter",
        json={"artifacts": {"key": {"any_": [f"{outcome['rollout_id']}-verdict"]}}, "sort": "CREATED_DESC"},
        timeout=10,
    ).json()
    artifact = found[0]  # the last analysis step's verdict (one version per step)
    assert "data:image/png;base64," in artifact["data"]  # the chart is in the markdown we sent
    page = f"{server.url}/artifacts/artifact/{artifact['id']}"

    dom = _browse(chromium, tmp_path / "profile", page, "--dump-dom")
    assert outcome["rollout_id"] in dom  # the UI reached the API and rendered the artifact
    assert 'alt="canary vs baseline"' in dom
    assert 'src="data:image/png;base64,' in dom  # not stripped by the UI's markdown sanitizer

    shot = tmp_path / "artifact.png"
    _browse(chromium, tmp_path / "profile", page, f"--screenshot={shot}")
    pixels = (imread(shot) * 255).round()
    assert _has_colour(pixels, CANARY_RED), "no canary line on the page"
    assert _has_colour(pixels, BASELINE_BLUE), "no baseline line on the page"
