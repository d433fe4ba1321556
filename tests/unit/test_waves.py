"""What a release does next (`canaryflow.waves.next_step`): the issue's scenarios step by step, and
a property test that drives random releases to their end and checks the rules at every step."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canaryflow.spec.release import ReleaseSpec
from canaryflow.waves import Abort, BakeVerdict, BakeWave, CellPhase, Finish, Start, Undo, Wait, next_step

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def release(
    waves: list[dict[str, Any]],
    *,
    on_failure: str = "rollback-all",
    freezes: list[dict[str, Any]] | None = None,
) -> ReleaseSpec:
    names = [name for wave in waves for name in wave["cells"]]
    return ReleaseSpec.model_validate(
        {
            "apiVersion": "canaryflow/v1",
            "kind": "Release",
            "metadata": {"name": "web"},
            "spec": {
                "rollout": "config/rollouts/web.yaml",
                "prometheus": "http://prometheus:9090",
                "cells": [
                    {"name": n, "context": n, "workPool": f"p-{n}", "labels": {"cell": n}} for n in names
                ],
                "waves": waves,
                "onFailure": on_failure,
                "freezes": freezes or [],
            },
        }
    )


TWO_WAVES = [{"cells": ["a"], "bake": {"minDuration": "10m"}}, {"cells": ["b", "c"]}]


def test_a_good_release_goes_wave_by_wave_with_a_bake_between() -> None:
    spec = release(TWO_WAVES)
    cells: dict[str, CellPhase] = {}
    assert next_step(spec, cells, {}, now=NOW) == Start(("a",))
    cells["a"] = "running"
    assert next_step(spec, cells, {}, now=NOW) == Wait("wave 1: a rolling out")
    cells["a"] = "promoted"
    assert next_step(spec, cells, {}, now=NOW) == BakeWave(0)
    assert next_step(spec, cells, {0: "pending"}, now=NOW) == BakeWave(0)
    assert next_step(spec, cells, {0: "within"}, now=NOW) == Start(("b", "c"))
    cells.update(b="promoted", c="promoted")
    assert next_step(spec, cells, {0: "within"}, now=NOW) == Finish(
        "released", "every wave of 2 promoted and baked"
    )


def test_a_bad_canary_in_the_first_wave_stops_there_and_touches_no_other_cell() -> None:
    step = next_step(release(TWO_WAVES), {"a": "rolled-back"}, {}, now=NOW)
    assert step == Finish("rolled-back", "wave 1: a rolled back (at most 0 may); onFailure: rollback-all")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("rollback-all", [Abort(("c",), "wave 2: b rolled back (at most 0 may)"), "undo wave 1", "finish"]),
        ("rollback-wave", [Abort(("c",), "wave 2: b rolled back (at most 0 may)"), "finish"]),
        ("hold", [Abort(("c",), "wave 2: b rolled back (at most 0 may)"), "held"]),
    ],
)
def test_bad_only_in_the_second_wave(policy: str, expected: list[Any]) -> None:
    spec = release(TWO_WAVES, on_failure=policy)
    cells: dict[str, CellPhase] = {"a": "promoted", "b": "rolled-back", "c": "running"}
    bakes: dict[int, BakeVerdict] = {0: "within"}
    assert next_step(spec, cells, bakes, now=NOW) == expected[0]
    cells["c"] = "rolled-back"  # aborted
    step = next_step(spec, cells, bakes, now=NOW)
    if expected[1] == "undo wave 1":
        assert step == Undo(("a",), "wave 2: b, c rolled back (at most 0 may); onFailure: rollback-all")
        cells["a"] = "undone"
        step = next_step(spec, cells, bakes, now=NOW)
        assert isinstance(step, Finish)
        assert step.outcome == "rolled-back"
    elif expected[1] == "finish":
        assert step == Finish(
            "rolled-back", "wave 2: b, c rolled back (at most 0 may); onFailure: rollback-wave"
        )
        assert cells["a"] == "promoted"  # the earlier wave keeps the release
    else:
        assert step == Finish(
            "held", "wave 2: b, c rolled back (at most 0 may); onFailure: hold, nothing rolled back"
        )


def test_a_bake_that_finds_the_release_worse_undoes_the_baked_wave() -> None:
    step = next_step(release(TWO_WAVES), {"a": "promoted"}, {0: "worse"}, now=NOW)
    assert step == Undo(
        ("a",), "wave 1: the bake found the release worse than the cells not updated; onFailure: rollback-all"
    )


def test_a_bake_that_cannot_show_the_release_within_tolerance_stops_it_too() -> None:
    step = next_step(release(TWO_WAVES, on_failure="hold"), {"a": "promoted"}, {0: "inconclusive"}, now=NOW)
    assert step == Finish(
        "held",
        "wave 1: the bake could not show the release within tolerance; onFailure: hold, nothing rolled back",
    )


def test_concurrency_and_tolerated_failures() -> None:
    spec = release([{"cells": ["a", "b", "c"], "concurrency": 2, "maxFailures": 1}])
    assert next_step(spec, {}, {}, now=NOW) == Start(("a", "b"))
    assert next_step(spec, {"a": "running", "b": "rolled-back"}, {}, now=NOW) == Start(("c",))
    step = next_step(spec, {"a": "promoted", "b": "rolled-back", "c": "rolled-back"}, {}, now=NOW)
    assert step == Undo(("a",), "wave 1: b, c rolled back (at most 1 may); onFailure: rollback-all")


def test_an_unhealthy_cell_delays_its_wave_and_says_why() -> None:
    spec = release([{"cells": ["a", "b"], "concurrency": 1}])
    step = next_step(spec, {}, {}, now=NOW, unhealthy={"a": "error rate 4 % over its SLO"})
    assert step == Start(("b",))
    step = next_step(spec, {"b": "promoted"}, {}, now=NOW, unhealthy={"a": "error rate 4 % over its SLO"})
    assert step == Wait("wave 1 waits: a: its stable is unhealthy (error rate 4 % over its SLO)")
    assert next_step(spec, {"b": "promoted"}, {}, now=NOW) == Start(("a",))


def test_a_freeze_holds_starts_but_never_a_rollback() -> None:
    end = NOW + timedelta(days=2)
    freeze = {"start": NOW - timedelta(hours=1), "end": end, "reason": "holidays"}
    spec = release(TWO_WAVES, freezes=[freeze])
    assert next_step(spec, {}, {}, now=NOW) == Wait(
        "wave 1 waits: a: frozen until 2026-12-04 12:00 UTC (holidays)", end
    )
    assert next_step(spec, {}, {}, now=end) == Start(("a",))
    failing = next_step(spec, {"a": "promoted", "b": "rolled-back"}, {0: "within"}, now=NOW)
    assert isinstance(failing, Undo)  # a freeze never holds a rollback


# -- the rules, on random releases --------------------------------------------------------------

WAVES = st.lists(
    st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=3, unique=True), min_size=1, max_size=4
).map(lambda waves: [list(dict.fromkeys(w)) for w in waves])


@st.composite
def releases(draw: st.DrawFn) -> ReleaseSpec:
    groups = draw(WAVES)
    seen: set[str] = set()
    waves = []
    for group in groups:
        cells = [c for c in group if c not in seen]
        seen.update(cells)
        if not cells:
            continue
        waves.append(
            {
                "cells": cells,
                "concurrency": draw(st.integers(1, len(cells))),
                "maxFailures": draw(st.integers(0, len(cells) - 1)),
                **({"bake": {}} if draw(st.booleans()) else {}),
            }
        )
    waves[-1].pop("bake", None)  # the last wave has no cells left to bake against
    policy = draw(st.sampled_from(["rollback-all", "rollback-wave", "hold"]))
    return release(waves, on_failure=policy)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(spec=releases(), seed=st.integers(0, 2**32), bad=st.floats(0.0, 0.6))
def test_releases_follow_the_rules_to_their_end(spec: ReleaseSpec, seed: int, bad: float) -> None:
    rng = random.Random(seed)
    waves = spec.spec.waves
    wave_of = {name: w for w, wave in enumerate(waves) for name in wave.cells}
    cells: dict[str, CellPhase] = {}
    bakes: dict[int, BakeVerdict] = {}
    failed_at: int | None = None
    undone_waves: list[int] = []
    for _ in range(200):
        phase = {name: cells.get(name, "pending") for name in wave_of}
        if failed_at is None:
            for w, wave in enumerate(waves):
                broken = sum(phase[n] in ("rolled-back", "failed") for n in wave.cells) > wave.max_failures
                if broken or bakes.get(w) == "worse":
                    failed_at = w
                    break
        step = next_step(spec, cells, bakes, now=NOW)
        if isinstance(step, Start):
            assert failed_at is None, "a cell started after the release failed"
            (wave,) = {wave_of[name] for name in step.cells}
            assert all(phase[n] in ("promoted", "rolled-back") for w in range(wave) for n in waves[w].cells)
            assert all(waves[w].bake is None or bakes.get(w) == "within" for w in range(wave))
            assert all(phase[name] == "pending" for name in step.cells)
            running = sum(phase[n] == "running" for n in waves[wave].cells) + len(step.cells)
            assert running <= (waves[wave].concurrency or len(waves[wave].cells))
            cells.update(dict.fromkeys(step.cells, "running"))
        elif isinstance(step, BakeWave):
            bakes[step.wave] = "worse" if rng.random() < bad / 2 else "within"
        elif isinstance(step, Abort):
            assert failed_at is not None
            cells.update(dict.fromkeys(step.cells, "rolled-back"))
        elif isinstance(step, Undo):
            assert failed_at is not None
            assert spec.spec.on_failure != "hold"
            (wave,) = {wave_of[name] for name in step.cells}
            assert not undone_waves or wave < undone_waves[-1], "undo goes newest wave first"
            undone_waves.append(wave)
            cells.update(dict.fromkeys(step.cells, "undone"))
        elif isinstance(step, Wait):
            running = [name for name, state in phase.items() if state == "running"]
            assert running, f"waits with nothing running: {step}"
            name = rng.choice(running)
            cells[name] = "rolled-back" if rng.random() < bad else "promoted"
        else:
            assert isinstance(step, Finish)
            final = {name: cells.get(name, "pending") for name in wave_of}
            if step.outcome == "released":
                assert failed_at is None
                assert set(final.values()) <= {"promoted", "rolled-back"}  # failures within maxFailures
                assert all(bakes.get(w) == "within" for w, wave in enumerate(waves) if wave.bake is not None)
            elif step.outcome == "held":
                assert spec.spec.on_failure == "hold"
                assert failed_at is not None
                assert not undone_waves
            else:
                assert failed_at is not None
                keep = range(len(waves)) if spec.spec.on_failure == "rollback-all" else [failed_at]
                assert all(final[n] != "promoted" for w in keep for n in waves[w].cells)
            assert "running" not in final.values()
            return
    raise AssertionError("the release did not end within 200 steps")
