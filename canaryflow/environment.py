"""The settings canaryflow reads from the environment, in one table, and the adapters built from them.

`SETTINGS` is the table the README and the commands' help are written from. `cluster_from_env`
and `metrics_from_env` build the real adapters (the command line does, and a worker's deployment
run through `flows.runtime.runtime_from_env`); a missing or wrong setting is an `InputError` that
names the variable and what to put there. The Prometheus client is imported only when a source is
built, and the adapters only when they are asked for, so reading the table stays light.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from canaryflow.errors import InputError
from canaryflow.querytemplates import HEADER_NAME, name_value_entries, parse_labels
from canaryflow.secrets import read_secret

if TYPE_CHECKING:
    from canaryflow.cluster.port import Cluster
    from canaryflow.metrics import MetricsSource
    from canaryflow.spec.release import PrometheusAccess

__all__ = [
    "PROMETHEUS_ACCESS_VARIABLES",
    "SETTINGS",
    "Setting",
    "cluster_from_env",
    "cluster_kind",
    "metrics_from_env",
    "reports_dir",
    "settings_for",
    "with_prometheus_access",
]


@dataclass(frozen=True, slots=True)
class Setting:
    """One environment variable: its name, its default, what it does, and which commands read it."""

    name: str
    default: str
    what: str
    used_by: tuple[str, ...]


_RUN = ("rollout", "check", "worker", "retry")
_KUBE = (*_RUN, "undo", "status")  # status reads the live state of each rollout's target
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "KUBECONFIG", "~/.kube/config", "the kubeconfig to reach the cluster (its current context)", _KUBE
    ),
    Setting("CANARYFLOW_KUBE_CONTEXT", "the current context", "the kubeconfig context to use instead", _KUBE),
    Setting("CANARYFLOW_IN_CLUSTER", "false", "true: use the pod's service account, not a kubeconfig", _KUBE),
    Setting(
        "CANARYFLOW_CLUSTER",
        "kubernetes",
        "the cluster adapter; only 'kubernetes' here (the demo and the tests inject 'simulated')",
        _KUBE,
    ),
    Setting("CANARYFLOW_PROMETHEUS_URL", "(required)", "the Prometheus that scrapes the target", _RUN),
    Setting("CANARYFLOW_PROMETHEUS_TIMEOUT", "10", "seconds a Prometheus query may take, per attempt", _RUN),
    Setting(
        "CANARYFLOW_PROMETHEUS_BEARER_TOKEN",
        "(none)",
        "a bearer token for Prometheus (or CANARYFLOW_PROMETHEUS_BEARER_TOKEN_FILE naming a file, "
        "read when a command or run starts)",
        _RUN,
    ),
    Setting(
        "CANARYFLOW_PROMETHEUS_USERNAME",
        "(none)",
        "basic auth for Prometheus: this user, with CANARYFLOW_PROMETHEUS_PASSWORD (or "
        "CANARYFLOW_PROMETHEUS_PASSWORD_FILE naming a file)",
        _RUN,
    ),
    Setting(
        "CANARYFLOW_PROMETHEUS_HEADERS",
        "(none)",
        "Name=value,...: headers sent with every query (e.g. X-Scope-OrgID=team-a for a Mimir, Cortex "
        "or Thanos tenant); a value may not hold ',' nor start with '='",
        _RUN,
    ),
    Setting(
        "CANARYFLOW_PROMETHEUS_CA_FILE",
        "the system's CAs",
        "a PEM bundle of the CAs that sign Prometheus's certificate (an https URL behind a private CA)",
        _RUN,
    ),
    Setting(
        "CANARYFLOW_PROMETHEUS_CERT_FILE",
        "(none)",
        "a client certificate (PEM) for mutual TLS, with its key in CANARYFLOW_PROMETHEUS_KEY_FILE",
        _RUN,
    ),
    Setting(
        "CANARYFLOW_PROMETHEUS_LABELS",
        "(none)",
        "name=value,...: the labels of this cell's series in a Prometheus shared by cells (queries "
        "take them through {cell}; a release sets it per cell)",
        _RUN,
    ),
    Setting(
        "CANARYFLOW_REPORTS_DIR",
        "reports",
        "where each rollout's report goes (status.json, observation logs, charts)",
        (
            "rollout",
            "retry",
            "release",
            "status",
            "get",
            "history",
            "undo",
            "metrics serve",
            "demo",
            "worker",
        ),
    ),
    Setting(
        "PREFECT_API_URL",
        "the active Prefect profile's, else canaryflow's local server",
        "the Prefect API that runs and records rollouts (see `canaryflow dev prefect up`)",
        (
            "rollout",
            "promote",
            "abort",
            "pause",
            "resume",
            "retry",
            "release",
            "demo",
            "webhook serve",
            "notifications apply",
        ),
    ),
    Setting(
        "CANARYFLOW_STATE_DIR",
        "$XDG_STATE_HOME/canaryflow (~/.local/state/canaryflow)",
        "where the local Prefect server and control plane keep their state",
        ("dev", "demo", "rollout", "promote", "abort", "pause", "resume", "retry", "release"),
    ),
    Setting(
        "CANARYFLOW_KUBE_DIR",
        "$CANARYFLOW_STATE_DIR/kube",
        "where `canaryflow dev kube up` keeps the local control plane (certificates, kubeconfig, etcd)",
        ("dev",),
    ),
    Setting(
        "CANARYFLOW_GITHUB_SECRET",
        "(at least one secret)",
        "the GitHub webhook secret (or CANARYFLOW_GITHUB_SECRET_FILE naming a file)",
        ("webhook serve",),
    ),
    Setting("CANARYFLOW_DEBUG", "", "1: as --debug on every command (tracebacks, Prefect's logs)", ()),
    Setting(
        "CANARYFLOW_GITLAB_TOKEN",
        "(at least one secret)",
        "the GitLab webhook token (or CANARYFLOW_GITLAB_TOKEN_FILE naming a file)",
        ("webhook serve",),
    ),
    Setting(
        "CANARYFLOW_GITLAB_SIGNING_TOKEN",
        "(at least one secret)",
        "GitLab's signing token, whsec_... (or CANARYFLOW_GITLAB_SIGNING_TOKEN_FILE): signed deliveries "
        "are verified by signature and timestamp",
        ("webhook serve",),
    ),
)


def settings_for(command: str) -> tuple[Setting, ...]:
    """The settings `command` reads (for its help)."""
    return tuple(s for s in SETTINGS if command in s.used_by)


def cluster_kind(env: Mapping[str, str]) -> str:
    """The cluster adapter the environment asks for, checked without any I/O (only Kubernetes)."""
    from canaryflow.cluster.factory import CLUSTER_KINDS

    kind = env.get("CANARYFLOW_CLUSTER", "kubernetes")
    canonical = CLUSTER_KINDS.get(kind)
    if canonical is None:
        known = ", ".join(sorted(CLUSTER_KINDS))
        raise InputError(f"CANARYFLOW_CLUSTER={kind!r} is not a cluster kind; choose one of: {known}")
    if canonical == "simulated":
        raise InputError(
            "CANARYFLOW_CLUSTER=simulated needs a runtime injected by its entry point "
            "(canaryflow demo, or use_runtime in tests): a fresh simulated cluster has no target"
        )
    return canonical


def cluster_from_env(env: Mapping[str, str]) -> Cluster:
    """The cluster adapter the environment describes (a Kubernetes API server)."""
    from canaryflow.cluster.factory import make_cluster

    return make_cluster(
        cluster_kind(env),
        kubeconfig=env.get("KUBECONFIG") or None,
        context=env.get("CANARYFLOW_KUBE_CONTEXT") or None,
        in_cluster=env.get("CANARYFLOW_IN_CLUSTER", "").lower() == "true",
    )


def metrics_from_env(env: Mapping[str, str]) -> MetricsSource:
    """The Prometheus source the environment names (``CANARYFLOW_PROMETHEUS_URL``)."""
    url = env.get("CANARYFLOW_PROMETHEUS_URL")
    if not url:
        raise InputError(
            "CANARYFLOW_PROMETHEUS_URL is not set: give the URL of the Prometheus that scrapes the "
            "target (e.g. http://prometheus.monitoring:9090); the rollout needs it to judge"
        )
    raw_timeout = env.get("CANARYFLOW_PROMETHEUS_TIMEOUT", "10")
    try:
        timeout = float(raw_timeout)
    except ValueError:
        timeout = -1.0
    from canaryflow.metrics import create_metrics_source
    from canaryflow.metrics.prometheus import PrometheusConfig

    raw_labels = env.get("CANARYFLOW_PROMETHEUS_LABELS", "")
    try:
        labels = parse_labels(raw_labels)
    except ValueError as exc:
        raise InputError(
            f"CANARYFLOW_PROMETHEUS_LABELS={raw_labels!r}: {exc}; write name=value,name=value "
            "(e.g. cluster=eu-1)"
        ) from exc
    try:
        config = PrometheusConfig(url=url, timeout=timeout, labels=labels, **_prometheus_access(env))
    except ValueError as exc:
        raise InputError(
            f"CANARYFLOW_PROMETHEUS_URL={url!r}, CANARYFLOW_PROMETHEUS_TIMEOUT={raw_timeout!r}: {exc}"
        ) from exc
    return create_metrics_source("prometheus", prometheus=config)


#: The variables of how Prometheus is reached (credentials, headers, TLS), all of which a release
#: cell's ``prometheusAccess`` replaces.
PROMETHEUS_ACCESS_VARIABLES = tuple(
    f"CANARYFLOW_PROMETHEUS_{name}"
    for name in (
        "BEARER_TOKEN",
        "BEARER_TOKEN_FILE",
        "USERNAME",
        "PASSWORD",
        "PASSWORD_FILE",
        "HEADERS",
        "CA_FILE",
        "CERT_FILE",
        "KEY_FILE",
    )
)


def with_prometheus_access(env: Mapping[str, str], access: PrometheusAccess | None) -> dict[str, str]:
    """`env` with the Prometheus access settings of a release cell's `access` in place of its own
    (`PROMETHEUS_ACCESS_VARIABLES`); unchanged when `access` is None. The spec checked the pairs and
    the headers (`canaryflow.spec.release`); the files are read when the source is built."""
    if access is None:
        return dict(env)
    out = {k: v for k, v in env.items() if k not in PROMETHEUS_ACCESS_VARIABLES}
    given = {
        "BEARER_TOKEN_FILE": access.bearer_token_file,
        "USERNAME": access.username,
        "PASSWORD_FILE": access.password_file,
        "HEADERS": ",".join(f"{name}={value}" for name, value in access.headers.items()) or None,
        "CA_FILE": access.ca_file,
        "CERT_FILE": access.cert_file,
        "KEY_FILE": access.key_file,
    }
    out.update({f"CANARYFLOW_PROMETHEUS_{k}": v for k, v in given.items() if v is not None})
    return out


def _prometheus_access(env: Mapping[str, str]) -> dict[str, Any]:
    """The `PrometheusConfig` fields for authentication, headers and TLS the environment sets,
    each file checked now (a missing one is an `InputError` naming it, not a failing query later)."""
    access: dict[str, Any] = {}
    token = read_secret("CANARYFLOW_PROMETHEUS_BEARER_TOKEN", env)
    user = env.get("CANARYFLOW_PROMETHEUS_USERNAME") or None
    password = read_secret("CANARYFLOW_PROMETHEUS_PASSWORD", env)
    if token is not None and (user is not None or password is not None):
        raise InputError(
            "CANARYFLOW_PROMETHEUS_BEARER_TOKEN and CANARYFLOW_PROMETHEUS_USERNAME/PASSWORD are both "
            "set: Prometheus takes one kind of credentials; unset one"
        )
    if (user is None) != (password is None):
        raise InputError(
            "basic auth needs both CANARYFLOW_PROMETHEUS_USERNAME and CANARYFLOW_PROMETHEUS_PASSWORD "
            "(or CANARYFLOW_PROMETHEUS_PASSWORD_FILE); set the missing one or unset the other"
        )
    if token is not None:
        access["bearer_token"] = token
    if user is not None and password is not None:
        access["basic_auth"] = (user, password)
    headers = _headers(env.get("CANARYFLOW_PROMETHEUS_HEADERS", ""))
    if headers:
        access["headers"] = headers
    ca_file = _readable_file(env, "CANARYFLOW_PROMETHEUS_CA_FILE")
    if ca_file is not None:
        access["ca_file"] = ca_file
    cert = _readable_file(env, "CANARYFLOW_PROMETHEUS_CERT_FILE")
    key = _readable_file(env, "CANARYFLOW_PROMETHEUS_KEY_FILE")
    if (cert is None) != (key is None):
        raise InputError(
            "mutual TLS needs both CANARYFLOW_PROMETHEUS_CERT_FILE and CANARYFLOW_PROMETHEUS_KEY_FILE; "
            "set the missing one or unset the other"
        )
    if cert is not None and key is not None:
        access["client_cert"] = (cert, key)
    return access


def _headers(text: str) -> dict[str, str]:
    """``Name=value,Name=value`` (CANARYFLOW_PROMETHEUS_HEADERS) as headers; InputError naming
    what is wrong (never a value: a header may carry a credential)."""
    headers: dict[str, str] = {}
    for number, name, value in name_value_entries(text):
        if (
            value is None
            or value.startswith("=")
            or not HEADER_NAME.fullmatch(name)
            or not value.isprintable()
        ):
            # named by position only: a token with base64 padding ("abc=", "abc==") reads as a name
            raise InputError(
                f"CANARYFLOW_PROMETHEUS_HEADERS: entry {number} is not Name=value; write "
                "Name=value,Name=value (e.g. X-Scope-OrgID=team-a)"
            )
        if name.lower() == "authorization":
            raise InputError(
                "CANARYFLOW_PROMETHEUS_HEADERS: set credentials with CANARYFLOW_PROMETHEUS_BEARER_TOKEN "
                "or CANARYFLOW_PROMETHEUS_USERNAME/PASSWORD, not an Authorization header"
            )
        if name.lower() in (h.lower() for h in headers):
            raise InputError(f"CANARYFLOW_PROMETHEUS_HEADERS: {name!r} is given twice")
        headers[name] = value
    return headers


def _readable_file(env: Mapping[str, str], name: str) -> str | None:
    """The file variable `name` names, checked to be readable now; `None` when it is not set."""
    path = env.get(name) or None
    if path is None:
        return None
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InputError(f"{name}={path!r}: cannot read the file: {exc.strerror or exc}") from exc
    return path


def reports_dir(env: Mapping[str, str]) -> Path:
    """Where reports go (``CANARYFLOW_REPORTS_DIR``, default ``reports``; it need not exist yet).
    `InputError` when it names something that is not a directory (a command would find no
    rollouts in it, or fail at its first report)."""
    path = Path(env.get("CANARYFLOW_REPORTS_DIR") or "reports")
    if path.exists() and not path.is_dir():
        raise InputError(
            f"CANARYFLOW_REPORTS_DIR={str(path)!r} is not a directory: set it to the directory that "
            "holds (or is to hold) the rollouts' reports"
        )
    return path
