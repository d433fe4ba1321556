"""The traffic simulator: requests for every ready pod of every track, counted like a real service.

Each step of at most `max_step` seconds draws, per ready pod, a Poisson number of requests (rate per
pod times the step), the failures among them (binomial, or beta-binomial with overdispersion) and
their latency buckets (one multinomial draw over the bucket probabilities of the pod's profile). Draws
are vectorised per profile, so thousands of requests per second cost a few numpy calls per step.

Counters behave like a real service's Prometheus counters: monotonic per pod; a pod that disappears
takes its series with it, and a pod that (re)appears starts from zero (a counter reset when the name
is reused). The ground truth per track (`track_counts`) keeps everything, including the requests of
pods that are gone, at every step for `history_seconds`.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from canaryflow.clock import Clock
from canaryflow.errors import ClusterUnavailableError
from canaryflow.simulation.profiles import (
    DEFAULT_BUCKETS,
    BehaviourProfile,
    bucket_means,
    bucket_probabilities,
)

__all__ = ["AppRef", "Pod", "PodCounts", "PodLister", "PodSeries", "TrackCounts", "TrafficSimulator"]

# Layout of a totals vector: requests, errors, latency sum, then one count per bucket (+Inf last).
_REQ, _ERR, _SUM, _BUCKETS = 0, 1, 2, 3


class Pod(Protocol):
    """What the simulator needs to know of a pod (`canaryflow.cluster.PodInfo` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def track(self) -> str: ...

    @property
    def image(self) -> str: ...

    @property
    def ready(self) -> bool: ...


class PodLister(Protocol):
    """Anything with ``pods(namespace, app)``: both cluster adapters are one (the demo's traffic
    follows the pods of the cluster it rolls out on)."""

    def pods(self, namespace: str, app: str) -> Sequence[Pod]: ...


@dataclass(frozen=True, slots=True)
class AppRef:
    """One simulated application: its namespace and ``app`` label."""

    namespace: str
    app: str


@dataclass(frozen=True, slots=True)
class TrackCounts:
    """Exact counts of one track within a window: the simulator's ground truth."""

    requests: int
    errors: int
    le: tuple[float, ...]
    buckets: tuple[int, ...]  # cumulative over `le`, last (+Inf) == requests
    latency_sum: float


@dataclass(frozen=True, slots=True)
class PodCounts:
    """Requests and failures of one pod within a window."""

    pod: str
    requests: int
    errors: int


@dataclass(frozen=True, slots=True)
class PodSeries:
    """The current counters of one pod, as ``/metrics`` exposes them."""

    namespace: str
    app: str
    track: str
    pod: str
    ok: int
    errors: int
    buckets: tuple[int, ...]  # cumulative, +Inf last
    latency_sum: float


@dataclass(slots=True)
class _Pod:
    incarnation: int
    app: AppRef
    info: Pod
    totals: npt.NDArray[np.float64]


@dataclass(slots=True)
class _Snapshot:
    time: float
    tracks: dict[tuple[AppRef, str], npt.NDArray[np.float64]]
    pods: Mapping[int, tuple[AppRef, str, str, float, float]] = field(default_factory=dict)


class TrafficSimulator:
    """Simulated requests for the pods of `apps`, followed through `cluster`.

    Parameters
    ----------
    cluster
        Any `PodLister`: ``pods(namespace, app)`` (both cluster adapters are one).
    apps
        The applications to simulate.
    clock
        Where "now" comes from: `ManualClock` in tests, `SystemClock` in the demo.
    seed
        Seed of the numpy Generator; with the same clock moves, two runs give the same counts.
    rate_per_pod
        Mean requests per second that each ready pod receives.
    profiles, default_profile
        Behaviour per image; images not in `profiles` get `default_profile`.
    buckets
        Finite histogram upper bounds in seconds (``+Inf`` is added).
    max_step, history_seconds
        Longest simulation step (overdispersion is drawn per step) and how long the per-step ground
        truth is kept.
    """

    def __init__(
        self,
        cluster: PodLister,
        apps: Sequence[AppRef],
        *,
        clock: Clock,
        seed: int,
        rate_per_pod: float = 10.0,
        profiles: Mapping[str, BehaviourProfile] | None = None,
        default_profile: BehaviourProfile | None = None,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        max_step: float = 1.0,
        history_seconds: float = 900.0,
    ) -> None:
        if rate_per_pod < 0 or max_step <= 0 or history_seconds <= 0:
            raise ValueError("rate_per_pod must be >= 0; max_step and history_seconds > 0")
        if list(buckets) != sorted(set(buckets)) or not buckets or buckets[0] <= 0:
            raise ValueError("buckets must be positive, strictly increasing and not empty")
        self._cluster = cluster
        self._apps = tuple(apps)
        self._clock = clock
        self._rng = np.random.default_rng(seed)
        self._rate = float(rate_per_pod)
        self._profiles = dict(profiles or {})
        self._default = default_profile or BehaviourProfile()
        self._bounds = tuple(float(b) for b in buckets)
        self.le: tuple[float, ...] = (*self._bounds, float("inf"))
        self._max_step = float(max_step)
        self._history_seconds = float(history_seconds)
        self._lock = threading.RLock()
        self._listing = threading.Lock()  # one pod listing at a time, outside `_lock`
        self._drivers = 0  # running `RealTimeDriver`s: while any, only they list the pods
        self._pods: dict[tuple[AppRef, str], _Pod] = {}
        self._incarnations = 0
        self._now = clock.now().timestamp()
        self._start = self._now
        self._tracks: dict[tuple[AppRef, str], npt.NDArray[np.float64]] = {}
        self._history: list[_Snapshot] = [self._snapshot()]
        self.simulated_requests = 0

    @property
    def now(self) -> float:
        """The simulated time (seconds since the epoch) up to which traffic has been drawn."""
        with self._lock:
            return self._now

    @property
    def apps(self) -> tuple[AppRef, ...]:
        return self._apps

    def profile_for(self, image: str) -> BehaviourProfile:
        return self._profiles.get(image, self._default)

    def set_profile(self, image: str, profile: BehaviourProfile) -> None:
        """From the traffic drawn next on, pods of `image` behave as `profile` (e.g. a stable whose
        dependency fails, then recovers)."""
        with self._lock:
            self._profiles[image] = profile

    @property
    def driven(self) -> bool:
        """Whether a `RealTimeDriver` follows the pods: then `sync` draws without listing them."""
        with self._lock:
            return self._drivers > 0

    def add_driver(self, delta: int) -> None:
        """Count a `RealTimeDriver` starting (+1) or stopping (-1)."""
        with self._lock:
            if self._drivers + delta < 0:
                raise ValueError("more drivers stopped than started")
            self._drivers += delta

    def sync(self, *, follow_pods: bool | None = None) -> float:
        """Draw traffic up to the clock's now; return it.

        The pods are listed first when `follow_pods` says so, by default unless a `RealTimeDriver`
        follows them: a scrape or a read while one runs never waits for the API server (whose pods
        the driver's next tick brings in)."""
        follow = not self.driven if follow_pods is None else follow_pods
        return self.advance_to(self._clock.now().timestamp(), follow_pods=follow)

    def advance_to(self, t: float, *, follow_pods: bool = True) -> float:
        """Follow the pods (while the cluster does not answer, those last seen; not at all without
        `follow_pods`), then draw traffic up to time `t` (nothing for a past `t`); return `now`.

        One caller at a time lists the pods, outside the lock that guards the counts: a caller that
        finds a listing under way draws with the pods known so far instead of waiting for the API
        server, so a scrape is not held up by a slow one (nor made to miss its timeout)."""
        if not follow_pods or not self._listing.acquire(blocking=False):
            with self._lock:
                return self._draw_to(t)
        try:
            listed = self._list_pods()
            with self._lock:
                if listed is not None:
                    self._follow_pods(listed)
                    if t < self._now:  # a late listing: the pods change now
                        self._history[-1] = self._snapshot()
                return self._draw_to(t)
        finally:
            self._listing.release()

    def _draw_to(self, t: float) -> float:
        if t < self._now:
            return self._now
        if t == self._now:  # pods may have changed, no time has passed
            self._history[-1] = self._snapshot()
        while self._now < t:
            step = min(self._max_step, t - self._now)
            self._step(step)
            self._now = t if step >= t - self._now else self._now + step
            self._history.append(self._snapshot())
        self._trim_history()
        return self._now

    def _list_pods(self) -> dict[AppRef, Sequence[Pod]] | None:
        """Every app's pods, or None while their API server does not answer (pods serve on: the
        simulator keeps those last seen)."""
        try:
            return {app: self._cluster.pods(app.namespace, app.app) for app in self._apps}
        except ClusterUnavailableError:
            return None

    def _follow_pods(self, listed: Mapping[AppRef, Sequence[Pod]]) -> None:
        seen: set[tuple[AppRef, str]] = set()
        for app in self._apps:
            for info in sorted(listed[app], key=lambda p: p.name):
                key = (app, info.name)
                seen.add(key)
                pod = self._pods.get(key)
                if pod is None or (pod.info.track, pod.info.image) != (info.track, info.image):
                    self._incarnations += 1
                    self._pods[key] = _Pod(self._incarnations, app, info, np.zeros(_BUCKETS + len(self.le)))
                else:
                    pod.info = info
        for key in [k for k in self._pods if k not in seen]:
            del self._pods[key]

    def _step(self, dt: float) -> None:
        groups: dict[BehaviourProfile, list[_Pod]] = {}
        for pod in self._pods.values():
            if pod.info.ready:
                groups.setdefault(self.profile_for(pod.info.image), []).append(pod)
        for profile, pods in groups.items():
            draws = self._draw(profile, len(pods), dt)
            for pod, row in zip(pods, draws, strict=True):
                pod.totals += row
                key = (pod.app, pod.info.track)
                if key not in self._tracks:
                    self._tracks[key] = np.zeros_like(row)
                self._tracks[key] += row

    def _draw(self, profile: BehaviourProfile, size: int, dt: float) -> npt.NDArray[np.float64]:
        """One row per pod in the totals layout."""
        n = self._rng.poisson(self._rate * dt, size=size)
        errors = self._rng.binomial(n, profile.error_probabilities(self._rng, size))
        counts = self._rng.multinomial(n, bucket_probabilities(profile, self._bounds))
        rows = np.empty((size, _BUCKETS + len(self.le)))
        rows[:, _REQ] = n
        rows[:, _ERR] = errors
        rows[:, _SUM] = counts @ bucket_means(profile, self._bounds)
        rows[:, _BUCKETS:] = counts
        self.simulated_requests += int(n.sum())
        return rows

    def _snapshot(self) -> _Snapshot:
        pods = {
            p.incarnation: (p.app, p.info.track, p.info.name, float(p.totals[_REQ]), float(p.totals[_ERR]))
            for p in self._pods.values()
        }
        return _Snapshot(self._now, {k: v.copy() for k, v in self._tracks.items()}, pods)

    def _trim_history(self) -> None:
        horizon = self._now - self._history_seconds
        keep_from = max(0, bisect.bisect_right(self._history, horizon, key=lambda s: s.time) - 1)
        if keep_from:
            del self._history[:keep_from]

    def _at(self, t: float) -> _Snapshot | None:
        """The state at time `t` (the last step ending at or before it); None before the start."""
        if t > self._now:
            raise LookupError(f"time {t:.3f} is after the simulated time {self._now:.3f}")
        if t < self._start:
            return None
        i = bisect.bisect_right(self._history, t, key=lambda s: s.time) - 1
        if i < 0:
            raise LookupError(f"time {t:.3f} is older than the simulator's history")
        return self._history[i]

    def _track_vector(self, snap: _Snapshot | None, app: AppRef, track: str) -> npt.NDArray[np.float64]:
        if snap is None or (app, track) not in snap.tracks:
            return np.zeros(_BUCKETS + len(self.le))
        return snap.tracks[(app, track)]

    def track_counts(self, namespace: str, app: str, track: str, *, start: float, end: float) -> TrackCounts:
        """Exact counts of `track` within ``(start, end]`` (LookupError outside the kept history)."""
        ref = AppRef(namespace, app)
        with self._lock:
            diff = self._track_vector(self._at(end), ref, track) - self._track_vector(
                self._at(start), ref, track
            )
        cumulative = np.cumsum(diff[_BUCKETS:])
        return TrackCounts(
            requests=round(diff[_REQ]),
            errors=round(diff[_ERR]),
            le=self.le,
            buckets=tuple(round(c) for c in cumulative),
            latency_sum=float(diff[_SUM]),
        )

    def pod_counts(
        self, namespace: str, app: str, track: str, *, start: float, end: float
    ) -> list[PodCounts]:
        """Per pod of `track` alive at `end`: its requests and failures within ``(start, end]``."""
        ref = AppRef(namespace, app)
        with self._lock:
            at_end, at_start = self._at(end), self._at(start)
        if at_end is None:
            return []
        before = at_start.pods if at_start is not None else {}
        result = []
        for inc, (pod_app, pod_track, name, req, err) in sorted(at_end.pods.items(), key=lambda kv: kv[1][2]):
            if pod_app == ref and pod_track == track:
                _, _, _, req0, err0 = before.get(inc, (ref, track, name, 0.0, 0.0))
                result.append(PodCounts(name, round(req - req0), round(err - err0)))
        return result

    def series(self) -> list[PodSeries]:
        """Every current pod's counters, sorted by app and pod name (what ``/metrics`` shows)."""
        with self._lock:
            pods = sorted(self._pods.values(), key=lambda p: (p.app.namespace, p.app.app, p.info.name))
            return [_series(p) for p in pods]


def _series(pod: _Pod) -> PodSeries:
    t = pod.totals
    return PodSeries(
        namespace=pod.app.namespace,
        app=pod.app.app,
        track=pod.info.track,
        pod=pod.info.name,
        ok=round(t[_REQ] - t[_ERR]),
        errors=round(t[_ERR]),
        buckets=tuple(round(c) for c in np.cumsum(t[_BUCKETS:])),
        latency_sum=float(t[_SUM]),
    )
