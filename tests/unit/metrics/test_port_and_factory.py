"""The port's value types, the factory, and the package's public surface."""

from __future__ import annotations

import importlib
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import canaryflow.metrics as metrics
from analysis.observations import Samples
from canaryflow.errors import MetricsUnavailableError, NoDataError, QueryError, SpecError
from canaryflow.metrics import MetricQuery, check_window, create_metrics_source, observe_interval
from canaryflow.metrics.prometheus import PrometheusConfig, PrometheusMetricsSource


def test_a_query_needs_the_templates_of_its_type() -> None:
    MetricQuery("e", "ratio", {"bad": "x", "total": "y"})
    with pytest.raises(ValueError, match=r"needs templates \['bad', 'total'\]"):
        MetricQuery("e", "ratio", {"query": "x"})
    with pytest.raises(ValueError, match="unknown type"):
        MetricQuery("e", "gauge", {"query": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown variable\(s\) \['pod'\]"):
        MetricQuery("e", "samples", {"query": "up{pod='{pod}'}"})


def test_a_query_is_immutable_and_hashable() -> None:
    templates = {"query": "up"}
    q = MetricQuery("e", "samples", templates)
    templates["query"] = "down"
    assert q.templates["query"] == "up"
    assert hash(q) == hash(MetricQuery("e", "samples", {"query": "up"}))
    with pytest.raises(TypeError):
        q.templates["query"] = "x"  # type: ignore[index]


def test_windows_need_an_aware_end_and_a_positive_length() -> None:
    check_window(datetime.now(tz=UTC), timedelta(seconds=1))
    with pytest.raises(ValueError, match="positive"):
        check_window(datetime.now(tz=UTC), timedelta(0))


def test_the_factory_refuses_unknown_kinds_instead_of_falling_back() -> None:
    with pytest.raises(
        SpecError, match="unknown metrics source kind 'datadog'; known kinds: prometheus, simulated"
    ):
        create_metrics_source("datadog")
    with pytest.raises(SpecError, match="needs a Prometheus configuration"):
        create_metrics_source("prometheus")
    with pytest.raises(SpecError, match="needs a traffic simulator"):
        create_metrics_source("simulated")
    src = create_metrics_source("prometheus", prometheus=PrometheusConfig(url="http://127.0.0.1:1"))
    assert isinstance(src, PrometheusMetricsSource)
    src.close()


def test_errors_other_than_no_data_propagate_from_an_interval() -> None:
    class Failing:
        def __init__(self, exc: Exception) -> None:
            self.exc = exc

        def observe(self, *args: Any, **kwargs: Any) -> Any:
            raise self.exc

        def is_online(self) -> bool:
            return True

    q = MetricQuery("e", "samples", {"query": "up"})
    end, window = datetime.now(tz=UTC), timedelta(seconds=1)
    for exc in (QueryError("bad", query="up"), MetricsUnavailableError("down")):
        with pytest.raises(type(exc)):
            observe_interval(Failing(exc), [q], namespace="n", app="a", end=end, window=window)


def test_an_interval_says_which_track_had_no_data() -> None:
    """The canary only: its pods are not scraped with its track label, say, or not yet."""

    class CanaryUnseen:
        def observe(self, query: MetricQuery, *, track: str, **kwargs: Any) -> Any:
            if track == "canary":
                raise NoDataError("nothing", query="up")
            return Samples(values=(1.0,))

        def is_online(self) -> bool:
            return True

    q = MetricQuery("e", "samples", {"query": "up"})
    missing: dict[str, tuple[str, ...]] = {}
    end, window = datetime.now(tz=UTC), timedelta(seconds=1)
    got = observe_interval(
        CanaryUnseen(), [q], namespace="n", app="a", end=end, window=window, missing=missing
    )
    assert (got, missing) == ({"e": None}, {"e": ("canary",)})


def test_public_surface() -> None:
    assert len(set(metrics.__all__)) == len(metrics.__all__)
    for name in metrics.__all__:
        assert hasattr(metrics, name), name


def test_importing_the_package_does_not_load_the_prometheus_client() -> None:
    saved = {
        k: v for k, v in sys.modules.items() if k.startswith(("canaryflow.metrics", "prometheus_api_client"))
    }
    for name in saved:
        del sys.modules[name]
    try:
        importlib.import_module("canaryflow.metrics")
        assert "prometheus_api_client" not in sys.modules
    finally:
        sys.modules.update(saved)
