"""The Prometheus test fixture skips without the binary, except on CI, where it fails."""

from __future__ import annotations

import pytest

from tests.fixtures import prometheus as fixture


def test_missing_binary_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fixture.shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        fixture.prometheus_binary()


def test_missing_binary_fails_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fixture.shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the Prometheus tests"):
        fixture.prometheus_binary()
