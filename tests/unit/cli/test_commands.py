"""The CLI skeleton: the whole command tree exists, --help works everywhere, unfinished commands
say so with exit code 2, and our errors become one line and a distinct exit code."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from canaryflow.cli import root as cli
from canaryflow.errors import NoDataError

COMMANDS = [
    ["version"],
    ["check"],
    ["replay"],
    ["spec", "validate"],
    ["spec", "schema"],
    ["rollout"],
    ["status"],
    ["promote"],
    ["abort"],
    ["pause"],
    ["resume"],
    ["undo"],
    ["retry"],
    ["release"],
    ["history"],
    ["get"],
    ["demo"],
    ["webhook", "serve"],
    ["metrics", "serve"],
    ["notifications", "apply"],
    ["dev", "kube", "up"],
    ["dev", "kube", "down"],
    ["dev", "kube", "env"],
    ["dev", "prefect", "up"],
    ["dev", "prefect", "down"],
    ["dev", "prefect", "env"],
    ["dev", "prefect", "init"],
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "canaryflow", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_that_fits_80_columns(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "canaryflow", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    assert [line for line in result.stdout.splitlines() if len(line) > 80] == []


def test_every_port_option_accepts_only_ports() -> None:
    """--port is 1-65535 wherever it is (0, "no metrics", only where the help says so); a value
    outside is a usage error before the command starts."""
    import typer

    def ports(command: object, path: str) -> list[tuple[str, str, object, object]]:
        found: list[tuple[str, str, object, object]] = []
        for name, sub in getattr(command, "commands", {}).items():
            found += ports(sub, f"{path} {name}")
        for param in getattr(command, "params", []):
            for opt in param.opts:
                if opt.endswith("port"):
                    found.append((path, opt, getattr(param, "min", None), getattr(param, "max", None)))
        return found

    found = ports(typer.main.get_command(cli.app), "canaryflow")
    assert {(path, opt) for path, opt, _, _ in found} >= {
        ("canaryflow webhook serve", "--port"),
        ("canaryflow webhook serve", "--metrics-port"),
        ("canaryflow metrics serve", "--port"),
    }
    for path, opt, low, high in found:
        assert (low, high) == ((0, 65535) if opt == "--metrics-port" else (1, 65535)), f"{path} {opt}"


def test_version_prints_the_distribution_version() -> None:
    from importlib.metadata import version

    result = run("version")
    assert result.returncode == 0
    assert result.stdout.strip() == version("canaryflow")


def test_unknown_command_is_a_usage_error() -> None:
    result = run("frobnicate")
    assert result.returncode == 2
    assert "No such command" in result.stderr


def test_a_ctrl_c_in_any_command_is_one_line_and_exit_130(tmp_path: Path) -> None:
    """A real SIGINT while `replay` waits for its log: a named pipe whose writer the test opens only
    once the command has opened it for reading, so the command is inside its work, not importing."""
    pipe = tmp_path / "log.json"
    os.mkfifo(pipe)
    process = subprocess.Popen(
        [sys.executable, "-m", "canaryflow", "replay", str(pipe)],
        stderr=subprocess.PIPE,
        text=True,
        # a test run started in the background ignores SIGINT, and its children would inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    with pipe.open("w"):  # returns once the command has opened the pipe; it now waits for data
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert (process.returncode, err) == (130, "canaryflow: interrupted\n")


def test_output_to_a_closed_pipe_ends_quietly_with_1() -> None:
    """As ``canaryflow spec schema | head -1`` does once head has what it wants."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "canaryflow", "spec", "schema"],
            stdout=writer, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(writer)
    assert (result.returncode, result.stderr) == (1, "")


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


def test_debug_is_accepted_anywhere_on_the_line(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    plain = run("check", missing, "--image", "registry.example.com/a:1")
    late = run("check", missing, "--image", "registry.example.com/a:1", "--debug")

    assert plain.returncode == late.returncode == 1
    assert plain.stderr.strip().splitlines() == [
        f"canaryflow: error: {missing}: no such rollout spec (give the path of one; examples are in "
        "config/rollouts/)"
    ]
    assert "Traceback" in late.stderr
    assert late.stderr.strip().splitlines()[-1] == plain.stderr.strip()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["frobnicate"], "No such command 'frobnicate'. (see: canaryflow --help)"),
        (["rollout"], "Missing argument 'SPEC'. (see: canaryflow rollout --help)"),
        (["status", "--zzz"], "No such option: --zzz (see: canaryflow status --help)"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str], words: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"canaryflow: error: {words}"]


def test_an_unexpected_error_is_one_line_with_the_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing() -> None:
        raise KeyError("boom")

    monkeypatch.setattr(cli, "app", _app_with(failing))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["boom"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        "canaryflow: error: unexpected KeyError: 'boom' (run again with --debug for the traceback)"
    ]


def test_help_names_required_options_and_the_environment() -> None:
    rollout = run("rollout", "--help").stdout
    assert "--image IMAGE" in rollout
    assert "[required unless --resume]" in " ".join(rollout.split())
    for name in ("KUBECONFIG", "CANARYFLOW_PROMETHEUS_URL", "PREFECT_API_URL", "CANARYFLOW_REPORTS_DIR"):
        assert name in rollout
    check = run("check", "--help").stdout
    assert "--image IMAGE" in check
    assert "[required]" in check
    assert "--debug" in run("--help").stdout
    assert "<bool>" not in run("--help").stdout


@pytest.mark.parametrize(
    ("since", "words"),
    [
        ("0d", "--since '0d': the window must be longer than zero, like 7d, 24h or 90m"),
        ("0m", "--since '0m': the window must be longer than zero, like 7d, 24h or 90m"),
        ("0h0m", "--since '0h0m': the window must be longer than zero, like 7d, 24h or 90m"),
        ("0ms", "--since '0ms': the window must be longer than zero, like 7d, 24h or 90m"),
        ("7x", "--since '7x': give a duration like 7d, 24h or 90m"),
        ("999999d", "--since '999999d': give at most 36500d (the history of a century)"),
        ("9999999999d", "--since '9999999999d': give a duration like 7d, 24h or 90m"),
        ("99999999999999999h", "--since '99999999999999999h': give a duration like 7d, 24h or 90m"),
    ],
)
def test_a_history_window_that_is_not_one_says_why(tmp_path: Path, since: str, words: str) -> None:
    result = run("history", "--since", since)
    assert result.returncode == 1
    assert result.stderr.strip() == f"canaryflow: error: {words}"


def test_every_setting_is_documented_in_the_readme() -> None:
    from canaryflow.environment import SETTINGS

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, flags=re.M))
    assert documented == {s.name for s in SETTINGS}


def test_status_stays_light(tmp_path: Path) -> None:
    code = (
        "import sys, os\n"
        f"os.environ['CANARYFLOW_REPORTS_DIR'] = {str(tmp_path)!r}\n"
        "from canaryflow.cli import main\n"
        "try:\n    main(['status'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('prefect', 'kubernetes', 'matplotlib', 'scipy', 'fastapi')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_promote_in_full_without_a_reason_is_a_usage_error_before_anything_is_asked() -> None:
    result = run("promote", "web-1", "--full")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "canaryflow: error: promote --full skips the remaining steps and their analysis: give --reason WHY"
    ]


def test_notifications_apply_names_every_missing_url_before_reaching_prefect(tmp_path: Path) -> None:
    spec = tmp_path / "n.yaml"
    spec.write_text(
        "apiVersion: canaryflow/v1\nkind: Notifications\nmetadata: {name: t}\nspec:\n  channels:\n"
        "    - {name: deploys, kind: slack, urlFrom: CANARYFLOW_TEST_SLACK_URL}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CANARYFLOW_TEST_SLACK_URL"}
    env["PREFECT_API_URL"] = "http://127.0.0.1:9/api"  # nothing answers there: never asked
    result = subprocess.run(
        [sys.executable, "-m", "canaryflow", "notifications", "apply", str(spec)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "canaryflow: error: set CANARYFLOW_TEST_SLACK_URL (channel deploys, unset) to the webhook URL "
        "(http:// or https://); nothing was changed"
    ]


def test_history_of_releases_with_prefect_is_a_usage_error() -> None:
    result = run("history", "--releases", "--prefect")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "canaryflow: error: --releases shows every release: give no TARGET and no --prefect"
    )


def test_unreadable_history_lines_are_skipped_with_a_warning_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "history.jsonl").write_text("{not json\n")
    result = subprocess.run(
        [sys.executable, "-m", "canaryflow", "history"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "CANARYFLOW_REPORTS_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"canaryflow: warning: 1 unreadable line(s) in {tmp_path / 'history.jsonl'} skipped"
    )


def _ended(tmp_path: Path, hours_ago: list[float]) -> dict[str, str]:
    from datetime import UTC, datetime, timedelta

    from canaryflow.history import HistoryRecord, append_history

    now = datetime.now(UTC)
    for n, ago in enumerate(hours_ago):
        finished = now - timedelta(hours=ago)
        record = HistoryRecord(
            rollout_id=f"web-{n}",
            target="shop/web",
            image=f"web:{n}",
            result="promoted",
            reason="judged",
            triggered_by="cli:test",
            started_at=finished - timedelta(minutes=10),
            finished_at=finished,
        )
        append_history(tmp_path, record)
    return {**os.environ, "CANARYFLOW_REPORTS_DIR": str(tmp_path)}


def _history(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "canaryflow", "history", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**env, "COLUMNS": "200"},
    )


def test_history_json_lists_the_records_newest_first_as_the_table_does(tmp_path: Path) -> None:
    import json

    env = _ended(tmp_path, [3.0, 2.0, 1.0])  # appended oldest first, as rollouts end
    shown = _history(env, "--json")
    table = _history(env)
    assert [r["rollout_id"] for r in json.loads(shown.stdout)["records"]] == ["web-2", "web-1", "web-0"]
    rows = [line.split()[3] for line in table.stdout.splitlines() if " web-" in line]
    assert rows == ["web-2", "web-1", "web-0"]


def test_a_window_shorter_than_a_day_gives_no_rate_a_day(tmp_path: Path) -> None:
    import json

    env = _ended(tmp_path, [2.0, 1.0])
    short = _history(env, "--since", "3h")
    assert "deployments: 2 in 3h; " in short.stdout
    assert "a day" not in short.stdout
    figures = json.loads(_history(env, "--since", "3h", "--json").stdout)["figures"]
    assert figures["deployments_per_day"] is None
    assert "deployments: 2 in 2d (1.00 a day); " in _history(env, "--since", "2d").stdout
    figures = json.loads(_history(env, "--since", "2d", "--json").stdout)["figures"]
    assert figures["deployments_per_day"] == 1.0


@pytest.mark.parametrize(
    "command",
    [
        ["promote", "shop/web"],
        ["promote", "shop/web", "--full", "--reason", "hotfix"],
        ["abort", "shop/web"],
        ["pause", "shop/web"],
        ["resume", "shop/web"],
        ["retry", "shop/web", "--reason", "flaky node"],
    ],
    ids=" ".join,
)
def test_a_rollout_id_of_the_wrong_shape_is_refused_before_prefect_is_asked(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "canaryflow", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"},  # nothing answers there
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "canaryflow: error: 'shop/web' is not a rollout id (lowercase letters, digits and '-', at most 63, "
        "like web-c455c59c): `canaryflow status` lists the rollouts"
    ]


@pytest.mark.parametrize(("given", "kind"), [("release", "Release"), ("Notifications", "Notifications")])
def test_spec_schema_takes_the_kind_in_any_case_and_shows_its_default_as_typed(given: str, kind: str) -> None:
    import json

    assert "[default: rollout]" in run("spec", "schema", "--help").stdout
    assert json.loads(run("spec", "schema").stdout)["properties"]["kind"]["const"] == "Rollout"
    assert json.loads(run("spec", "schema", "--kind", given).stdout)["properties"]["kind"]["const"] == kind


def test_history_of_releases_is_newest_first_with_no_rate_a_day_under_a_day(tmp_path: Path) -> None:
    import json
    from datetime import UTC, datetime, timedelta

    from canaryflow.releasehistory import ReleaseRecord, append_release

    now = datetime.now(UTC)
    for n, ago in enumerate([2.0, 1.0]):
        finished = now - timedelta(hours=ago)
        record = ReleaseRecord(
            release_id=f"demo-{n}", release="demo", image=f"web:{n}", outcome="released", reason="every wave",
            triggered_by="test", started_at=finished - timedelta(minutes=30), finished_at=finished,
            cells={"eu-1": "promoted"},
        )  # fmt: skip
        append_release(tmp_path, record)
    env = {**os.environ, "CANARYFLOW_REPORTS_DIR": str(tmp_path)}
    shown = json.loads(_history(env, "--releases", "--since", "3h", "--json").stdout)
    assert [r["release_id"] for r in shown["records"]] == ["demo-1", "demo-0"]
    assert shown["figures"]["releases_per_day"] is None
    assert "releases: 2 in 3h; " in _history(env, "--releases", "--since", "3h").stdout


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (
            '{"format": "canaryflow/observations@1", "interval_seconds": 30, "metrics": {}, "intervals": []}',
            "metrics: the log declares no metrics",
        ),
        ("{not json", "not JSON"),
    ],
)
def test_replay_of_a_log_it_cannot_judge_exits_2_with_one_line(
    tmp_path: Path, content: str, words: str
) -> None:
    log = tmp_path / "broken.json"
    log.write_text(content)
    result = run("replay", str(log))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"canaryflow: error: {log}: ")
    assert words in line
    assert result.stdout == ""
