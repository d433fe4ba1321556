"""The release spec: one image across many cells (clusters), in waves (``kind: Release``).

A release names its cells (each a cluster: a kubeconfig context or the pod's own, a Prometheus or
the labels that tell the cell apart in a shared one, and the Prefect work pool whose workers run
its rollouts), the rollout spec every cell runs (with per-cell overrides of the target), and the
waves: ordered groups of cells, each with how many cells roll out at once, how many may fail
before the release stops, and a bake after it. What happens on a failure (`FailurePolicy`) and
when nothing may start (freezes) is part of it too. Validated like a rollout spec: every problem
with file, line and path (`canaryflow.spec.loading.load_release`).

Example::

    apiVersion: canaryflow/v1
    kind: Release
    metadata: {name: web}
    spec:
      rollout: config/rollouts/web.yaml
      prometheus: http://prometheus.monitoring:9090      # shared; cells tell apart by labels
      cells:
        - {name: eu-1, context: eu-1, workPool: rollouts-eu-1, labels: {cluster: eu-1}}
        - {name: eu-2, context: eu-2, workPool: rollouts-eu-2, labels: {cluster: eu-2}}
        - {name: us-1, context: us-1, workPool: rollouts-us-1, prometheus: http://prom-us-1:9090}
      waves:
        - {cells: [eu-1], bake: {minDuration: 10m, maxDuration: 1h, minRequests: 10000}}
        - {cells: [eu-2, us-1], concurrency: 2}
      onFailure: rollback-all
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field, ValidationInfo, model_validator

from canaryflow.querytemplates import HEADER_NAME, LABEL_NAME, variables
from canaryflow.requests import TargetOverride
from canaryflow.spec.durations import Duration, format_duration
from canaryflow.spec.models import DNS_LABEL, Metadata, SpecModel, report_cross_checks
from canaryflow.yamldoc import Loc

__all__ = [
    "FAILURE_POLICIES",
    "MAX_READ_LAG",
    "READ_LAG",
    "Bake",
    "Cell",
    "Freeze",
    "Health",
    "PrometheusAccess",
    "ReleaseBody",
    "ReleaseSpec",
    "TargetOverride",
    "Wave",
    "release_cross_check",
]

#: What a release does when a cell's rollout is rolled back or a bake finds the release worse:
#: roll back every cell it promoted (the default: nothing of a bad release is left anywhere), roll
#: back the current wave's cells only, or hold (stop, roll nothing more back, wait for a person).
FAILURE_POLICIES = ("rollback-all", "rollback-wave", "hold")
FailurePolicy = Literal["rollback-all", "rollback-wave", "hold"]


class PrometheusAccess(SpecModel):
    """How the release's own process reads one cell's Prometheus: its credentials (as files, never
    in the spec), headers (e.g. the cell's tenant in a shared Mimir) and TLS files. It replaces,
    for that cell, all of the process's ``CANARYFLOW_PROMETHEUS_*`` credentials, headers and CA;
    the files must be readable where the release flow runs. The cell's own rollouts do not get it:
    its workers read their Prometheus with their own environment's settings."""

    bearer_token_file: str | None = Field(default=None, min_length=1)
    username: str | None = Field(default=None, min_length=1)
    password_file: str | None = Field(default=None, min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    ca_file: str | None = Field(default=None, min_length=1)
    cert_file: str | None = Field(default=None, min_length=1)
    key_file: str | None = Field(default=None, min_length=1)


class Cell(SpecModel):
    """One cluster the release reaches."""

    name: str = Field(pattern=DNS_LABEL, max_length=63)
    context: str | None = Field(
        default=None, min_length=1, description="The kubeconfig context of the cell's cluster."
    )
    in_cluster: bool = Field(
        default=False, description="The cell is the cluster its workers run in (their ServiceAccount)."
    )
    work_pool: str = Field(min_length=1, description="The Prefect work pool whose workers run its rollouts.")
    work_queue: str | None = Field(default=None, min_length=1)
    prometheus: str | None = Field(
        default=None, pattern=r"^https?://", description="The cell's own Prometheus (else the shared one)."
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels that tell the cell's series apart in a shared Prometheus (e.g. cluster: eu-1).",
    )
    target: TargetOverride = TargetOverride()
    prometheus_access: PrometheusAccess | None = Field(
        default=None,
        description=(
            "Credentials, headers and TLS files with which the release's process reads this cell's "
            "Prometheus (instead of its own CANARYFLOW_PROMETHEUS_* settings)."
        ),
    )


#: What a bake compares the wave's promoted cells with: the cells of the later waves (not updated
#: yet, at the same time), or the same cells before the release reached them (their history).
BakeAgainst = Literal["later-waves", "history"]


#: How long after an interval's end a bake reads it, by default: Prometheus has scraped all of it
#: by then at the usual 15 s scrape interval, so a release resumed later reads the same numbers.
READ_LAG = timedelta(seconds=30)
#: The longest ``readLag``: a bake waits at most 10 minutes past ``maxDuration`` for a Prometheus
#: that does not answer, and a lag near that would leave its last intervals no time to be read.
MAX_READ_LAG = timedelta(minutes=5)


class Bake(SpecModel):
    """After a wave is promoted: compare its cells with the cells of the later waves (not updated
    yet), or with their own history before the release reached them (``against: history``; the
    default of the last wave, which has no later cells), with the judge, for at least
    ``minDuration`` and ``minRequests`` and at most ``maxDuration``; the next wave starts (the
    release ends, after the last wave) once the release is shown within tolerance
    (`canaryflow.baking`). Each interval is read ``readLag`` after its end (30 s: Prometheus has
    scraped all of it by then at the usual 15 s scrape interval; less where it scrapes more often)."""

    min_duration: Duration = timedelta(minutes=10)
    max_duration: Duration = timedelta(hours=1)
    min_requests: int = Field(default=0, ge=0, description="Requests the promoted cells must have served.")
    against: BakeAgainst | None = Field(
        default=None,
        description="later-waves or history (default: later-waves, history for the last wave).",
    )
    read_lag: Duration = Field(
        default=READ_LAG,
        description=(
            "How long after an interval's end the bake reads it: longer than the Prometheus's scrape "
            "interval, so that all of the interval is scraped."
        ),
    )


class Wave(SpecModel):
    """Cells rolled out together: `concurrency` at a time; the release stops once more than
    `maxFailures` of them are rolled back."""

    cells: tuple[str, ...] = Field(min_length=1)
    concurrency: int | None = Field(default=None, ge=1, description="Cells at once (default: all of them).")
    max_failures: int = Field(default=0, ge=0)
    bake: Bake | None = None


class Health(SpecModel):
    """What a cell's stable must show before a rollout starts in it (a blocker otherwise): each
    ratio metric of the rollout spec named in ``maxRates`` at most that rate over the last
    ``window``, and the ``alerts`` query (PromQL with ``{namespace} {app} {cell}``, e.g. firing
    alerts) without any series. A cell whose Prometheus does not answer is blocked too."""

    window: Duration = timedelta(minutes=5)
    max_rates: dict[str, float] = Field(
        default_factory=dict, description="Ratio metric name -> the highest rate the stable may show."
    )
    alerts: str | None = Field(
        default=None, min_length=1, description="A PromQL query whose any series blocks the cell."
    )


class Freeze(SpecModel):
    """A time no wave starts (rollbacks always may): for every cell, or for those named."""

    start: datetime
    end: datetime
    cells: tuple[str, ...] | None = None
    reason: str = Field(default="", max_length=200)


class ReleaseBody(SpecModel):
    """The ``spec`` section of a release."""

    rollout: str = Field(min_length=1, description="The rollout spec every cell runs (a path).")
    prometheus: str | None = Field(
        default=None, pattern=r"^https?://", description="A Prometheus shared by the cells without their own."
    )
    cells: tuple[Cell, ...] = Field(min_length=1)
    waves: tuple[Wave, ...] = Field(min_length=1)
    on_failure: FailurePolicy = "rollback-all"
    freezes: tuple[Freeze, ...] = ()
    health: Health | None = None

    def bake_against(self, wave: int) -> BakeAgainst:
        """What the bake of wave `wave` (0-based) compares its cells with (the default: the later
        waves' cells, or the cells' own history for the last wave)."""
        bake = self.waves[wave].bake
        if bake is not None and bake.against is not None:
            return bake.against
        return "history" if wave == len(self.waves) - 1 else "later-waves"


class ReleaseSpec(SpecModel):
    """A release spec document (``apiVersion: canaryflow/v1``, ``kind: Release``)."""

    api_version: Literal["canaryflow/v1"]
    kind: Literal["Release"]
    metadata: Metadata
    spec: ReleaseBody

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> ReleaseSpec:
        report_cross_checks(release_cross_check(self), info)
        return self

    @property
    def name(self) -> str:
        return self.metadata.name

    def cell(self, name: str) -> Cell:
        """The cell called `name` (KeyError if there is none)."""
        for cell in self.spec.cells:
            if cell.name == name:
                return cell
        raise KeyError(name)


def release_cross_check(release: ReleaseSpec) -> list[tuple[Loc, str]]:
    """Problems that span fields, each with its location (camelCase keys) from the document root."""
    body = release.spec
    problems: list[tuple[Loc, str]] = []
    names: dict[str, int] = {}
    for index, cell in enumerate(body.cells):
        here: Loc = ("spec", "cells", index)
        if cell.name in names:
            problems.append(
                ((*here, "name"), f"cell {cell.name!r} is listed twice (first as cells[{names[cell.name]}])")
            )
        names.setdefault(cell.name, index)
        if (cell.context is None) == (not cell.in_cluster):
            problems.append((here, "give the cell's kubeconfig context, or inCluster: true (one of the two)"))
        if cell.prometheus is None and body.prometheus is None:
            problems.append(
                (here, "no Prometheus: give the cell's own (prometheus: URL) or a shared spec.prometheus")
            )
        elif cell.prometheus is None and not cell.labels:
            problems.append(
                ((*here, "labels"), "a cell on the shared Prometheus needs labels that tell its series apart")
            )
        for label, value in cell.labels.items():
            if "," in value or not value or value != value.strip():
                problems.append(
                    (
                        (*here, "labels", label),
                        "a label value must be non-empty, hold no ',' and neither start nor end with a space "
                        "(a worker gets it in a list)",
                    )
                )
            if not LABEL_NAME.match(label):
                problems.append(
                    (
                        (*here, "labels", label),
                        "not a Prometheus label name (letters, digits, _; not a digit or __ first)",
                    )
                )
        if cell.prometheus_access is not None:
            problems += _access_problems(cell.prometheus_access, (*here, "prometheusAccess"))
    placed: dict[str, int] = {}
    for w, wave in enumerate(body.waves):
        here = ("spec", "waves", w)
        for c, name in enumerate(wave.cells):
            if name not in names:
                problems.append(((*here, "cells", c), f"no cell {name!r} (cells: {', '.join(names)})"))
            elif name in placed:
                problems.append(((*here, "cells", c), f"cell {name!r} is already in waves[{placed[name]}]"))
            placed.setdefault(name, w)
        if wave.concurrency is not None and wave.concurrency > len(wave.cells):
            problems.append(((*here, "concurrency"), f"must be at most the wave's {len(wave.cells)} cell(s)"))
        if wave.max_failures >= len(wave.cells):
            problems.append(
                (
                    (*here, "maxFailures"),
                    f"must be less than the wave's {len(wave.cells)} cell(s), or it never stops",
                )
            )
        if wave.bake is not None and w == len(body.waves) - 1 and wave.bake.against == "later-waves":
            problems.append(
                (
                    (*here, "bake", "against"),
                    "the last wave has no later waves to compare with: use history (its cells before "
                    "the release), or remove the bake",
                )
            )
        if wave.bake is not None and wave.bake.read_lag > MAX_READ_LAG:
            problems.append(
                (
                    (*here, "bake", "readLag"),
                    f"must be at most {format_duration(MAX_READ_LAG)}: a Prometheus that needs longer to "
                    "scrape an interval cannot be baked against",
                )
            )
        if wave.bake is not None and wave.bake.min_duration > wave.bake.max_duration:
            problems.append(
                (
                    (*here, "bake", "minDuration"),
                    f"must be at most maxDuration ({format_duration(wave.bake.max_duration)})",
                )
            )
    for index, cell in enumerate(body.cells):
        if cell.name not in placed and names.get(cell.name) == index:
            problems.append((("spec", "cells", index, "name"), f"cell {cell.name!r} is in no wave"))
    if body.health is not None:
        for name, rate in body.health.max_rates.items():
            if not 0 < rate <= 1:
                problems.append((("spec", "health", "maxRates", name), "must be a rate above 0, at most 1"))
        alerts = body.health.alerts
        if alerts is not None:
            unknown = sorted(variables(alerts) - {"namespace", "app", "cell"})
            if "cell" not in variables(alerts) and any(cell.labels for cell in body.cells):
                problems.append(
                    (
                        ("spec", "health", "alerts"),
                        "cells told apart by labels need {cell} in the query (at the end of a selector's "
                        "matchers), or it reads every cell's alerts",
                    )
                )
            if unknown:
                problems.append(
                    (
                        ("spec", "health", "alerts"),
                        f"unknown placeholder(s) {', '.join(unknown)} (it may use namespace, app, cell)",
                    )
                )
    for f, freeze in enumerate(body.freezes):
        here = ("spec", "freezes", f)
        if freeze.end <= freeze.start:
            problems.append(((*here, "end"), "must be after start"))
        for c, name in enumerate(freeze.cells or ()):
            if name not in names:
                problems.append(((*here, "cells", c), f"no cell {name!r}"))
    return problems


def _access_problems(access: PrometheusAccess, here: Loc) -> list[tuple[Loc, str]]:
    """What is wrong with a cell's `PrometheusAccess` (the pairs, one kind of credentials, headers a
    variable can carry); a header's value is never quoted (it may be a credential)."""
    problems: list[tuple[Loc, str]] = []
    if access.bearer_token_file is not None and access.username is not None:
        problems.append((here, "give bearerTokenFile or username and passwordFile, not both"))
    if (access.username is None) != (access.password_file is None):
        problems.append((here, "basic auth needs both username and passwordFile"))
    if (access.cert_file is None) != (access.key_file is None):
        problems.append((here, "mutual TLS needs both certFile and keyFile"))
    seen: set[str] = set()
    for name, value in access.headers.items():
        at: Loc = (*here, "headers", name)
        if not HEADER_NAME.fullmatch(name):
            problems.append((at, "not a header name (letters, digits and !#$%&'*+.^_`|~-)"))
        elif name.lower() == "authorization":
            problems.append((at, "give credentials with bearerTokenFile or username and passwordFile"))
        elif name.lower() in seen:
            problems.append((at, "given twice (header names are not case-sensitive)"))
        seen.add(name.lower())
        if (
            not value
            or "," in value
            or value.startswith("=")
            or value != value.strip()
            or not value.isprintable()
        ):
            problems.append(
                (
                    at,
                    "the value must be printable and non-empty, hold no ',', not start with '=' and "
                    "have no spaces around it",
                )
            )
    return problems
