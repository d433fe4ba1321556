"""What a release does next: the wave logic of a release, as a pure function of what it knows.

A release (`canaryflow.spec.release.ReleaseSpec`) reaches its cells wave by wave. `next_step`
takes the spec, each cell's phase (from its rollout run and its cluster), each wave's bake
verdict, the cells whose stable is unhealthy now (blockers) and the time, and answers one
`Step`: start some cells, bake a wave, abort running rollouts, undo promoted cells, wait (and
why), or finish. The release flow carries the steps out and asks again; since the answer depends
only on what the cells' clusters and runs say, a release killed at any point resumes by asking
again. No I/O here.

The rules:

- waves go in order; a wave starts only when every earlier wave is done: each of its cells
  promoted, or rolled back within its ``maxFailures``, and its bake ``within`` (a wave without a
  bake needs none);
- within a wave at most ``concurrency`` cells run at once; a cell does not start during a freeze
  that covers it or while its stable is unhealthy (the wave waits and says why); rollbacks are
  never frozen;
- a wave fails when more than ``maxFailures`` of its cells end rolled back (or failed), or its
  bake finds the release worse or cannot show it within tolerance (`canaryflow.baking`); then
  nothing starts any more, running rollouts in the wave are aborted, and per ``onFailure``:
  ``rollback-all`` undoes every promoted cell, newest wave first, all cells of a wave at once;
  ``rollback-wave`` undoes the failing wave's promoted cells only; ``hold`` undoes nothing and
  waits for a person.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeAlias

from canaryflow.spec.release import ReleaseSpec, Wave

__all__ = [
    "Abort",
    "BakeVerdict",
    "BakeWave",
    "CellPhase",
    "Finish",
    "Start",
    "Step",
    "Undo",
    "Wait",
    "next_step",
]

#: A cell's phase in a release: not started, rollout running, promoted, rolled back (its rollout
#: judged the canary bad, or was aborted), failed (ended without converging), undone (the release
#: took its promotion back).
CellPhase: TypeAlias = Literal["pending", "running", "promoted", "rolled-back", "failed", "undone"]
#: A wave's bake (`canaryflow.baking`): still comparing, the release shown within tolerance, shown
#: worse, or neither by the bake's ``maxDuration`` (a failure too: a release never goes on without
#: evidence).
BakeVerdict: TypeAlias = Literal["pending", "within", "worse", "inconclusive"]


@dataclass(frozen=True, slots=True)
class Start:
    """Start these cells' rollouts (at once)."""

    cells: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BakeWave:
    """Compare wave `wave`'s cells with the cells not updated yet (the bake's verdict is pending)."""

    wave: int


@dataclass(frozen=True, slots=True)
class Abort:
    """Abort these cells' running rollouts (the release failed)."""

    cells: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Undo:
    """Undo these cells' promotions (at once)."""

    cells: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to do but wait: rollouts are running, or a freeze or a blocker holds the wave."""

    reason: str
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """The release is over: ``released`` (every cell promoted and baked), ``rolled-back`` (what
    the failure policy undoes is undone) or ``held`` (failed under ``onFailure: hold``)."""

    outcome: Literal["released", "rolled-back", "held"]
    reason: str


Step: TypeAlias = Start | BakeWave | Abort | Undo | Wait | Finish

_FAILED: frozenset[CellPhase] = frozenset({"rolled-back", "failed"})


def next_step(
    release: ReleaseSpec,
    cells: Mapping[str, CellPhase],
    bakes: Mapping[int, BakeVerdict],
    *,
    now: datetime,
    unhealthy: Mapping[str, str] | None = None,
) -> Step:
    """What the release does next (see the module's rules). `cells` maps every cell to its phase
    (a missing cell is pending), `bakes` each wave's bake verdict by index (missing: pending),
    `unhealthy` the cells whose stable is unhealthy now, with why; `now` is timezone-aware."""
    waves = release.spec.waves
    phase = {cell.name: cells.get(cell.name, "pending") for cell in release.spec.cells}
    failure = _failure(release, phase, bakes)
    if failure is not None:
        return _on_failure(release, phase, *failure)
    for index, wave in enumerate(waves):
        states = [phase[name] for name in wave.cells]
        if all(state == "promoted" or state in _FAILED for state in states):  # the failures tolerated
            if wave.bake is not None and bakes.get(index, "pending") != "within":
                return BakeWave(index)
            continue
        return _advance(release, index, wave, phase, now, unhealthy or {})
    tolerated = [name for name, state in phase.items() if state in _FAILED]
    but = f" ({', '.join(tolerated)} rolled back, within the waves' maxFailures)" if tolerated else ""
    return Finish("released", f"every wave of {len(waves)} promoted and baked{but}")


def _failure(
    release: ReleaseSpec, phase: Mapping[str, CellPhase], bakes: Mapping[int, BakeVerdict]
) -> tuple[int, str] | None:
    for index, wave in enumerate(release.spec.waves):
        failed = [name for name in wave.cells if phase[name] in _FAILED]
        if len(failed) > wave.max_failures:
            return (
                index,
                f"wave {index + 1}: {', '.join(failed)} rolled back (at most {wave.max_failures} may)",
            )
        if bakes.get(index) == "worse":
            than = (
                "than before"
                if release.spec.bake_against(index) == "history"
                else "than the cells not updated"
            )
            return index, f"wave {index + 1}: the bake found the release worse {than}"
        if bakes.get(index) == "inconclusive":
            return (
                index,
                f"wave {index + 1}: the bake could not show the release within tolerance",
            )
    return None


def _on_failure(release: ReleaseSpec, phase: Mapping[str, CellPhase], wave: int, why: str) -> Step:
    waves = release.spec.waves
    running = tuple(name for name in waves[wave].cells if phase[name] == "running")
    if running:
        return Abort(running, why)
    policy = release.spec.on_failure
    if policy == "hold":
        return Finish("held", f"{why}; onFailure: hold, nothing rolled back")
    scope = [wave] if policy == "rollback-wave" else list(range(len(waves)))
    for index in reversed(scope):  # newest wave first
        promoted = tuple(name for name in waves[index].cells if phase[name] == "promoted")
        if promoted:
            return Undo(promoted, f"{why}; onFailure: {policy}")
    return Finish("rolled-back", f"{why}; onFailure: {policy}")


def _advance(
    release: ReleaseSpec,
    index: int,
    wave: Wave,
    phase: Mapping[str, CellPhase],
    now: datetime,
    unhealthy: Mapping[str, str],
) -> Step:
    running = [name for name in wave.cells if phase[name] == "running"]
    pending = [name for name in wave.cells if phase[name] == "pending"]
    room = (wave.concurrency or len(wave.cells)) - len(running)
    held: list[str] = []
    until: datetime | None = None
    startable: list[str] = []
    for name in pending:
        frozen = _freeze(release, name, now)
        if frozen is not None:
            held.append(f"{name}: frozen until {frozen[0]:%Y-%m-%d %H:%M} UTC ({frozen[1]})")
            until = frozen[0] if until is None else min(until, frozen[0])
        elif name in unhealthy:
            held.append(f"{name}: its stable is unhealthy ({unhealthy[name]})")
        else:
            startable.append(name)
    if room > 0 and startable:
        return Start(tuple(startable[:room]))
    if running:
        return Wait(f"wave {index + 1}: {', '.join(running)} rolling out")
    if held:
        return Wait(f"wave {index + 1} waits: " + "; ".join(held), until)
    # Only promoted and undone cells left, not all promoted: an undone cell is not re-released.
    return Finish("rolled-back", f"wave {index + 1} has cells that were undone")


def _freeze(release: ReleaseSpec, cell: str, now: datetime) -> tuple[datetime, str] | None:
    """The end and the reason of a freeze covering `cell` at `now`, or None."""
    for freeze in release.spec.freezes:
        covers: Set[str] | None = None if freeze.cells is None else set(freeze.cells)
        if (covers is None or cell in covers) and freeze.start <= now < freeze.end:
            return freeze.end, freeze.reason or "a freeze"
    return None
