"""The exceptions canaryflow raises, rooted in one base error.

Split first by what the caller does next (retry later, or give up), then by domain::

    CanaryflowError                      root: `except CanaryflowError` catches everything of ours
    ├── TransientError                   retry later (carries `retry_after` seconds when known)
    │   ├── ClusterUnavailableError      API server timeout / 5xx / connection refused
    │   │   ├── ClusterOutageError       ... for longer than the rollout's apiOutageTolerance
    │   │   └── UntrustedServerError     ... its certificate failed verification (exit 3: a setting)
    │   ├── MetricsUnavailableError      Prometheus timeout / 5xx / connection refused
    │   └── TriggerUnavailableError      the Prefect API cannot be reached to start or steer a rollout
    └── PermanentError                   retrying the same call will not help
        ├── UsageError                   the command line asks for something that does not exist
        │   └── NotImplementedYetError   the command's capability has not landed yet
        ├── InputError                   a file, an argument or a setting is not valid (names it)
        │   ├── SpecError                a rollout spec or routes file is invalid (every problem listed)
        │   ├── ObservationLogError      an observation log is malformed (names the place; exit 2)
        │   └── ReportError              a rollout's report file is unreadable or malformed
        ├── TriggerError                 a webhook delivery cannot start a rollout
        │   ├── PayloadError             the body is not a push payload we can read (names the field)
        │   └── ImageRenderError         the image template cannot be rendered for this push
        ├── ClusterError                 Kubernetes said no
        │   ├── NotFoundError            the target, its Service or a track does not exist
        │   ├── ConflictError            a write lost a race (409) and retries ran out
        │   ├── ForbiddenError           RBAC forbids the operation
        │   ├── RolloutInProgressError   the target is already in a rollout by another id
        │   ├── FencedError              another holder took the target's Lease: this one may not write
        │   ├── ProgressDeadlineError    pods did not become ready within the progress deadline
        │   ├── DriftError               somebody else changed the target mid-rollout (the rollout stops)
        │   │   ├── CanaryLostError      ... deleted its canary (recreated once, then the rollout stops)
        │   │   └── BaselineLostError    ... deleted its baseline (recreated once, then the rollout stops)
        │   ├── NothingToUndoError       ``canaryflow undo``: no promotion recorded, or undone already
        │   └── WeightError              a weight cannot be reached at this capacity
        ├── MetricsError                 the metrics source answered, but not with an observation
        │   ├── NoDataError              no samples (or NaN) for the window: a domain outcome, not a failure
        │   └── QueryError               the query is wrong (bad PromQL, bad template); carries the query
        ├── LocalStackError              a local stack of the demo or the tests failed to start
        │   ├── LocalClusterError        the local Kubernetes control plane
        │   ├── PrefectServerError       the local Prefect server
        │   ├── LocalPrometheusError     the local Prometheus
        │   └── LocalPostgresError       the local PostgreSQL (Prefect's database in the stack tests)
        ├── NotPromoted                  the rollout ended rolled back or aborted (carries its outcome)
        └── RolloutAborted               a person or a newer rollout stopped this one
            ├── Superseded               (flows.slots) a newer image asked for the target
            ├── AbortRequested           (flows.slots) somebody ran ``canaryflow abort``
            │   └── InterruptedHere      (flows.stops) Ctrl-C in the terminal that runs it
            ├── CancelledInPrefect       (flows.stops) the flow run was cancelled in Prefect
            └── SlotLost                 (flows.slots) the target's slot lease was lost

`NoDataError` is deliberately not a `TransientError`: the judge treats "no data" as an observation
(no verdict), not as a reason to retry the query. Adapters translate library errors at the edge into
the most specific of these, chained with ``raise ... from exc``, and carry context (target, query).

Exit codes (the command line maps each class to one; see `exit_code_for`), as the README's table
says: 1 invalid input (and anything else that is permanent), 2 usage or not implemented yet (and
an observation log ``canaryflow replay`` cannot judge, as the backtest contract asks), 3 cluster,
4 metrics, 5 transient (retry later), 6 not promoted (``canaryflow rollout`` exits 6 for a
rollback too).
"""

from __future__ import annotations

__all__ = [
    "BaselineLostError",
    "CanaryLostError",
    "CanaryflowError",
    "ClusterError",
    "ClusterOutageError",
    "ClusterUnavailableError",
    "ConflictError",
    "DriftError",
    "FencedError",
    "ForbiddenError",
    "ImageRenderError",
    "InputError",
    "LocalClusterError",
    "LocalPostgresError",
    "LocalPrometheusError",
    "LocalStackError",
    "MetricsError",
    "MetricsUnavailableError",
    "NoDataError",
    "NotFoundError",
    "NotImplementedYetError",
    "NotPromoted",
    "NothingToUndoError",
    "ObservationLogError",
    "PayloadError",
    "PermanentError",
    "PrefectServerError",
    "ProgressDeadlineError",
    "QueryError",
    "ReportError",
    "RolloutAborted",
    "RolloutInProgressError",
    "SpecError",
    "TransientError",
    "TriggerError",
    "TriggerUnavailableError",
    "UntrustedServerError",
    "UsageError",
    "WeightError",
    "exit_code_for",
]


class CanaryflowError(Exception):
    """Root of every error canaryflow raises on purpose."""

    exit_code: int = 1

    def summary(self) -> str:
        """The error in one line, for a terminal (the first line of the message)."""
        text = str(self).strip()
        return text.splitlines()[0] if text else type(self).__name__


class TransientError(CanaryflowError):
    """Retrying later may succeed. `retry_after` is a hint in seconds, when the source gave one."""

    exit_code = 5

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(CanaryflowError):
    """Retrying the same call will not help; fix the input or the environment."""


class ClusterUnavailableError(TransientError):
    """The Kubernetes API did not answer in time, or answered with a server error."""


class UntrustedServerError(ClusterUnavailableError):
    """The API server's certificate failed verification against the kubeconfig. Mid-rollout it is
    ridden out as an outage (a certificate rotated, a load balancer's default certificate during
    an upgrade); before anything is written it is a setting to fix: exit 3, not "retry later"."""

    exit_code = 3


class ClusterOutageError(ClusterUnavailableError):
    """The Kubernetes API did not answer for longer than an operation's outage tolerance
    (`canaryflow.cluster.outages.Patience`); the operation's retries are spent."""

    def __init__(self, message: str, *, outage_seconds: float) -> None:
        super().__init__(message)
        self.outage_seconds = outage_seconds


class MetricsUnavailableError(TransientError):
    """The metrics backend did not answer in time, or answered with a server error."""

    def __init__(self, message: str, *, query: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.query = query


class TriggerUnavailableError(TransientError):
    """The orchestrator (Prefect API) cannot be reached to start or steer a rollout."""


class UsageError(PermanentError):
    """The command line asks for something that does not exist (an unknown judge, no input)."""

    exit_code = 2


class InputError(PermanentError):
    """A file, an argument or a setting given to canaryflow is not valid; the message names it."""


class SpecError(InputError):
    """A spec file is invalid. `problems` lists every one as "file:line path: message"."""

    def __init__(self, message: str, *, problems: list[str] | None = None, source: str | None = None) -> None:
        self.problems = list(problems or [])
        self.source = source
        full = message if not self.problems else message + "\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(full)

    def summary(self) -> str:
        """The first problem in one line, and how to see the others."""
        if not self.problems:
            return super().summary()
        first = self.problems[0]
        more = len(self.problems) - 1
        if more and self.source:
            return f"{first} (and {more} more: canaryflow spec validate {self.source})"
        return f"{first} (and {more} more)" if more else first


class TriggerError(PermanentError):
    """A webhook delivery cannot start a rollout (answered with a 4xx, nothing started)."""


class PayloadError(TriggerError):
    """A delivery's body is not a push payload we can read; the message names the field."""


class ImageRenderError(TriggerError):
    """An image template cannot be rendered for this push (a value or the result is not valid)."""


class ObservationLogError(InputError):
    """An observation log is malformed; the message names the place (e.g. ``intervals[3]...``).

    Exit code 2, not 1: the backtest's contract has every malformed or unusable log exit 2, so
    scripts that replay many logs tell "this log cannot be judged" from a bad spec (exit 1).
    """

    exit_code = 2


class ReportError(InputError):
    """A file of a rollout's report (``status.json``) cannot be read or is not what it should be."""


class ClusterError(PermanentError):
    """Kubernetes refused or failed an operation. `target` names the workload when known."""

    exit_code = 3

    def __init__(self, message: str, *, target: str | None = None) -> None:
        super().__init__(message)
        self.target = target


class NotFoundError(ClusterError):
    """The target Deployment, its Service, or a canary/baseline Deployment does not exist."""


class ConflictError(ClusterError):
    """A write kept losing optimistic-concurrency races (HTTP 409) after its retries."""


class ForbiddenError(ClusterError):
    """RBAC forbids the operation for the identity canaryflow runs as."""


class RolloutInProgressError(ClusterError):
    """The target is already being rolled out by another rollout id."""

    def __init__(self, message: str, *, target: str | None = None, rollout_id: str | None = None) -> None:
        super().__init__(message, target=target)
        self.rollout_id = rollout_id


class FencedError(ClusterError):
    """Another holder took the target's Lease (this one's expired or was taken from a dead holder):
    a write of the old holder is refused, so two controllers never change one target."""


class ProgressDeadlineError(ClusterError):
    """Pods did not become ready within the progress deadline."""


class DriftError(ClusterError):
    """Somebody else changed the target during the rollout in a way the rollout must not override
    (the stable's image or pod template, a track's image, the Service): the rollout stops and keeps
    that change."""


class CanaryLostError(DriftError):
    """Somebody deleted the canary (and the rollout state it carried) during the rollout."""


class BaselineLostError(DriftError):
    """Somebody deleted the baseline during the rollout (the canary is still there)."""


class NothingToUndoError(ClusterError):
    """`canaryflow undo`: the target has no promotion recorded, or it was undone already."""


class WeightError(ClusterError):
    """A requested weight cannot be approximated at this capacity; lists what is reachable."""


class MetricsError(PermanentError):
    """The metrics backend answered, but not with a usable observation."""

    exit_code = 4

    def __init__(self, message: str, *, query: str | None = None) -> None:
        super().__init__(message)
        self.query = query


class NoDataError(MetricsError):
    """The query returned no samples (or only NaN) for the window. Never a pass."""


class QueryError(MetricsError):
    """The query itself is wrong (bad PromQL, bad template variable)."""


class LocalStackError(PermanentError):
    """A local stack of the demo or the tests (`canaryflow.dev`) failed to start or answer."""


class LocalClusterError(LocalStackError):
    """The local development control plane (`canaryflow dev kube`) failed to start or answer."""

    exit_code = 3


class PrefectServerError(LocalStackError):
    """The local Prefect server did not start, or exited before it answered."""


class LocalPrometheusError(LocalStackError):
    """The local Prometheus did not start, exited, or did not do what was asked in time."""


class LocalPostgresError(LocalStackError):
    """The local PostgreSQL (Prefect's production database in the tests) did not start or answer."""


class NotPromoted(PermanentError):  # noqa: N818 - an outcome, named like one
    """The rollout ended without promoting (rolled back or aborted). A rollout run that ends so
    carries this in its Prefect state (named ``RolledBack`` or ``Aborted``, of type Failed, so that
    the UI shows it as not successful); ``outcome`` is the rollout's outcome record."""

    exit_code = 6

    def __init__(self, message: str, *, outcome: object = None) -> None:
        super().__init__(message)
        self.outcome = outcome


class RolloutAborted(PermanentError):  # noqa: N818 - an outcome, named like one
    """A person (reject, abort) or a newer rollout (supersede) stopped this rollout."""

    exit_code = 6


class NotImplementedYetError(UsageError):
    """The capability behind a command has not landed yet. Never answered with a fake result."""

    exit_code = 2


def exit_code_for(exc: BaseException) -> int:
    """The process exit code the CLI uses for `exc` (1 for anything that is not ours)."""
    if isinstance(exc, CanaryflowError):
        return exc.exit_code
    return 1
