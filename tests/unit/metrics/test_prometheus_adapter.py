"""The Prometheus adapter against a scripted HTTP server: requests sent, answers translated.

The server answers each request with the next scripted (status, body) and records what it got, so
the tests see the real HTTP the adapter (prometheus_api_client over requests) sends.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from analysis.observations import HistogramCounts, RatioCounts
from canaryflow.errors import MetricsError, MetricsUnavailableError, NoDataError, QueryError, TransientError
from canaryflow.metrics.port import MetricQuery
from canaryflow.metrics.prometheus import PrometheusConfig, PrometheusMetricsSource, promql_duration

RATIO = MetricQuery(
    "errors",
    "ratio",
    {
        "bad": 'sum(increase(http_requests_total{app="{app}",track="{track}",code=~"5.."}[{interval}]))',
        "total": 'sum(increase(http_requests_total{app="{app}",track="{track}"}[{interval}]))',
    },
)
HISTOGRAM = MetricQuery("latency", "histogram", {"query": "sum by (le) (increase(h_bucket[{interval}]))"})
END = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)


def ok(result: Any, result_type: str = "vector") -> tuple[int, str]:
    return 200, json.dumps({"status": "success", "data": {"resultType": result_type, "result": result}})


def err(status: int, kind: str, message: str) -> tuple[int, str]:
    return status, json.dumps({"status": "error", "errorType": kind, "error": message})


def one(value: str) -> list[dict[str, Any]]:
    return [{"metric": {}, "value": [END.timestamp(), value]}]


class Scripted(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers: list[tuple[int, str]] = []
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _Handler(BaseHTTPRequestHandler):
    server: Scripted

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        self.server.requests.append((parts.path, parse_qs(parts.query), dict(self.headers.items())))
        status, body = self.server.answers.pop(0) if self.server.answers else (404, "not scripted")
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Scripted]:
    srv = Scripted()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def source(url: str, **kwargs: Any) -> PrometheusMetricsSource:
    return PrometheusMetricsSource(PrometheusConfig(url=url, timeout=2.0, retries=2, backoff=0.0, **kwargs))


def observe(src: PrometheusMetricsSource, query: MetricQuery = RATIO) -> Any:
    return src.observe(
        query, namespace="shop", app="web", track="canary", end=END, window=timedelta(seconds=30)
    )


def test_a_ratio_is_two_instant_queries_at_the_window_end(server: Scripted) -> None:
    server.answers = [ok(one("600.5")), ok(one("3"))]
    with source(server.url) as src:
        assert observe(src) == RatioCounts(bad=3.0, total=600.5)
    (path, total, _), (_, bad, _) = server.requests
    assert path == "/api/v1/query"
    assert total["query"] == ['sum(increase(http_requests_total{app="web",track="canary"}[30s]))']
    assert bad["query"] == ['sum(increase(http_requests_total{app="web",track="canary",code=~"5.."}[30s]))']
    assert total["time"] == [f"{END.timestamp():.3f}"]
    assert total["timeout"] == ["2"]


def test_no_total_is_no_data_without_asking_for_bad(server: Scripted) -> None:
    server.answers = [ok([])]
    with source(server.url) as src, pytest.raises(NoDataError):
        observe(src)
    assert len(server.requests) == 1


def test_a_histogram_comes_back_by_le(server: Scripted) -> None:
    result = [
        {"metric": {"le": le}, "value": [0, v]} for le, v in (("+Inf", "10"), ("0.1", "4"), ("0.5", "9"))
    ]
    server.answers = [ok(result)]
    with source(server.url) as src:
        h = observe(src, HISTOGRAM)
    assert isinstance(h, HistogramCounts)
    assert h.counts == (4.0, 9.0, 10.0)


def test_bad_promql_is_a_query_error_with_prometheus_message(server: Scripted) -> None:
    server.answers = [err(400, "bad_data", '1:5: parse error: unexpected "}"')]
    with source(server.url) as src, pytest.raises(QueryError) as info:
        observe(src)
    assert 'bad_data: 1:5: parse error: unexpected "}"' in str(info.value)
    assert info.value.query is not None
    assert "http_requests_total" in info.value.query
    assert info.value.__cause__ is not None
    assert len(server.requests) == 1  # not retried


def test_an_execution_error_is_a_query_error(server: Scripted) -> None:
    server.answers = [err(422, "execution", "many-to-many matching not allowed")]
    with source(server.url) as src, pytest.raises(QueryError, match="many-to-many"):
        observe(src)


def test_server_errors_are_retried_then_retryable(server: Scripted) -> None:
    server.answers = [err(503, "timeout", "query timed out")] * 3
    with source(server.url) as src, pytest.raises(MetricsUnavailableError, match="query timed out") as info:
        observe(src)
    assert isinstance(info.value, TransientError)
    assert len(server.requests) == 3  # 1 + 2 retries


def test_a_server_error_that_clears_is_retried_to_success(server: Scripted) -> None:
    server.answers = [(502, "bad gateway"), ok(one("10")), ok(one("1"))]
    with source(server.url) as src:
        assert observe(src) == RatioCounts(bad=1.0, total=10.0)


def test_unauthorised_is_permanent_not_retryable(server: Scripted) -> None:
    server.answers = [(401, "no")]
    with source(server.url) as src, pytest.raises(MetricsError, match="answered 401") as info:
        observe(src)
    assert not isinstance(info.value, (QueryError, TransientError))


@pytest.mark.parametrize(
    ("body", "said"), [('{"detail": "Not Found"}', '{"detail": "Not Found"}'), ("", "an empty body")]
)
def test_a_404_says_the_url_is_not_the_prometheus_api_and_what_to_set(
    server: Scripted, body: str, said: str
) -> None:
    """Another server at the URL (a Prefect API answered ``{'detail': 'Not Found'}``, Python's words)."""
    server.answers = [(404, body)]
    with source(server.url) as src, pytest.raises(MetricsError) as info:
        observe(src)
    assert str(info.value).startswith(
        f"{server.url} answered 404 ({said}) where the Prometheus HTTP API should be: set "
        "CANARYFLOW_PROMETHEUS_URL to the server's base URL"
    )


def test_an_answer_that_is_not_the_api_is_a_metrics_error(server: Scripted) -> None:
    server.answers = [(200, "<html>login</html>")]
    with (
        source(server.url) as src,
        pytest.raises(MetricsError, match="did not answer like the Prometheus API"),
    ):
        observe(src)


def test_auth_and_tenant_headers_are_sent(server: Scripted) -> None:
    server.answers = [ok(one("10")), ok(one("0"))] * 2
    with source(server.url, bearer_token="s3cret", headers={"X-Scope-OrgID": "team-a"}) as src:
        observe(src)
    with source(server.url, basic_auth=("user", "pw")) as src:
        observe(src)
    bearer, basic = server.requests[0][2], server.requests[2][2]
    assert bearer["Authorization"] == "Bearer s3cret"
    assert bearer["X-Scope-OrgID"] == "team-a"
    assert basic["Authorization"] == "Basic dXNlcjpwdw=="


def test_the_config_keeps_secrets_out_of_its_repr() -> None:
    config = PrometheusConfig(url="https://prom.example:9090", bearer_token="s3cret")
    assert "s3cret" not in repr(config)
    with pytest.raises(ValueError, match="not both"):
        PrometheusConfig(url="http://x", bearer_token="a", basic_auth=("u", "p"))
    with pytest.raises(ValueError, match="http"):
        PrometheusConfig(url="prom:9090")


def test_a_silent_server_times_out_within_the_worst_case() -> None:
    with socket.socket() as listener:  # accepts connections (kernel backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        config = PrometheusConfig(url=url, timeout=0.3, retries=1, backoff=0.0)
        begun = time.monotonic()
        with (
            PrometheusMetricsSource(config) as src,
            pytest.raises(MetricsUnavailableError, match="did not answer"),
        ):
            observe(src)
        elapsed = time.monotonic() - begun
    assert 0.5 <= elapsed <= config.worst_case_seconds + 0.5


def test_connection_refused_is_retryable_and_offline() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with source(f"http://127.0.0.1:{port}") as src:
        assert not src.is_online()
        with pytest.raises(MetricsUnavailableError):
            observe(src)


def test_worst_case_adds_attempts_and_backoff() -> None:
    config = PrometheusConfig(url="http://x", timeout=2.0, retries=3, backoff=0.5, backoff_max=1.5)
    # attempts 4 x 2 s; waits before attempts 3 and 4: 0.5 * 2 = 1.0 and min(1.5, 0.5 * 4) = 1.5
    assert config.worst_case_seconds == pytest.approx(8.0 + 1.0 + 1.5)


@pytest.mark.parametrize(
    ("window", "text"), [(timedelta(seconds=30), "30s"), (timedelta(milliseconds=1500), "1500ms")]
)
def test_windows_render_as_promql_durations(window: timedelta, text: str) -> None:
    assert promql_duration(window) == text


def test_naive_window_ends_are_refused(server: Scripted) -> None:
    with source(server.url) as src, pytest.raises(ValueError, match="timezone-aware"):
        src.observe(
            RATIO, namespace="s", app="a", track="canary", end=datetime(2024, 1, 1), window=timedelta(1)
        )


def test_online_means_the_query_api_answers_even_where_the_root_does_not(server: Scripted) -> None:
    server.answers = [ok([{"metric": {}, "value": [END.timestamp(), "1"]}], "scalar")]
    with source(server.url + "/prometheus") as src:  # a path prefix: its root would answer 404
        assert src.is_online()
    ((path, query, _),) = server.requests
    assert path == "/prometheus/api/v1/query"
    assert query["query"] == ["1"]
    server.answers = [err(503, "unavailable", "overloaded")] * 3
    with source(server.url) as src:
        assert not src.is_online()


def test_the_stables_history_is_one_range_query_per_template_with_the_ends_to_the_millisecond(
    server: Scripted,
) -> None:
    end = END + timedelta(milliseconds=250)
    window = timedelta(seconds=30)
    first = end.timestamp() - 2 * 30

    def matrix(values: list[tuple[float, str]]) -> tuple[int, str]:
        return ok([{"metric": {}, "values": [[t, v] for t, v in values]}], "matrix")

    # total has all three windows; bad is missing at the first (no bad event: 0); the middle
    # window served nothing (total 0: no data, left out)
    server.answers = [  # one range query per template: bad, then total
        matrix([(first + 60, "7")]),
        matrix([(first, "600"), (first + 30, "0"), (first + 60, "580")]),
    ]
    with source(server.url) as src:
        seen = src.observe_history(
            RATIO, namespace="shop", app="web", track="stable", end=end, window=window, intervals=3
        )

    assert seen == [RatioCounts(bad=0.0, total=600.0), RatioCounts(bad=7.0, total=580.0)]
    (path_bad, _, _), (path_total, total_params, _) = server.requests
    assert path_total == path_bad == "/api/v1/query_range"
    assert total_params["start"] == [f"{first:.3f}"]  # not rounded to the second by the client
    assert total_params["end"] == [f"{end.timestamp():.3f}"]
    assert total_params["step"] == ["30.000"]
    assert 'track="stable"' in total_params["query"][0]
    assert "[30s]" in total_params["query"][0]


def test_a_history_read_through_a_frontend_that_aligns_the_range_still_reads_every_window(
    server: Scripted,
) -> None:
    # Thanos and Mimir align start and end to the step: the points come at other times.
    server.answers = [
        ok(
            [
                {"metric": {"le": "0.1"}, "values": [[1714564800, "50"], [1714564830, "40"]]},
                {"metric": {"le": "+Inf"}, "values": [[1714564800, "90"], [1714564830, "80"]]},
            ],
            "matrix",
        )
    ]
    with source(server.url) as src:
        seen = src.observe_history(
            HISTOGRAM, namespace="shop", app="web", track="stable", end=END, window=timedelta(seconds=30),
            intervals=2,
        )  # fmt: skip

    assert [(h.le, h.counts) for h in seen if isinstance(h, HistogramCounts)] == [
        ((0.1, float("inf")), (50.0, 90.0)),
        ((0.1, float("inf")), (40.0, 80.0)),
    ]


def test_a_stopped_prometheus_fails_the_history_as_unavailable(server: Scripted) -> None:
    server.answers = [(503, "down")] * 3
    with source(server.url) as src, pytest.raises(MetricsUnavailableError):
        src.observe_history(
            RATIO,
            namespace="shop",
            app="web",
            track="stable",
            end=END,
            window=timedelta(seconds=30),
            intervals=5,
        )


def test_unknown_names_asks_the_index_for_the_names_the_queries_select(server: Scripted) -> None:
    typo = MetricQuery(
        "errors",
        "ratio",
        {
            "bad": 'sum(increase(http_requests_totl{code=~"5.."}[{interval}]))',
            "total": 'sum(up{app="{app}"})',
        },
    )
    server.answers = [(200, json.dumps({"status": "success", "data": ["up"]}))]
    with source(server.url) as src:
        unknown = src.unknown_names(typo, namespace="shop", app="web", track="stable", end=END)
    assert unknown == ["http_requests_totl"]
    ((path, params, _headers),) = server.requests
    assert path == "/api/v1/label/__name__/values"  # the index only: no sample is read
    assert params["match[]"] == ['{__name__=~"http_requests_totl|up"}']
    server.answers = [(503, "down")] * 3
    with source(server.url) as src:  # cannot tell now: nothing to warn of, never an error
        assert src.unknown_names(typo, namespace="shop", app="web", track="stable", end=END) == []

    server.answers = [(200, json.dumps({"status": "success", "data": 5}))]
    with source(server.url) as src:  # not the API's answer: cannot tell, never an error
        assert src.unknown_names(typo, namespace="shop", app="web", track="stable", end=END) == []
