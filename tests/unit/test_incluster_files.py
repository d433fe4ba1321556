"""The in-cluster deployment's own files agree with the project: its routes file is valid and
names specs the image carries, and the Dockerfile copies what the worker's flow runs read."""

from __future__ import annotations

import re
from pathlib import Path

from canaryflow.routes import load_routes
from canaryflow.spec.loading import load_spec

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deployments" / "kubernetes" / "canaryflow"


def test_the_in_cluster_routes_are_valid_and_their_specs_are_in_the_image() -> None:
    routes = load_routes(MANIFESTS / "routes.yaml")

    assert Path(routes.deliveries).is_absolute()  # on the receiver's volume, not in /app
    assert routes.deliveries.startswith("/var/lib/canaryflow/deliveries/")
    copied = re.findall(r"^COPY (?!--from)(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    for route in routes.routes:
        assert load_spec(ROOT / route.rollout).target.deployment  # valid
        assert any(route.rollout.startswith(source.rstrip("/")) for source in copied), route.rollout


def test_the_image_carries_what_flow_runs_and_prefect_deploy_read() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    for needed in ("COPY flows ./flows", "COPY config ./config", "COPY deployments/prefect.yaml"):
        assert needed in final_stage
    assert "uv sync --frozen --no-dev" in dockerfile  # exactly the lock's versions
    assert "USER 10001" in final_stage
