"""Fixtures shared by every test folder.

`prefect_harness` is the one Prefect API of a test session (a temporary SQLite database and an
ephemeral server, `prefect_test_harness`). It also turns off the per-run heartbeat of sync flows
(about 1 s per flow run in prefect 3.9, settable only through `temporary_settings`) and telemetry.
Tests that need Prefect take this fixture; nothing else in the suite imports Prefect.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = ["tests.fixtures.prometheus", "tests.fixtures.kube"]

# Before Prefect is imported anywhere: no telemetry, no analytics, no phone-home.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS", "false")


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
