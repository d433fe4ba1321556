"""`selected_names`: the metric names a rendered query selects (what the preflight asks
Prometheus about), never a function, a label or text inside a string."""

from __future__ import annotations

import pytest

from canaryflow.querytemplates import selected_names


@pytest.mark.parametrize(
    ("promql", "names"),
    [
        (
            'sum(increase(http_requests_total{namespace="shop", code=~"5.."}[1m])) '
            "/ sum(rate(http_requests_totl[1m]))",
            ["http_requests_total", "http_requests_totl"],
        ),
        (
            'histogram_quantile(0.9, sum by (le) (rate(app:latency_bucket{app="a{b["}[5m])))',
            ["app:latency_bucket"],
        ),
        ('sum(x{a="1"}) + sum(x{a="2"})', ["x"]),
        ("up", []),
        ('{__name__="x"}', []),
        ("rate(foo[5m:30s])", ["foo"]),
    ],
)
def test_the_names_a_query_selects(promql: str, names: list[str]) -> None:
    assert selected_names(promql) == names


@pytest.mark.parametrize(
    ("promql", "names"),
    [
        ('foo{a="1"} or {__name__="bar"}', ["foo"]),
        ('x{a="1"} unless {job="y"}', ["x"]),
        ('x{a="1"} * on(i) group_left {job="y"}', ["x"]),
        ('x{a="1"}  # old_name{job} was renamed', ["x"]),
        ('rate(x[5m] offset 1h) and bool {job="y"}', ["x"]),
    ],
)
def test_keywords_and_comments_are_not_names(promql: str, names: list[str]) -> None:
    assert selected_names(promql) == names
