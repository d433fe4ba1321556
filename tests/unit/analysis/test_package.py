"""The package's public surface, its purity, its settings, and the examples in its docstrings."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pydantic
import pytest

import analysis
from analysis.settings import AnalysisSettings, MetricSettings

MODULES = [
    "analysis.observations",
    "analysis.evalues",
    "analysis.ratio",
    "analysis.histogram",
    "analysis.samples",
    "analysis.kayenta",
    "analysis.mannwhitney",
    "analysis.ceiling",
    "analysis.increase",
]


def test_the_public_surface_is_listed_and_importable() -> None:
    assert sorted(analysis.__all__) == sorted(set(analysis.__all__))
    for name in analysis.__all__:
        assert hasattr(analysis, name), name
    for name in ("SequentialJudge", "KayentaJudge", "parse_log", "judge_log", "Verdict", "MetricEvidence"):
        assert name in analysis.__all__
    assert "pure" in (analysis.__doc__ or "")
    assert "no I/O" in (analysis.__doc__ or "")


def test_importing_the_package_loads_no_io_orchestration_or_scipy() -> None:
    code = (
        "import sys, analysis; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'canaryflow','flows','prefect','kubernetes','fastapi','httpx','requests','scipy','logging'}); "
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_hold(module: str) -> None:
    failures, tried = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert failures == 0
    assert tried > 0


def test_default_settings_are_the_documented_ones() -> None:
    s = AnalysisSettings()
    assert (s.alpha, s.beta, s.max_duration_seconds, s.min_exposure_seconds) == (0.05, 0.05, 1200.0, 300.0)
    assert (s.ratio_tolerance, s.histogram_tolerance) == (0.5, 0.2)  # no looser than +50 % / +20 %
    assert (s.kayenta.confidence, s.kayenta.tolerance, s.kayenta.marginal_score, s.kayenta.pass_score) == (
        0.98,
        0.25,
        75.0,
        95.0,
    )
    m = MetricSettings(name="latency", type="histogram")
    assert s.tolerance_for(m) == 0.2
    assert s.min_intervals_for(m) == 3
    assert s.tolerance_for(m.model_copy(update={"tolerance": 0.3})) == 0.3


def test_settings_are_frozen_and_reject_unknown_keys() -> None:
    with pytest.raises(pydantic.ValidationError):
        AnalysisSettings.model_validate({"alpha": 0.05, "alpah": 0.1})
    with pytest.raises(pydantic.ValidationError):
        MetricSettings.model_validate({"name": "x", "type": "ratio", "tolerence": 0.1})
    with pytest.raises(pydantic.ValidationError):
        AnalysisSettings().alpha = 0.1  # type: ignore[misc]
