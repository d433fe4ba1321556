"""The CLI skeleton: the whole command tree exists, --help works everywhere, unfinished commands
say so with exit code 2, and our errors become one line and a distinct exit code."""

from __future__ import annotations

import subprocess
import sys

import pytest

from canaryflow.cli import root as cli
from canaryflow.errors import NoDataError

COMMANDS = [
    ["version"],
    ["replay"],
    ["spec", "validate"],
    ["spec", "schema"],
    ["rollout"],
    ["status"],
    ["promote"],
    ["abort"],
    ["demo"],
    ["webhook", "serve"],
    ["dev", "kube", "up"],
    ["dev", "kube", "down"],
    ["dev", "kube", "env"],
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "canaryflow", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_version_prints_the_distribution_version() -> None:
    from importlib.metadata import version

    result = run("version")
    assert result.returncode == 0
    assert result.stdout.strip() == version("canaryflow")


def test_unknown_command_is_a_usage_error() -> None:
    result = run("frobnicate")
    assert result.returncode == 2
    assert "No such command" in result.stderr


def test_version_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; from canaryflow.cli import main\n"
        "try:\n    main(['version'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('prefect', 'kubernetes', 'fastapi', 'scipy', 'prometheus_api_client') "
        "if m in sys.modules]\nprint(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_our_errors_become_one_line_and_their_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing() -> None:
        raise NoDataError("no samples for error-rate (canary)", query="sum(rate(x[1m]))")

    monkeypatch.setattr(cli, "app", _app_with(failing))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["boom"])
    assert exit_info.value.code == NoDataError.exit_code
    err = capsys.readouterr().err
    assert err.strip() == "canaryflow: error: no samples for error-rate (canary)"


def test_debug_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing() -> None:
        raise NoDataError("nothing")

    monkeypatch.setattr(cli, "app", _app_with(failing))
    with pytest.raises(SystemExit):
        cli.main(["--debug", "boom"])
    assert "Traceback" in capsys.readouterr().err


def _app_with(command: object) -> object:
    import typer

    app = typer.Typer()

    @app.callback()
    def _root(debug: bool = typer.Option(False, "--debug")) -> None:
        pass

    app.command("boom")(command)  # type: ignore[arg-type]
    return app
