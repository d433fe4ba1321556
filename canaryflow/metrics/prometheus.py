"""The Prometheus adapter of `MetricsSource` (the only home of prometheus_api_client).

Configured for a controller: an explicit timeout per attempt, bounded retries with exponential
backoff (connection errors, read timeouts, 429 and 5xx answers; urllib3's `Retry`, with
``Retry-After`` not obeyed so that a server cannot stall a rollout), bearer-token or basic auth,
custom headers (``X-Scope-OrgID`` for Mimir, Cortex and Thanos tenants), TLS verification with a CA
file or a client certificate. Queries are instant queries (``/api/v1/query``) at the window end.

Errors are translated at this edge, chained ``from`` the library's exception, with the rendered query:

- timeout, connection refused, 429 or 5xx after the retries -> `MetricsUnavailableError` (retryable);
- 400 ``bad_data`` or 422 (the query cannot run) -> `QueryError` with Prometheus' own message;
- any other refusal (401, 403, 404, TLS verification, an answer that is not the API) -> `MetricsError`;
- empty results or NaN -> `NoDataError` (see `canaryflow.metrics.vectors` for every rule).
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from analysis.observations import TrackObservation
from canaryflow.errors import CanaryflowError, MetricsError, MetricsUnavailableError, NoDataError, QueryError
from canaryflow.metrics.port import MetricQuery, ObservedTrack, check_window
from canaryflow.metrics.vectors import histogram_from_result, ratio_from_results, samples_from_result
from canaryflow.querytemplates import cell_matchers, render, selected_names, variables

__all__ = ["PrometheusConfig", "PrometheusMetricsSource", "promql_duration"]

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_STATUS = re.compile(r"^HTTP Status Code (\d+) \((b(?:'.*'|\".*\"))\)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class PrometheusConfig:
    """How to reach one Prometheus-compatible API.

    `timeout` bounds each attempt (connect and read, seconds); at most ``1 + retries`` attempts are
    made, with urllib3's exponential backoff (``backoff * 2**(n-1)`` seconds before attempt n+1, the
    first retry immediate, each wait capped at `backoff_max`). `worst_case_seconds` is the bound.
    """

    url: str
    timeout: float = 10.0
    retries: int = 2
    backoff: float = 0.5
    backoff_max: float = 5.0
    bearer_token: str | None = field(default=None, repr=False)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)
    verify_tls: bool = True
    ca_file: str | None = None
    client_cert: tuple[str, str] | None = None
    #: The labels of the cell whose series to read in a Prometheus shared by cells (``{cell}``).
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cell_matchers(self.labels)  # a label name Prometheus would refuse fails here
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"Prometheus url must start with http:// or https://, got {self.url!r}")
        if self.timeout <= 0 or self.retries < 0 or self.backoff < 0 or self.backoff_max < 0:
            raise ValueError("timeout must be > 0; retries, backoff and backoff_max >= 0")
        if self.bearer_token is not None and self.basic_auth is not None:
            raise ValueError("give a bearer token or basic auth, not both")

    @property
    def worst_case_seconds(self) -> float:
        """Longest a query can take before it raises (attempts times timeout plus the backoff waits)."""
        waits: float = sum(
            min(self.backoff_max, self.backoff * 2 ** (n - 1)) for n in range(2, self.retries + 1)
        )
        return (1 + self.retries) * self.timeout + waits


def promql_duration(window: timedelta) -> str:
    """`window` as a PromQL duration: whole seconds as ``30s``, anything finer in ``ms``."""
    ms = round(window / timedelta(milliseconds=1))
    if ms <= 0:
        raise ValueError(f"window must be at least 1 ms, got {window!r}")
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _session(config: PrometheusConfig) -> requests.Session:
    session = requests.Session()
    session.verify = config.ca_file if (config.verify_tls and config.ca_file) else config.verify_tls
    if config.client_cert is not None:
        session.cert = config.client_cert
    return session


def _retry(config: PrometheusConfig) -> Retry:
    return Retry(
        total=config.retries,
        connect=config.retries,
        read=config.retries,
        status=config.retries,
        other=0,
        redirect=2,
        allowed_methods=frozenset({"GET"}),
        status_forcelist=_RETRY_STATUS,
        backoff_factor=config.backoff,
        backoff_max=config.backoff_max,
        raise_on_status=False,  # the last answer comes back, so its status and message can be read
        respect_retry_after_header=False,
    )


#: The window rendered into ``{interval}`` where only the metric names matter.
_ANY_WINDOW = timedelta(minutes=1)


class PrometheusMetricsSource:
    """`MetricsSource` over the Prometheus HTTP API. Close it (or use ``with``) to release connections."""

    def __init__(self, config: PrometheusConfig) -> None:
        self.config = config
        headers = dict(config.headers)
        if config.bearer_token is not None:
            headers["Authorization"] = f"Bearer {config.bearer_token}"
        self._client: Any = PrometheusConnect(
            url=config.url.rstrip("/"),
            headers=headers or None,
            retry=_retry(config),
            auth=config.basic_auth,
            session=_session(config),
            timeout=config.timeout,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def is_online(self) -> bool:
        """Whether the query API answers (a query of ``1``): a Prometheus behind a path prefix
        (Mimir's ``/prometheus``, a proxy) may answer 404 at its root while its queries work."""
        try:
            self._client.custom_query(query="1")
        except (requests.RequestException, PrometheusApiClientException, ValueError):
            return False
        return True

    def observe(
        self,
        query: MetricQuery,
        *,
        namespace: str,
        app: str,
        track: ObservedTrack,
        end: datetime,
        window: timedelta,
    ) -> TrackObservation:
        check_window(end, window)
        rendered = self._templates(query, namespace=namespace, app=app, track=track, window=window)
        at = end.timestamp()
        if query.type == "ratio":
            total = self.instant(rendered["total"], at=at)
            results = {"total": total, "bad": self.instant(rendered["bad"], at=at) if total else []}
        else:
            results = {"query": self.instant(rendered["query"], at=at)}
        return _decode(query, results, rendered)

    def observe_history(
        self,
        query: MetricQuery,
        *,
        namespace: str,
        app: str,
        track: ObservedTrack,
        end: datetime,
        window: timedelta,
        intervals: int,
    ) -> list[TrackObservation]:
        """What `observe` would give for each of the `intervals` windows that end at ``end - i *
        window`` (oldest first; windows without data left out), in one range query per template:
        ``query_range`` with the window as its step evaluates the same expression at each end (at
        those ends to the millisecond on Prometheus itself; where a frontend aligns the range to
        its step, at the step's multiples instead)."""
        check_window(end, window)
        if query.type == "samples":
            raise ValueError(f"metric {query.name!r}: a samples metric has no history here")
        rendered = self._templates(query, namespace=namespace, app=app, track=track, window=window)
        step_ms = round(window.total_seconds() * 1000)
        first_ms = round(end.timestamp() * 1000) - (intervals - 1) * step_ms
        points = {
            name: _by_time(
                self.range(promql, start=first_ms / 1000, end=end.timestamp(), step=step_ms / 1000)
            )
            for name, promql in rendered.items()
        }
        # Each point's time is a window's end. A query frontend may align the start to the step
        # (Thanos, Mimir): the windows move a little, and a history needs no particular ones.
        seen: list[TrackObservation] = []
        for key in sorted(set().union(*points.values())):
            try:
                seen.append(
                    _decode(query, {name: found.get(key, []) for name, found in points.items()}, rendered)
                )
            except NoDataError:
                continue
        return seen

    def unknown_names(
        self, query: MetricQuery, *, namespace: str, app: str, track: ObservedTrack, end: datetime
    ) -> list[str]:
        """`SeriesNames`: one look at the index, ``/api/v1/label/__name__/values`` matching the
        names, over the hour before `end` (no samples read, however many series the names have)."""
        try:
            rendered = self._templates(query, namespace=namespace, app=app, track=track, window=_ANY_WINDOW)
            names = list(dict.fromkeys(n for promql in rendered.values() for n in selected_names(promql)))
            if not names:
                return []
            selector = f'{{__name__=~"{"|".join(names)}"}}'
            params = {
                "match[]": selector,
                "start": f"{end.timestamp() - 3600:.3f}",
                "end": f"{end.timestamp():.3f}",
            }
            found = self._guarded(selector, lambda: self._client.get_label_values("__name__", params=params))
            if not isinstance(found, list):  # not the API's answer: cannot tell
                return []
            known = {str(name) for name in found}
        except CanaryflowError:  # cannot tell now: nothing to warn of
            return []
        return [name for name in names if name not in known]

    def _templates(
        self, query: MetricQuery, *, namespace: str, app: str, track: ObservedTrack, window: timedelta
    ) -> dict[str, str]:
        """Each of `query`'s templates rendered for `track` of `app` over `window`."""
        values = {
            "namespace": namespace, "app": app, "track": track, "interval": promql_duration(window),
            "cell": cell_matchers(self.config.labels),
        }  # fmt: skip
        return {name: self._render(query, template, values) for name, template in query.templates.items()}

    def _render(self, query: MetricQuery, template: str, values: Mapping[str, str]) -> str:
        if self.config.labels and "cell" not in variables(template):
            labels = ", ".join(f"{k}={v}" for k, v in sorted(self.config.labels.items()))
            raise QueryError(
                f"metric {query.name!r}: its query has no {{cell}} placeholder, so the cell's labels "
                f"({labels}) cannot narrow it and it would read every cell's series: add {{cell}} at "
                "the end of each selector's matchers, as the default metrics do",
                query=template,
            )
        return _render(template, values)

    def instant(self, promql: str, *, at: float) -> Any:
        """``data.result`` of an instant query at `at` (seconds since the epoch), or our error."""
        params = {"time": f"{at:.3f}", "timeout": f"{self.config.timeout:g}"}  # seconds
        return self._guarded(promql, lambda: self._client.custom_query(query=promql, params=params))

    def range(self, promql: str, *, start: float, end: float, step: float) -> Any:
        """``data.result`` (a matrix) of a range query from `start` to `end` every `step` seconds,
        or our error. The client rounds start and end to whole seconds; the parameters given here
        keep the milliseconds, so each point is evaluated where an instant query would be."""
        params = {"start": f"{start:.3f}", "end": f"{end:.3f}", "timeout": f"{self.config.timeout:g}"}
        moment = datetime.fromtimestamp(start, tz=UTC)
        return self._guarded(
            promql,
            lambda: self._client.custom_query_range(
                query=promql, start_time=moment, end_time=moment, step=f"{step:.3f}", params=params
            ),
        )

    def _guarded(self, promql: str, call: Callable[[], Any]) -> Any:
        """`call`'s answer, or its failure as our error."""
        try:
            return call()
        except PrometheusApiClientException as exc:
            raise _http_error(exc, promql, self.config.url) from exc
        except requests.exceptions.SSLError as exc:
            reason = exc.args[0].reason if exc.args and hasattr(exc.args[0], "reason") else exc
            raise MetricsError(
                f"TLS to {self.config.url} failed: {reason} (a certificate of a private CA: set "
                "CANARYFLOW_PROMETHEUS_CA_FILE to the CA's PEM file)",
                query=promql,
            ) from exc
        except (requests.Timeout, requests.ConnectionError, requests.exceptions.RetryError) as exc:
            raise MetricsUnavailableError(
                f"Prometheus at {self.config.url} did not answer ({type(exc).__name__}) after "
                f"{1 + self.config.retries} attempt(s): {promql}",
                query=promql,
                retry_after=self.config.timeout,
            ) from exc
        except requests.exceptions.InvalidHeader as exc:  # its message quotes the header: a credential
            raise MetricsError(
                f"a header for {self.config.url} is not valid (a token or header value with a line "
                f"break?): {promql}",
                query=promql,
            ) from exc
        except (ValueError, KeyError, TypeError, requests.RequestException) as exc:
            raise MetricsError(
                f"{self.config.url} did not answer like the Prometheus API ({exc}): {promql}", query=promql
            ) from exc


def _decode(query: MetricQuery, results: Mapping[str, Any], rendered: Mapping[str, str]) -> TrackObservation:
    """The observation in the results of `query`'s rendered templates (by template name)."""
    if query.type == "ratio":
        return ratio_from_results(
            results["bad"], results["total"], bad_query=rendered["bad"], total_query=rendered["total"]
        )
    if query.type == "histogram":
        return histogram_from_result(results["query"], query=rendered["query"])
    return samples_from_result(results["query"], query=rendered["query"])


def _by_time(matrix: Any) -> dict[float, list[dict[str, Any]]]:
    """A range query's matrix as one instant vector per point's time (rounded to the millisecond)."""
    if not isinstance(matrix, list):
        return {}
    out: dict[float, list[dict[str, Any]]] = {}
    for entry in matrix:
        if not isinstance(entry, dict):
            continue
        for point in entry.get("values") or []:
            try:
                key = round(float(point[0]), 3)
            except (TypeError, ValueError, IndexError):
                continue
            out.setdefault(key, []).append({"metric": entry.get("metric") or {}, "value": point})
    return out


def _render(template: str, values: Mapping[str, str]) -> str:
    try:
        return render(template, values)
    except KeyError as exc:
        raise QueryError(f"cannot render {template!r}: {exc.args[0]}", query=template) from exc


def _http_error(
    exc: PrometheusApiClientException, promql: str, url: str
) -> MetricsError | MetricsUnavailableError:
    """Our error for a non-200 answer, with Prometheus' own message when it gave one."""
    status, message = _status_and_message(str(exc))
    if status in _RETRY_STATUS or (status is not None and status >= 500):
        return MetricsUnavailableError(f"Prometheus answered {status}: {message}: {promql}", query=promql)
    if status in (400, 422):
        return QueryError(f"Prometheus rejected the query ({message}): {promql}", query=promql)
    if status == 404:  # no /api/v1/query there: another server, or a path too many in the URL
        return MetricsError(
            f"{url} answered 404 ({message}) where the Prometheus HTTP API should be: set "
            "CANARYFLOW_PROMETHEUS_URL to the server's base URL (e.g. http://prometheus:9090, without "
            "/api/v1)",
            query=promql,
        )
    return MetricsError(f"Prometheus at {url} answered {status}: {message}: {promql}", query=promql)


def _status_and_message(text: str) -> tuple[int | None, str]:
    """Parse the client's ``HTTP Status Code 400 (b'{...}')`` into the status and the API's error."""
    match = _STATUS.match(text)
    if match is None:
        return None, text
    status = int(match.group(1))
    try:
        body = ast.literal_eval(match.group(2))
        payload = json.loads(body)
    except (ValueError, SyntaxError):
        raw = match.group(2)
        if raw in ("b''", 'b""', ""):
            return status, "an empty body"
        with contextlib.suppress(ValueError, SyntaxError):  # the bytes as text, not as Python shows them
            text = ast.literal_eval(raw)
            raw = text.decode("utf-8", "replace").strip() if isinstance(text, bytes) else raw
        return status, raw[:500]
    if isinstance(payload, dict) and "error" in payload:
        kind = payload.get("errorType")
        return status, f"{kind}: {payload['error']}" if kind else str(payload["error"])
    return status, json.dumps(payload)[:500]  # as the server sent it, not as Python prints it
