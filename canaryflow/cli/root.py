"""The command tree, the global options, and how every error reaches the terminal.

Every command is thin: it parses arguments, imports what does the work *inside* the command, and
lets `CanaryflowError` travel up to `main`. `main` prints every error as one line on standard
error, ``canaryflow: error: ...``, and exits with the code of the README's table (usage errors 2,
our errors their family's code, anything unexpected 1 with a hint, a Ctrl-C ``canaryflow:
interrupted`` and 130); ``--debug`` (accepted anywhere on the command line, or
``CANARYFLOW_DEBUG=1``) adds the traceback and lets Prefect log to the terminal.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TextIO, cast

import typer
from typer._click import exceptions as click  # the click that typer vendors
from typer._click.core import Command
from typer._click.utils import PacifyFlushWrapper

from canaryflow.cli import demo as demo_command
from canaryflow.cli import (
    devtools,
    exporter,
    getview,
    historyview,
    notifications,
    releases,
    replay,
    rollouts,
    specs,
    statusview,
    steering,
    undo,
    webhook,
)
from canaryflow.cli.help import environment_help
from canaryflow.errors import CanaryflowError, exit_code_for

__all__ = ["app", "main"]

_TYPER = {"no_args_is_help": True, "rich_markup_mode": None, "add_completion": False}

app = typer.Typer(
    name="canaryflow",
    help="Progressive delivery for Kubernetes: replica-weight canaries, judged by sequential "
    "statistics, run as Prefect flows.",
    pretty_exceptions_enable=False,
    **_TYPER,  # type: ignore[arg-type]
)
spec_app = typer.Typer(
    help="Validate rollout, release and notifications specs; print their schema.",
    **_TYPER,  # type: ignore[arg-type]
)
webhook_app = typer.Typer(help="Receive git pushes and start rollouts.", **_TYPER)  # type: ignore[arg-type]
notifications_app = typer.Typer(
    help="Tell people about rollouts: Prefect automations and notification blocks.",
    **_TYPER,  # type: ignore[arg-type]
)
metrics_app = typer.Typer(help="The controller's own metrics, for Prometheus.", **_TYPER)  # type: ignore[arg-type]
dev_app = typer.Typer(help="Local stacks: a Kubernetes control plane, a Prefect server.", **_TYPER)  # type: ignore[arg-type]
kube_app = typer.Typer(
    help="A real Kubernetes control plane on loopback (etcd, kube-apiserver, controllers, kwok).",
    **_TYPER,  # type: ignore[arg-type]
)
prefect_app = typer.Typer(
    help="canaryflow's local Prefect server: the default API of rollout, promote and abort.",
    **_TYPER,  # type: ignore[arg-type]
)
app.add_typer(spec_app, name="spec")
app.add_typer(webhook_app, name="webhook")
app.add_typer(notifications_app, name="notifications")
app.add_typer(metrics_app, name="metrics")
app.add_typer(dev_app, name="dev")
dev_app.add_typer(kube_app, name="kube")
dev_app.add_typer(prefect_app, name="prefect")


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and Prefect's logs (anywhere on the line).")
    ] = False,
) -> None:
    """(``--debug`` is taken off the command line by `main`; this declares it for ``--help``.)"""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("canaryflow")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


@app.command()
def version() -> None:
    """Print the canaryflow version."""
    typer.echo(_version())


def _register(group: typer.Typer, name: str, command: Callable[..., Any], *, env: str | None = None) -> None:
    epilog = environment_help(env or name)
    group.command(name, epilog=epilog or None)(command)


_register(app, "check", rollouts.check)
_register(app, "rollout", rollouts.rollout)
_register(app, "status", statusview.status)
_register(app, "history", historyview.history)
_register(app, "get", getview.get)
_register(app, "promote", steering.promote)
_register(app, "abort", steering.abort)
_register(app, "pause", steering.pause)
_register(app, "resume", steering.resume)
_register(app, "undo", undo.undo)
_register(app, "retry", rollouts.retry)
_register(app, "release", releases.release)
_register(app, "replay", replay.replay)
_register(app, "demo", demo_command.demo)
_register(spec_app, "validate", specs.validate)
_register(spec_app, "schema", specs.schema)
_register(webhook_app, "serve", webhook.serve, env="webhook serve")
_register(metrics_app, "serve", exporter.serve, env="metrics serve")
_register(notifications_app, "apply", notifications.apply, env="notifications apply")
_register(kube_app, "up", devtools.kube_up, env="dev")
_register(kube_app, "down", devtools.kube_down, env="dev")
_register(kube_app, "env", devtools.kube_env, env="dev")
_register(prefect_app, "up", devtools.prefect_up, env="dev")
_register(prefect_app, "down", devtools.prefect_down, env="dev")
_register(prefect_app, "env", devtools.prefect_env, env="dev")
_register(prefect_app, "init", devtools.prefect_init, env="dev")


def _fail(message: str, code: int, *, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    typer.echo(f"canaryflow: error: {message}", err=True)
    return code


def _usage(exc: click.UsageError) -> str:
    where = exc.ctx.command_path if exc.ctx is not None else "canaryflow"
    message = " ".join(exc.format_message().split())
    return f"{message} (see: {where} --help)"


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the command line; every error becomes one line and the exit code of the README's table."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("CANARYFLOW_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    if args == ["version"]:  # answered before the command tree is built (typer's adapters are slow)
        typer.echo(_version())
        sys.exit(0)
    before = os.environ.get("CANARYFLOW_DEBUG")
    if debug:
        os.environ["CANARYFLOW_DEBUG"] = "1"  # what `canaryflow.cli.output.debugging` reads
    try:
        code = _run(args, debug=debug)
    finally:
        if before is None:
            os.environ.pop("CANARYFLOW_DEBUG", None)
        else:
            os.environ["CANARYFLOW_DEBUG"] = before
    sys.exit(code)


def _run(args: list[str], *, debug: bool) -> int:
    command = typer.main.get_command(app)
    try:
        code = _invoke(command, args)
    except click.NoArgsIsHelpError as exc:
        typer.echo(exc.ctx.get_help() if exc.ctx is not None else "")
        return 2
    except click.UsageError as exc:
        return _fail(_usage(exc), 2, debug=debug)
    except (typer.Abort, KeyboardInterrupt):
        if debug:
            traceback.print_exc()
        typer.echo("canaryflow: interrupted", err=True)
        return 130
    except CanaryflowError as exc:
        return _fail(exc.summary(), exit_code_for(exc), debug=debug)
    except click.ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code, debug=debug)
    except Exception as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        hint = "" if debug else " (run again with --debug for the traceback)"
        return _fail(f"unexpected {type(exc).__name__}: {detail}{hint}", 1, debug=debug)
    return code if isinstance(code, int) else 0


def _invoke(command: Command, args: list[str]) -> Any:
    """Parse `args` and run the command, as typer's ``main(standalone_mode=False)`` does (a closed
    pipe on the output, as in ``| head``, ends it quietly with 1), except that a Ctrl-C stays a
    KeyboardInterrupt: typer turns it into a silent exit 130, and `_run` says it."""
    try:
        with command.make_context("canaryflow", args) as context:
            return command.invoke(context)
    except typer.Exit as exc:  # also what `ctx.exit` raises
        return exc.exit_code
    except EOFError as exc:  # end of input at a prompt, as typer treats it
        typer.echo(err=True)
        raise typer.Abort from exc
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        sys.stdout = cast(TextIO, PacifyFlushWrapper(sys.stdout))  # nothing more reaches the pipe
        sys.stderr = cast(TextIO, PacifyFlushWrapper(sys.stderr))
        return 1
