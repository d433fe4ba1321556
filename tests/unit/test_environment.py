"""Prometheus access from the environment: what each variable sets, and one clear error for each
wrong combination, before any query."""

from __future__ import annotations

from pathlib import Path

import pytest

from canaryflow.environment import metrics_from_env
from canaryflow.errors import InputError
from canaryflow.metrics.prometheus import PrometheusConfig, PrometheusMetricsSource

URL = {"CANARYFLOW_PROMETHEUS_URL": "https://prometheus.example:9090"}


def _config(env: dict[str, str]) -> PrometheusConfig:
    source = metrics_from_env({**URL, **env})
    assert isinstance(source, PrometheusMetricsSource)
    source.close()
    return source.config


def test_credentials_headers_and_tls_files_reach_the_config(tmp_path: Path) -> None:
    token, ca, cert, key = (tmp_path / name for name in ("token", "ca.pem", "client.pem", "client.key"))
    token.write_text("eyJ-token\n")
    for path in (ca, cert, key):
        path.write_text("PEM")
    config = _config(
        {
            "CANARYFLOW_PROMETHEUS_BEARER_TOKEN_FILE": str(token),
            "CANARYFLOW_PROMETHEUS_HEADERS": "X-Scope-OrgID=team-a, X-Extra = 1",
            "CANARYFLOW_PROMETHEUS_CA_FILE": str(ca),
            "CANARYFLOW_PROMETHEUS_CERT_FILE": str(cert),
            "CANARYFLOW_PROMETHEUS_KEY_FILE": str(key),
        }
    )
    assert config.bearer_token == "eyJ-token"
    assert dict(config.headers) == {"X-Scope-OrgID": "team-a", "X-Extra": "1"}
    assert (config.ca_file, config.client_cert) == (str(ca), (str(cert), str(key)))
    basic = _config({"CANARYFLOW_PROMETHEUS_USERNAME": "u", "CANARYFLOW_PROMETHEUS_PASSWORD": "p"})
    assert (basic.basic_auth, basic.bearer_token) == (("u", "p"), None)
    assert _config({}) == PrometheusConfig(url=URL["CANARYFLOW_PROMETHEUS_URL"])


@pytest.mark.parametrize(
    ("env", "said"),
    [
        (
            {"CANARYFLOW_PROMETHEUS_BEARER_TOKEN": "t", "CANARYFLOW_PROMETHEUS_USERNAME": "u"},
            "CANARYFLOW_PROMETHEUS_BEARER_TOKEN and CANARYFLOW_PROMETHEUS_USERNAME/PASSWORD are both set",
        ),
        ({"CANARYFLOW_PROMETHEUS_USERNAME": "u"}, "basic auth needs both"),
        ({"CANARYFLOW_PROMETHEUS_PASSWORD": "p"}, "basic auth needs both"),
        (
            {"CANARYFLOW_PROMETHEUS_BEARER_TOKEN": "t", "CANARYFLOW_PROMETHEUS_BEARER_TOKEN_FILE": "f"},
            "set CANARYFLOW_PROMETHEUS_BEARER_TOKEN or CANARYFLOW_PROMETHEUS_BEARER_TOKEN_FILE, not both",
        ),
        (
            {"CANARYFLOW_PROMETHEUS_BEARER_TOKEN_FILE": "/nonexistent/token"},
            "CANARYFLOW_PROMETHEUS_BEARER_TOKEN_FILE: cannot read the secret file /nonexistent/token",
        ),
        ({"CANARYFLOW_PROMETHEUS_HEADERS": "X-Scope-OrgID"}, "entry 1 is not Name=value"),
        ({"CANARYFLOW_PROMETHEUS_HEADERS": "A=1,Bad Name=1"}, "entry 2 is not Name=value"),
        ({"CANARYFLOW_PROMETHEUS_HEADERS": "X-Api-Key: Bearer x=="}, "entry 1 is not Name=value"),
        ({"CANARYFLOW_PROMETHEUS_HEADERS": "X-Api-Key="}, "entry 1 is not Name=value"),
        ({"CANARYFLOW_PROMETHEUS_HEADERS": "c2VjcmV0="}, "entry 1 is not Name=value"),  # a token, not a name
        (
            {"CANARYFLOW_PROMETHEUS_HEADERS": "A=1,c2VjcmV0=="},
            "entry 2 is not Name=value",
        ),  # nor "=" its value
        (
            {"CANARYFLOW_PROMETHEUS_BEARER_TOKEN": "Bearer x\nx"},
            "CANARYFLOW_PROMETHEUS_BEARER_TOKEN holds a line break or another control character",
        ),
        ({"CANARYFLOW_PROMETHEUS_HEADERS": "authorization=Bearer x"}, "not an Authorization header"),
        ({"CANARYFLOW_PROMETHEUS_HEADERS": "A=1,a=2"}, "'a' is given twice"),
        ({"CANARYFLOW_PROMETHEUS_CA_FILE": "/nonexistent/ca.pem"}, "CANARYFLOW_PROMETHEUS_CA_FILE="),
        ({"CANARYFLOW_PROMETHEUS_CERT_FILE": __file__}, "mutual TLS needs both"),
    ],
)
def test_each_wrong_setting_is_one_error_naming_it(env: dict[str, str], said: str) -> None:
    with pytest.raises(InputError) as refused:
        metrics_from_env({**URL, **env})
    assert said in str(refused.value)
    assert "Bearer x" not in str(refused.value)  # a header's value may be a credential


def test_a_reports_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    from canaryflow.environment import reports_dir

    file = tmp_path / "passwd"
    file.write_text("root:x:0:0\n")
    assert reports_dir({"CANARYFLOW_REPORTS_DIR": str(tmp_path / "new")}) == tmp_path / "new"
    with pytest.raises(InputError, match=r"CANARYFLOW_REPORTS_DIR='.*passwd' is not a directory"):
        reports_dir({"CANARYFLOW_REPORTS_DIR": str(file)})
