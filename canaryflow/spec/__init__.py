"""Rollout and release specs: pydantic models of the YAML a person writes, and the loader that
checks them.

What belongs here: the models (`RolloutSpec` and its parts; `ReleaseSpec`, one image across
cells in waves; `NotificationsSpec`, who hears about rollouts), durations, metric entries with their
query templates, YAML loading with every problem's file, line and path, and the JSON schema.
What must not: I/O beyond reading the spec file, clusters, metrics backends, Prefect. This package
imports only pydantic, ruamel.yaml, `analysis` and `canaryflow.errors` / `canaryflow.querytemplates`.

Typical use::

    spec = load_spec("config/rollouts/web.yaml")
    spec.target.namespace, spec.steps[0].set_weight, spec.analysis_settings()
"""

from __future__ import annotations

from canaryflow.spec.durations import Duration, format_duration, parse_duration
from canaryflow.spec.loading import (
    json_schema,
    load_notifications,
    load_notifications_text,
    load_release,
    load_release_text,
    load_spec,
    load_spec_text,
    validate_files,
)
from canaryflow.spec.metrics import (
    DEFAULT_METRICS,
    HistogramMetric,
    MetricSpec,
    QueryTemplate,
    RatioMetric,
    SamplesMetric,
)
from canaryflow.spec.models import (
    API_VERSION,
    AnalysisSpec,
    Analyze,
    FailurePolicy,
    Metadata,
    Pause,
    RolloutBody,
    RolloutSpec,
    Step,
    Target,
)
from canaryflow.spec.notifications import NOTIFICATION_EVENTS, Channel, NotificationsSpec
from canaryflow.spec.release import Bake, Cell, Freeze, ReleaseBody, ReleaseSpec, Wave

__all__ = [
    "API_VERSION",
    "DEFAULT_METRICS",
    "NOTIFICATION_EVENTS",
    "AnalysisSpec",
    "Analyze",
    "Bake",
    "Cell",
    "Channel",
    "Duration",
    "FailurePolicy",
    "Freeze",
    "HistogramMetric",
    "Metadata",
    "MetricSpec",
    "NotificationsSpec",
    "Pause",
    "QueryTemplate",
    "RatioMetric",
    "ReleaseBody",
    "ReleaseSpec",
    "RolloutBody",
    "RolloutSpec",
    "SamplesMetric",
    "Step",
    "Target",
    "Wave",
    "format_duration",
    "json_schema",
    "load_notifications",
    "load_notifications_text",
    "load_release",
    "load_release_text",
    "load_spec",
    "load_spec_text",
    "parse_duration",
    "validate_files",
]
