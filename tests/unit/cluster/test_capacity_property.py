"""Property: capacity holds under any interleaving of the rollout's steps, people's edits and faults.

On the simulated cluster, random programs mix the rollout's operations (splits at various weights,
then a promotion or a rollback) with people's edits between them (scaling the stable, deleting the
canary or the baseline) and faults that strike during them (API-server outages long and short,
timeouts, lost write races). The invariants:

- at every write the controller makes, the Ready pods the Service selects are at least as many as
  when that operation began, or the capacity, whichever is fewer: the controller never takes
  serving pods away below the capacity (it grows first, then shrinks);
- when an operation returns, they are at least the capacity: the stable's size at the start, or
  larger when a person scaled it up since;
- the rollout ends with the stable alone, on the image it should run, at that capacity, Ready.

With an HPA on the stable (bounds lent to the split, `canaryflow.cluster.actuation`), "scaling"
is the HPA's (load rose, it grows the stable within the lent bounds) and, besides the first two
invariants, the HPA ends with its own bounds, and the stable at least at its size at the start.

The simulated Deployment controller surges without unavailability, so the surge budget is 0 here;
the contract suite checks the same order of writes on the real API server
(``tests/contract/test_split_contract.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from canaryflow.cluster.drift import drift
from canaryflow.cluster.port import RolloutId, TargetRef, TargetStatus
from canaryflow.cluster.simulated import SimulatedCluster, SimulatedWorld
from canaryflow.errors import (
    BaselineLostError,
    CanaryLostError,
    ClusterOutageError,
    DriftError,
    TransientError,
    WeightError,
)
from canaryflow.replicas import plan_split

TARGET = TargetRef(namespace="shop", deployment="web", container="web", service="web")
RID = RolloutId("web-v2")
DEADLINE = timedelta(minutes=10)

Op = tuple[str, int, int]
OPS = st.one_of(
    st.tuples(st.just("split"), st.sampled_from([10, 20, 25, 30, 50]), st.just(0)),
    st.tuples(st.just("scale"), st.integers(1, 16), st.just(0)),
    st.tuples(st.just("delete"), st.sampled_from([0, 1]), st.just(0)),  # 0 canary, 1 baseline
    st.tuples(st.just("outage"), st.sampled_from([0, 1, 3]), st.sampled_from([1, 20, 200])),
    st.tuples(st.just("timeouts"), st.integers(1, 4), st.just(0)),
    st.tuples(st.just("conflicts"), st.integers(1, 4), st.just(0)),
)


@dataclass
class Watch:
    """The invariant, checked before every write of the controller."""

    world: SimulatedWorld
    capacity: int
    floor: int = 0
    violations: list[str] = field(default_factory=list)

    def serving(self) -> int:
        return sum(1 for pod in self.world.pods("shop", "web") if pod.ready)

    def begin(self) -> None:
        self.floor = min(self.serving(), self.capacity)

    def before_write(self, verb: str, namespace: str, name: str) -> None:
        ready = self.serving()
        if ready < self.floor:
            self.violations.append(f"{ready} Ready before {verb} {name}, below {self.floor}")


def read(cluster: SimulatedCluster, world: SimulatedWorld) -> TargetStatus:
    """Read as the flow does: an API server that does not answer is waited for."""
    for _ in range(10_000):
        try:
            return cluster.read(TARGET)
        except TransientError:
            world.clock.sleep(1.0)
    raise AssertionError("the API server never answered")


def run(
    replicas: int, ops: list[Op], promote: bool, *, hpa: bool = False
) -> tuple[Watch, SimulatedCluster, bool]:
    world = SimulatedWorld(pod_ready_delay=2.0)
    world.add_deployment("shop", "web", image="web:1", replicas=replicas, labels={"app": "web"})
    world.add_service("shop", "web", {"app": "web"})
    if hpa:
        world.set_hpa("shop", "web", replicas, min_replicas=replicas, max_replicas=2 * replicas)
    cluster = SimulatedCluster(world, poll_interval=0.5)
    watch = Watch(world, capacity=replicas)
    world.before_write = watch.before_write
    started = stopped = False
    weight = 0
    for kind, a, b in ops:
        if kind == "scale" and started and hpa:
            world.autoscale("shop", "web", a)  # within the bounds lent to it
            kind, a = "checkpoint", weight
        elif kind == "scale" and started:
            world.scale("shop", "web", a)
            watch.capacity = max(watch.capacity, a)
            kind, a = "checkpoint", weight
        elif kind == "delete" and started:
            world.remove("shop", ("web-canary", "web-baseline")[a])
            kind, a = "checkpoint", weight
        elif kind == "outage":
            world.outage(float(b), after=float(a))
        elif kind == "timeouts":
            world.timeouts = a
        elif kind == "conflicts":
            world.conflicts = a
        if kind in ("split", "checkpoint"):
            # As the flow's checkpoint after each edit (once an analysis interval): a lost track is
            # recreated and a grown capacity split again at the current weight; other drift stops.
            status = read(cluster, world)
            changed = drift(status, baseline=True) if started else None
            lost = isinstance(changed, (CanaryLostError, BaselineLostError))
            if changed is not None and not lost:
                event(f"drift: {type(changed).__name__}")
                stopped = True
                break
            if kind == "checkpoint" and not (lost or status.rescaled):
                continue
            try:
                split = plan_split(status.capacity, a, baseline=True)
            except WeightError:
                continue
            watch.begin()
            try:
                cluster.apply_split(
                    TARGET, split, rollout_id=RID, image="web:2", step=0, progress_deadline=DEADLINE
                )
            except (ClusterOutageError, DriftError) as exc:
                event(f"a split stopped by {type(exc).__name__}")
                stopped = True
                break
            started, weight = True, a
            if hpa:  # the HPA's growth, as the controller takes it in (never below the start)
                watch.capacity = max(watch.capacity, status.capacity)
            assert watch.serving() >= watch.capacity, "a split returned below the capacity"
    world.outage(0.0)
    world.timeouts = world.conflicts = 0
    watch.begin()
    promoting = promote and not stopped and read(cluster, world).state is not None  # a canary to promote
    finish = cluster.promote if promoting else cluster.rollback
    finish(TARGET, rollout_id=RID, progress_deadline=DEADLINE)
    return watch, cluster, promoting


@settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(replicas=st.integers(2, 12), ops=st.lists(OPS, max_size=14), promote=st.booleans())
def test_capacity_never_drops_below_what_the_stable_had_or_a_person_set(
    replicas: int, ops: list[Op], promote: bool
) -> None:
    watch, cluster, promoted = run(replicas, ops, promote)

    assert watch.violations == []
    status = cluster.read(TARGET)
    assert watch.world.deployment_names("shop") == ["web"]
    assert (status.canary, status.baseline, status.state) == (None, None, None)
    assert status.stable.image == ("web:2" if promoted else "web:1")
    assert status.stable.replicas == status.stable.ready == watch.capacity
    assert watch.serving() == watch.capacity


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(replicas=st.integers(2, 12), ops=st.lists(OPS, max_size=14), promote=st.booleans())
def test_with_an_hpa_capacity_never_drops_and_the_hpa_gets_its_own_bounds_back(
    replicas: int, ops: list[Op], promote: bool
) -> None:
    watch, cluster, promoted = run(replicas, ops, promote, hpa=True)

    assert watch.violations == []
    status = cluster.read(TARGET)
    assert watch.world.deployment_names("shop") == ["web"]
    assert (status.canary, status.baseline, status.state) == (None, None, None)
    assert status.stable.image == ("web:2" if promoted else "web:1")
    assert watch.world.hpa_bounds("shop", "web") == (replicas, 2 * replicas)
    assert status.hpa_bounds == (replicas, 2 * replicas)
    assert "canaryflow/hpa-bounds" not in str(status)
    assert replicas <= status.stable.replicas == status.stable.ready == watch.serving() <= 2 * replicas
