"""Fixtures shared by every test folder.

`prefect_harness` is the one Prefect API of a test session (a temporary SQLite database and an
ephemeral server, `prefect_test_harness`). It also turns off the per-run heartbeat of sync flows
(about 1 s per flow run in prefect 3.9, settable only through `temporary_settings`) and telemetry.
Tests that need Prefect take this fixture; nothing else in the suite imports Prefect.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = ["tests.fixtures.prometheus", "tests.fixtures.kube"]

# Before Prefect is imported anywhere: no telemetry, no analytics, no phone-home.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS", "false")


def pytest_configure(config: pytest.Config) -> None:
    # Python before 3.11.8 (and 3.12.0-3.12.1) leaks a socket when a TLS connection is reset while
    # `ssl.SSLSocket` is being made: its connected check re-raises ECONNRESET without closing the
    # socket it already owns (CPython gh-113280). Tests that stop an API server reset such
    # connections of the cluster adapter's client; the lost socket's ResourceWarning then comes
    # whenever the garbage collector finds it, and fails whichever test is running then. On the
    # Pythons with the fix, every unclosed TLS socket stays an error.
    if sys.version_info < (3, 11, 8) or (3, 12) <= sys.version_info < (3, 12, 2):
        config.addinivalue_line("filterwarnings", r"ignore:unclosed <ssl\.SSLSocket:ResourceWarning")


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[Any]:
    from prefect.settings import get_current_settings, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=60),
        temporary_settings(updates={"flows.heartbeat_frequency": None}),
    ):
        settings = get_current_settings()
        assert settings.flows.heartbeat_frequency is None
        yield settings


#: Files whose tests take minutes, longest first. They are collected before every other file (whose
#: order stays as it was), so that on two pytest workers (`make test`: ``--dist loadfile
#: --no-loadscope-reorder``) they start at once and the short files fill the end of the run.
_LONG_FIRST = (
    "tests/e2e/test_production_stack.py",
    "tests/e2e/test_demo_cells.py",
    "tests/e2e/test_release_faults.py",
    "tests/unit/analysis/test_calibration.py",
    "tests/e2e/test_demo_first_run.py",
    "tests/e2e/test_sigkill_resume.py",
    "tests/e2e/test_demo_kube.py",
    "tests/unit/analysis/test_outlook.py",
    "tests/contract/test_outage_contract.py",
    "tests/e2e/test_prometheus_rollout.py",
    "tests/e2e/test_demo_cells_interrupt.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: index for index, path in enumerate(_LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
