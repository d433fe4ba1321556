"""A Prometheus behind TLS with a private CA and basic auth (its own ``--web.config.file``),
reached through the environment variables a worker or a command reads (`metrics_from_env`), and
by a release's process with a cell's own ``prometheusAccess`` (`flows.release.cell_metrics`)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from analysis.observations import RatioCounts
from canaryflow.cells import cell_run
from canaryflow.dev.processes import free_port, wait_until
from canaryflow.environment import metrics_from_env
from canaryflow.errors import InputError, MetricsError, TransientError
from canaryflow.metrics.port import MetricQuery
from canaryflow.spec import load_release_text
from tests.fixtures.prometheus import prometheus_binary

pytestmark = pytest.mark.prometheus
ROLLOUT = Path(__file__).resolve().parents[3] / "config" / "rollouts" / "web.yaml"

USER, PASSWORD = "canaryflow", "prometheus-test-password"
#: bcrypt (cost 4) of PASSWORD: Prometheus's web config keeps only the hash.
PASSWORD_HASH = "$2b$04$K9quwjQmklyaeNvJQ/OwMOoMPlQ1Tv8PZpA6rniG/w34r2DHwcGh2"
QUERY = MetricQuery("error-rate", "ratio", {"bad": "vector(1)", "total": "vector(4)"})


def _pem_pair(
    subject: str, issuer_key: ec.EllipticCurvePrivateKey | None = None, issuer: x509.Certificate | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return key, builder.sign(issuer_key or key, hashes.SHA256())


def _write(path: Path, key: ec.EllipticCurvePrivateKey | None, cert: x509.Certificate) -> Path:
    data = cert.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A Prometheus serving https with a certificate of a private CA and basic auth; its URL and
    the CA's certificate file."""
    workdir = tmp_path_factory.mktemp("secured-prometheus")
    ca_key, ca = _pem_pair("canaryflow test CA")
    server_key, server = _pem_pair("127.0.0.1", ca_key, ca)
    ca_file = _write(workdir / "ca.pem", None, ca)
    cert_file = _write(workdir / "server.pem", server_key, server)
    web = workdir / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {cert_file}\n  key_file: {cert_file.with_suffix('.key')}\n"
        f"basic_auth_users:\n  {USER}: '{PASSWORD_HASH}'\n"
    )
    (workdir / "prometheus.yml").write_text("global: {scrape_interval: 1m}\n")
    port = free_port()
    with (workdir / "log").open("wb") as log:
        process = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.config.file={web}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"https://127.0.0.1:{port}"
    try:
        trusted = ssl.create_default_context(cafile=ca_file)
        with httpx.Client(verify=trusted, auth=(USER, PASSWORD), timeout=2) as client:

            def ready() -> bool:
                assert process.poll() is None, (workdir / "log").read_text()
                try:
                    return client.get(f"{url}/-/ready").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(ready, timeout=30, what=f"{url}/-/ready")
        yield url, ca_file
    finally:
        process.terminate()
        process.wait(timeout=15)


def _observe(env: dict[str, str]) -> RatioCounts:
    return _counts(metrics_from_env(env))


def _counts(metrics: Any) -> RatioCounts:
    """The counts of `QUERY` through the source `metrics` (closed after)."""
    with metrics as source:
        observed = source.observe(
            QUERY, namespace="shop", app="web", track="canary", end=dt.datetime.now(dt.UTC),
            window=dt.timedelta(seconds=30),
        )  # fmt: skip
    assert isinstance(observed, RatioCounts)
    return observed


def test_a_prometheus_behind_a_private_ca_and_basic_auth_is_queried_from_the_environment(
    secured: tuple[str, Path], tmp_path: Path
) -> None:
    url, ca_file = secured
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")  # as a mounted Secret often ends
    env = {
        "CANARYFLOW_PROMETHEUS_URL": url,
        "CANARYFLOW_PROMETHEUS_CA_FILE": str(ca_file),
        "CANARYFLOW_PROMETHEUS_USERNAME": USER,
        "CANARYFLOW_PROMETHEUS_PASSWORD_FILE": str(password_file),
    }
    assert _observe(env) == RatioCounts(bad=1.0, total=4.0)


def test_a_wrong_password_is_refused_and_not_retried_as_an_outage(
    secured: tuple[str, Path],
) -> None:
    url, ca_file = secured
    env = {
        "CANARYFLOW_PROMETHEUS_URL": url,
        "CANARYFLOW_PROMETHEUS_CA_FILE": str(ca_file),
        "CANARYFLOW_PROMETHEUS_USERNAME": USER,
        "CANARYFLOW_PROMETHEUS_PASSWORD": "not-the-password",
    }
    with pytest.raises(MetricsError, match="401") as refused:
        _observe(env)
    assert not isinstance(refused.value, TransientError)


def test_without_the_ca_the_server_is_not_trusted(secured: tuple[str, Path]) -> None:
    url, _ = secured
    env = {
        "CANARYFLOW_PROMETHEUS_URL": url,
        "CANARYFLOW_PROMETHEUS_USERNAME": USER,
        "CANARYFLOW_PROMETHEUS_PASSWORD": PASSWORD,
    }
    with metrics_from_env(env) as source:  # type: ignore[attr-defined]
        assert not source.is_online()
    with pytest.raises(MetricsError, match=r"CERTIFICATE_VERIFY_FAILED.*set CANARYFLOW_PROMETHEUS_CA_FILE"):
        _observe(env)


def _release(url: str, access: str) -> str:
    """A release of two cells on the Prometheus at `url`: ``own`` with `access` as its
    prometheusAccess, ``plain`` without one."""
    return f"""\
apiVersion: canaryflow/v1
kind: Release
metadata: {{name: web}}
spec:
  rollout: {ROLLOUT}
  cells:
    - {{name: own, context: own, workPool: p-own, prometheus: '{url}', prometheusAccess: {access}}}
    - {{name: plain, context: plain, workPool: p-plain, prometheus: '{url}'}}
  waves:
    - {{cells: [own, plain]}}
"""


def test_a_release_reads_a_cell_with_its_own_access_instead_of_its_processs(
    secured: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.release import cell_metrics

    url, ca_file = secured
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    access = f"{{username: {USER}, passwordFile: '{password_file}', caFile: '{ca_file}'}}"
    release = load_release_text(_release(url, access), source="release.yaml")
    # The release process's own settings: another Prometheus's token, and no CA for this one.
    monkeypatch.setenv("CANARYFLOW_PROMETHEUS_BEARER_TOKEN", "another-prometheus-token")

    def observe(cell: str) -> RatioCounts:
        return _counts(cell_metrics(cell_run(release, cell, image="web:2", triggered_by="test")))

    assert observe("own") == RatioCounts(bad=1.0, total=4.0)
    with pytest.raises(MetricsError, match="CERTIFICATE_VERIFY_FAILED"):  # the process's settings
        observe("plain")


def test_a_cells_access_file_that_cannot_be_read_is_one_error_naming_the_cell(tmp_path: Path) -> None:
    from flows.release import cell_metrics

    access = f"{{bearerTokenFile: '{tmp_path / 'missing-token'}'}}"
    release = load_release_text(_release("https://127.0.0.1:9", access), source="release.yaml")

    with pytest.raises(InputError) as refused:
        cell_metrics(cell_run(release, "own", image="web:2", triggered_by="test"))
    assert str(refused.value).startswith(
        "cell own's prometheusAccess: CANARYFLOW_PROMETHEUS_BEARER_TOKEN_FILE: cannot read the secret file "
    ), refused.value
