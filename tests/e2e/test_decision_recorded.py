"""A rollback decided by the judge is recorded in the cluster before anything else: a run that
dies right after the verdict (here: drawing its chart fails) leaves the target marked "rolling
back", and the next run of the rollout finishes the rollback at once instead of analysing the bad
canary again (simulated cluster, the real Prefect harness)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from analysis.observations import TrackObservation
from canaryflow.dev.stacks import BAD_IMAGE, STABLE_IMAGE, SimulatedStack
from canaryflow.metrics import MetricQuery, MetricsSource
from canaryflow.status import RolloutPhase


class CountingMetrics:
    """Counts the analysis's queries (the canary's and the baseline's)."""

    def __init__(self, inner: MetricsSource) -> None:
        self.inner, self.calls = inner, 0

    def observe(self, query: MetricQuery, **kwargs: Any) -> TrackObservation:
        if kwargs.get("track") != "stable":
            self.calls += 1
        return self.inner.observe(query, **kwargs)


def test_a_run_that_dies_after_a_rollback_verdict_is_resumed_into_the_rollback(
    stack: SimulatedStack, runtime: Any, rollout_of: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def dies(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the worker died while drawing the verdict's chart")

    monkeypatch.setattr("flows.judging._chart", dies)
    first = rollout_of(BAD_IMAGE)
    assert first.is_failed()
    with pytest.raises(RuntimeError, match="drawing the verdict"):
        first.result()
    state = stack.cluster.read(stack.target).state
    assert state is not None
    assert state.phase == RolloutPhase.ROLLING_BACK  # decided, not yet done

    monkeypatch.undo()
    counting = CountingMetrics(stack.metrics)
    object.__setattr__(runtime, "metrics", counting)
    outcome = rollout_of(BAD_IMAGE).result()

    assert outcome.result == "rolled-back"
    assert "resumed an interrupted rollback" in outcome.reason
    assert counting.calls == 0  # the bad canary was not analysed again
    status = stack.cluster.read(stack.target)
    assert (status.canary, status.baseline) == (None, None)
    assert (status.stable.image, status.stable.ready) == (STABLE_IMAGE, 10)
