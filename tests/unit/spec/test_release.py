"""Release specs: the example is valid, and every problem is reported at once with file, line and
path, in the spec's words."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from canaryflow.errors import SpecError
from canaryflow.spec import json_schema, load_release, load_release_text, validate_files

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "config" / "releases" / "web.yaml"

VALID = """\
apiVersion: canaryflow/v1
kind: Release
metadata: {name: web}
spec:
  rollout: config/rollouts/web.yaml
  prometheus: http://prometheus:9090
  cells:
    - {name: eu-1, context: eu-1, workPool: p-eu-1, labels: {cluster: eu-1}}
    - {name: eu-2, context: eu-2, workPool: p-eu-2, labels: {cluster: eu-2}}
    - {name: us-1, inCluster: true, workPool: p-us-1, prometheus: http://prom-us:9090}
  waves:
    - {cells: [eu-1], bake: {minDuration: 5m}}
    - {cells: [eu-2, us-1], concurrency: 1, maxFailures: 1}
"""


@pytest.fixture(autouse=True)
def _at_the_repository_root() -> Iterator[None]:
    """The rollout spec a release names is relative to the working directory."""
    before = Path.cwd()
    os.chdir(ROOT)
    yield
    os.chdir(before)


def _problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_release_text(text, source="r.yaml")
    return caught.value.problems


def test_the_example_release_is_valid() -> None:
    release = load_release(EXAMPLE)

    assert [wave.cells for wave in release.spec.waves] == [("eu-1",), ("eu-2", "us-1")]
    assert release.spec.on_failure == "rollback-all"
    assert release.cell("us-1").target.namespace == "shop-us"
    bake = release.spec.waves[0].bake
    assert bake is not None
    assert (bake.min_duration, bake.max_duration, bake.min_requests) == (
        timedelta(minutes=10),
        timedelta(hours=1),
        10000,
    )


def test_defaults_are_the_safe_ones() -> None:
    release = load_release_text(VALID)

    assert release.spec.on_failure == "rollback-all"  # a failure rolls back every promoted cell
    assert release.spec.waves[0].max_failures == 0
    assert release.spec.waves[0].concurrency is None  # all of a wave's cells at once
    bake = release.spec.waves[0].bake
    assert bake is not None
    assert bake.read_lag == timedelta(seconds=30)  # all of an interval scraped at 15 s scrapes


def test_every_cross_field_problem_at_once_with_its_line_and_path() -> None:
    text = """\
apiVersion: canaryflow/v1
kind: Release
metadata: {name: web}
spec:
  rollout: config/rollouts/web.yaml
  cells:
    - {name: eu-1, context: eu-1, inCluster: true, workPool: p, prometheus: http://p:9090}
    - {name: eu-2, workPool: p, prometheus: http://p:9090}
    - {name: eu-3, context: eu-3, workPool: p}
    - {name: eu-4, context: eu-4, workPool: p, prometheus: http://p:9090}
    - {name: eu-1, context: x, workPool: p, prometheus: http://p:9090}
  waves:
    - {cells: [eu-1, eu-9], concurrency: 3, maxFailures: 2}
    - {cells: [eu-1, eu-2, eu-3], bake: {minDuration: 2h, maxDuration: 1h, against: later-waves, readLag: 6m}}
  freezes:
    - {start: 2026-12-27T00:00:00Z, end: 2026-12-24T00:00:00Z, cells: [eu-7]}
"""
    assert _problems(text) == [
        "r.yaml:7 spec.cells[0]: give the cell's kubeconfig context, or inCluster: true (one of the two)",
        "r.yaml:8 spec.cells[1]: give the cell's kubeconfig context, or inCluster: true (one of the two)",
        "r.yaml:9 spec.cells[2]: no Prometheus: give the cell's own (prometheus: URL) or a shared "
        "spec.prometheus",
        "r.yaml:10 spec.cells[3].name: cell 'eu-4' is in no wave",
        "r.yaml:11 spec.cells[4].name: cell 'eu-1' is listed twice (first as cells[0])",
        "r.yaml:13 spec.waves[0].cells[1]: no cell 'eu-9' (cells: eu-1, eu-2, eu-3, eu-4)",
        "r.yaml:13 spec.waves[0].concurrency: must be at most the wave's 2 cell(s)",
        "r.yaml:13 spec.waves[0].maxFailures: must be less than the wave's 2 cell(s), or it never stops",
        "r.yaml:14 spec.waves[1].cells[0]: cell 'eu-1' is already in waves[0]",
        "r.yaml:14 spec.waves[1].bake.against: the last wave has no later waves to compare with: use "
        "history (its cells before the release), or remove the bake",
        "r.yaml:14 spec.waves[1].bake.readLag: must be at most 5m: a Prometheus that needs longer to "
        "scrape an interval cannot be baked against",
        "r.yaml:14 spec.waves[1].bake.minDuration: must be at most maxDuration (1h)",
        "r.yaml:16 spec.freezes[0].end: must be after start",
        "r.yaml:16 spec.freezes[0].cells[0]: no cell 'eu-7'",
    ]


def test_a_cell_on_the_shared_prometheus_needs_labels() -> None:
    text = VALID.replace("labels: {cluster: eu-2}", "labels: {}")
    assert _problems(text) == [
        "r.yaml:9 spec.cells[1].labels: a cell on the shared Prometheus needs labels that tell its "
        "series apart"
    ]


def test_a_cells_labels_must_be_prometheus_label_names() -> None:
    text = VALID.replace("labels: {cluster: eu-2}", "labels: {cluster: eu-2, 2nd: x, __name__: y}")
    assert _problems(text) == [
        "r.yaml:9 spec.cells[1].labels.2nd: not a Prometheus label name (letters, digits, _; not a "
        "digit or __ first)",
        "r.yaml:9 spec.cells[1].labels.__name__: not a Prometheus label name (letters, digits, _; not a "
        "digit or __ first)",
    ]


def test_a_cells_prometheus_access_is_read_as_written() -> None:
    text = VALID.replace(
        "labels: {cluster: eu-2}}",
        "labels: {cluster: eu-2},\n       prometheusAccess: {bearerTokenFile: /s/eu-2/token, "
        "headers: {X-Scope-OrgID: eu-2}, caFile: /s/ca.pem}}",
    )
    access = load_release_text(text, source="r.yaml").cell("eu-2").prometheus_access

    assert access is not None
    assert (access.bearer_token_file, access.headers, access.ca_file) == (
        "/s/eu-2/token",
        {"X-Scope-OrgID": "eu-2"},
        "/s/ca.pem",
    )


def test_a_cells_prometheus_access_names_each_problem_and_never_a_header_value() -> None:
    access = (
        "{bearerTokenFile: /t, username: u, certFile: /c, "
        "headers: {Bad Name: x, authorization: 'Bearer s3cret', X-A: 'a,b', x-a: '==s3cret'}}"
    )
    text = VALID.replace(
        "labels: {cluster: eu-2}}", f"labels: {{cluster: eu-2}}, prometheusAccess: {access}}}"
    )
    problems = _problems(text)
    where = "r.yaml:9 spec.cells[1].prometheusAccess"
    value_rule = (
        "the value must be printable and non-empty, hold no ',', not start with '=' and have no "
        "spaces around it"
    )
    assert problems == [
        f"{where}: give bearerTokenFile or username and passwordFile, not both",
        f"{where}: basic auth needs both username and passwordFile",
        f"{where}: mutual TLS needs both certFile and keyFile",
        f"{where}.headers.Bad Name: not a header name (letters, digits and !#$%&'*+.^_`|~-)",
        f"{where}.headers.authorization: give credentials with bearerTokenFile or username and passwordFile",
        f"{where}.headers.X-A: {value_rule}",
        f"{where}.headers.x-a: given twice (header names are not case-sensitive)",
        f"{where}.headers.x-a: {value_rule}",
    ]
    assert not any("s3cret" in problem for problem in problems)


def test_a_cell_told_apart_by_labels_needs_cell_in_every_query_of_its_rollout_spec(tmp_path: Path) -> None:
    """Without ``{cell}`` a query on the shared Prometheus would read every cell's series: the
    release names each labelled cell and the metrics that cannot be narrowed; a cell with its own
    Prometheus and no labels is fine."""
    rollout = (ROOT / "config" / "rollouts" / "web.yaml").read_text(encoding="utf-8")
    assert rollout.count("{cell}}") == 3  # one per query
    blind = tmp_path / "blind.yaml"
    blind.write_text(rollout.replace('code=~"5.."{cell}', 'code=~"5.."'), encoding="utf-8")
    problems = _problems(VALID.replace("config/rollouts/web.yaml", str(blind)))
    expected = (
        "spec.cells[{}].labels: the rollout spec's metric(s) 'error-rate' have no {{cell}} placeholder, so "
        "these labels cannot narrow their queries to this cell: add {{cell}} at the end of each "
        "selector's matchers, as the default metrics do"
    )
    assert problems == [f"r.yaml:8 {expected.format(0)}", f"r.yaml:9 {expected.format(1)}"]


def test_field_problems_name_the_camel_case_path() -> None:
    text = (
        VALID.replace("workPool: p-eu-2", "workpool: p-eu-2").replace("concurrency: 1", "concurrency: 0")
        + "  onFailure: rollback-everything\n"
    )
    problems = _problems(text)
    assert any(p.startswith("r.yaml:9 spec.cells[1].workPool: ") for p in problems), problems
    assert any(p.startswith("r.yaml:9 spec.cells[1].workpool: ") and "workPool" in p for p in problems), (
        problems
    )
    assert any(p.startswith("r.yaml:13 spec.waves[1].concurrency: ") for p in problems), problems
    assert any(p.startswith("r.yaml:14 spec.onFailure: ") and "rollback-all" in p for p in problems), problems


@pytest.mark.parametrize(
    ("rollout", "expected"),
    [
        (
            "config/rollouts/nope.yaml",
            "r.yaml:5 spec.rollout: config/rollouts/nope.yaml: no such rollout spec",
        ),
        ("config/releases/web.yaml", "r.yaml:5 spec.rollout: config/releases/web.yaml:"),
    ],
)
def test_the_rollout_spec_it_names_must_exist_and_be_valid(rollout: str, expected: str) -> None:
    (problem,) = _problems(VALID.replace("config/rollouts/web.yaml", rollout))
    assert problem.startswith(expected), problem
    relative = "; a relative path is read from the current directory, as the cells' workers read it"
    assert problem.endswith(relative) == rollout.endswith("nope.yaml")  # only for one not found


def test_spec_validate_tells_a_release_from_a_rollout_by_its_kind(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(VALID.replace("workPool: p-us-1", "workPool: ''"))
    out = io.StringIO()

    status = validate_files([EXAMPLE, ROOT / "config" / "rollouts" / "web.yaml", broken], out)

    lines = out.getvalue().splitlines()
    assert status == 1
    assert lines[:2] == [f"{EXAMPLE}: ok", f"{ROOT / 'config' / 'rollouts' / 'web.yaml'}: ok"]
    assert lines[2].startswith(f"{broken}:10 spec.cells[2].workPool: ")


def test_the_release_schema_names_the_yaml_keys() -> None:
    schema = json_schema("Release")
    cell = schema["$defs"]["Cell"]["properties"]
    assert {"name", "context", "inCluster", "workPool", "prometheus", "labels", "target"} <= set(cell)
    assert schema["properties"]["kind"]["const"] == "Release"


def test_health_names_the_rollout_specs_ratio_metrics_and_narrows_alerts_to_the_cell() -> None:
    text = VALID + (
        "  health:\n"
        "    maxRates: {error-rate: 0.02, latency: 0.1, nope: 1.5}\n"
        '    alerts: \'ALERTS{alertstate="firing", team="{team}"}\'\n'
    )
    assert _problems(text) == [
        "r.yaml:15 spec.health.maxRates.nope: must be a rate above 0, at most 1",
        "r.yaml:15 spec.health.maxRates.latency: no ratio metric 'latency' in config/rollouts/web.yaml "
        "(its ratio metrics: error-rate)",
        "r.yaml:15 spec.health.maxRates.nope: no ratio metric 'nope' in config/rollouts/web.yaml "
        "(its ratio metrics: error-rate)",
        "r.yaml:16 spec.health.alerts: cells told apart by labels need {cell} in the query (at the end of a "
        "selector's matchers), or it reads every cell's alerts",
        "r.yaml:16 spec.health.alerts: unknown placeholder(s) team (it may use namespace, app, cell)",
    ]
    fine = VALID + "  health: {maxRates: {error-rate: 0.02}, alerts: 'ALERTS{alertstate=\"firing\"{cell}}'}\n"
    health = load_release_text(fine).spec.health
    assert health is not None
    assert (health.window, health.max_rates) == (timedelta(minutes=5), {"error-rate": 0.02})


def test_a_bake_compares_with_later_waves_and_the_last_waves_with_its_history() -> None:
    body = load_release_text(VALID).spec
    assert body.bake_against(0) == "later-waves"
    assert body.bake_against(1) == "history"  # no later waves: its cells before the release
    explicit = VALID.replace(
        "    - {cells: [eu-2, us-1], concurrency: 1, maxFailures: 1}",
        "    - {cells: [eu-2, us-1], concurrency: 1, maxFailures: 1, bake: {against: history}}",
    ).replace("bake: {minDuration: 5m}", "bake: {minDuration: 5m, against: history}")
    body = load_release_text(explicit).spec
    assert (body.bake_against(0), body.bake_against(1)) == ("history", "history")
