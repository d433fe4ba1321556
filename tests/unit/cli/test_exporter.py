"""``canaryflow metrics serve``: GET /metrics on the port given; a port in use or out of range is one
line and its exit code, and nothing is served."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from canaryflow.dev.processes import free_port


def _serve(*options: str, reports: Path) -> subprocess.CompletedProcess[str]:
    """The command, for one that is expected to fail at once."""
    return subprocess.run(
        [sys.executable, "-m", "canaryflow", "metrics", "serve", *options],
        env={**os.environ, "CANARYFLOW_REPORTS_DIR": str(reports)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_it_serves_the_metrics_on_the_port_given(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "canaryflow", "metrics", "serve", "--port", str(port)],
        env={**os.environ, "CANARYFLOW_REPORTS_DIR": str(tmp_path)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        said = server.stderr.readline()
        assert said == f"canaryflow metrics of {tmp_path} on http://127.0.0.1:{port}/metrics\n"
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert scraped.status_code == 200
    assert "canaryflow_history_unreadable_lines 0.0" in scraped.text


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        done = _serve("--port", str(busy), reports=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"canaryflow: error: cannot serve the metrics on 127.0.0.1:{busy}: Address already in use; "
        "choose another --port or stop what listens there"
    ]


@pytest.mark.parametrize("port", ["0", "-1", "65536", "99999"])
def test_a_port_outside_1_to_65535_is_a_usage_error(tmp_path: Path, port: str) -> None:
    done = _serve("--port", port, reports=tmp_path)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("canaryflow: error: Invalid value for '--port': "), line
    assert line.endswith("(see: canaryflow metrics serve --help)"), line


def test_an_unreadable_report_is_counted_and_the_others_still_are(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from prometheus_client import generate_latest

    from canaryflow.exporter import registry_for
    from canaryflow.reports import write_status
    from canaryflow.status import RolloutPhase, RolloutStatus

    for rollout_id in ("web-aaaa1111", "web-bbbb2222"):
        written = write_status(
            tmp_path / rollout_id,
            RolloutStatus(
                rollout_id=rollout_id, target="shop/web", image="registry.example.com/web:2",
                spec="config/rollouts/web.yaml", triggered_by="test", steps=3, step=1,
                phase=RolloutPhase.PROGRESSING, weight=10, effective_weight=10.0,
                updated_at=datetime(2026, 12, 1, tzinfo=UTC),
            ),
        )  # fmt: skip
    written.write_text(written.read_text()[:40])  # the second one is torn

    scraped = generate_latest(registry_for(tmp_path)).decode()

    assert "canaryflow_reports_unreadable 1.0" in scraped
    assert 'canaryflow_rollouts_in_progress{cell="",target="shop/web"} 1.0' in scraped
    phase = (
        'canaryflow_rollout_phase{cell="",phase="progressing",rollout="web-aaaa1111",target="shop/web"} 1.0'
    )
    assert phase in scraped


def test_cells_sharing_a_target_are_counted_apart(tmp_path: Path) -> None:
    """A release's cells may roll out the same namespace/deployment into one reports directory:
    every figure carries the cell, so one cell's rollbacks and rollouts do not add to another's."""
    from datetime import UTC, datetime, timedelta

    from prometheus_client import generate_latest

    from canaryflow.exporter import registry_for
    from canaryflow.history import HistoryRecord, append_history
    from canaryflow.reports import write_status
    from canaryflow.status import RolloutPhase, RolloutStatus

    start = datetime(2026, 12, 1, tzinfo=UTC)
    for rollout_id, cell, result in (("web-eu1", "eu-1", "promoted"), ("web-us1", "us-1", "rolled-back")):
        append_history(
            tmp_path,
            HistoryRecord(
                rollout_id=rollout_id, target="shop/web", image="registry.example.com/web:2", result=result,
                cell=cell, reason="test", triggered_by="release r1", started_at=start,
                finished_at=start + timedelta(minutes=5),
            ),
        )  # fmt: skip
    for rollout_id, cell in (("web-eu2", "eu-1"), ("web-us2", "us-1"), ("web-plain", None)):
        write_status(
            tmp_path / rollout_id,
            RolloutStatus(
                rollout_id=rollout_id, target="shop/web", cell=cell, image="registry.example.com/web:3",
                spec="config/rollouts/web.yaml", triggered_by="test", steps=3, step=1,
                phase=RolloutPhase.PROGRESSING, weight=10, effective_weight=10.0, updated_at=start,
            ),
        )  # fmt: skip

    scraped = generate_latest(registry_for(tmp_path)).decode()

    for line in (
        'canaryflow_rollouts_ended_total{cell="eu-1",result="promoted",target="shop/web"} 1.0',
        'canaryflow_rollouts_ended_total{cell="us-1",result="rolled-back",target="shop/web"} 1.0',
        'canaryflow_rollout_duration_seconds_count{cell="us-1",result="rolled-back",target="shop/web"} 1.0',
        'canaryflow_rollouts_in_progress{cell="eu-1",target="shop/web"} 1.0',
        'canaryflow_rollouts_in_progress{cell="us-1",target="shop/web"} 1.0',
        'canaryflow_rollouts_in_progress{cell="",target="shop/web"} 1.0',
        'canaryflow_rollout_weight_percent{cell="us-1",kind="effective",rollout="web-us2",'
        'target="shop/web"} 10.0',
    ):
        assert line in scraped, line


def test_every_address_of_the_host_is_bound_and_a_failure_leaves_none_bound() -> None:
    from canaryflow.errors import InputError
    from canaryflow.exporter import listen

    port = free_port()
    passive = socket.getaddrinfo(None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets = listen("", port, serving="the hooks", option="--port")  # "": every interface
    assert [s.getsockname()[:2] for s in sockets] == [info[4][:2] for info in passive]
    for s in sockets:
        s.close()

    family, kind, proto, _, last = passive[-1]  # taken by another process: the earlier ones bind first
    taken = socket.socket(family, kind, proto)
    if family == socket.AF_INET6:
        taken.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    taken.bind(last)
    taken.listen()
    try:
        with pytest.raises(InputError, match=r"in use; choose another --port or stop what listens there"):
            listen("", port, serving="the hooks", option="--port")
    finally:
        taken.close()
    again = listen("", port, serving="the hooks", option="--port")  # nothing was left bound
    for s in again:
        s.close()
