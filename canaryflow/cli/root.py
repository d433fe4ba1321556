"""The command tree, the global options, and how errors reach the terminal.

Every command is thin: it parses arguments, imports the module that does the work *inside* the
command, and lets `CanaryflowError` travel up to `main`, which prints one line and exits with the
error's code (``--debug`` prints the traceback instead). A command whose capability has not landed
yet raises `NotImplementedYetError` (exit 2).
"""

from __future__ import annotations

import sys
import traceback
from typing import Annotated, NoReturn

import typer

from canaryflow.cli import demo as demo_command
from canaryflow.cli import devtools, replay, rollouts, specs, webhook
from canaryflow.errors import CanaryflowError, exit_code_for

__all__ = ["app", "main"]

app = typer.Typer(
    name="canaryflow",
    help="Progressive delivery for Kubernetes: replica-weight canaries, judged by sequential "
    "statistics, run as Prefect flows.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
spec_app = typer.Typer(help="Validate rollout specs and print their JSON schema.", no_args_is_help=True)
webhook_app = typer.Typer(help="Receive git pushes and start rollouts.", no_args_is_help=True)
dev_app = typer.Typer(help="Developer tooling: a local Kubernetes control plane.", no_args_is_help=True)
kube_app = typer.Typer(
    help="A real Kubernetes control plane on loopback (etcd, apiserver, "
    "controller-manager, scheduler, kwok).",
    no_args_is_help=True,
)
app.add_typer(spec_app, name="spec")
app.add_typer(webhook_app, name="webhook")
app.add_typer(dev_app, name="dev")
dev_app.add_typer(kube_app, name="kube")


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
) -> None:
    ctx.obj = {"debug": debug}


@app.command()
def version() -> None:
    """Print the canaryflow version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        typer.echo(dist_version("canaryflow"))
    except PackageNotFoundError:  # running from a source tree that is not installed
        typer.echo("0+unknown")


app.command()(replay.replay)
app.command()(rollouts.rollout)
app.command()(rollouts.status)
app.command()(rollouts.promote)
app.command()(rollouts.abort)
app.command()(demo_command.demo)
spec_app.command("validate")(specs.validate)
spec_app.command("schema")(specs.schema)
webhook_app.command("serve")(webhook.serve)
kube_app.command("up")(devtools.kube_up)
kube_app.command("down")(devtools.kube_down)
kube_app.command("env")(devtools.kube_env)


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: run the app, turn our errors into one line and a distinct exit code.

    Usage errors, `--help` and Ctrl-C are handled by typer itself (standalone mode, exit 2 and 1);
    anything that is a `CanaryflowError` becomes ``canaryflow: error: ...`` and its exit code.
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="canaryflow", standalone_mode=True)
    except CanaryflowError as exc:
        if debug:
            traceback.print_exc()
        message = str(exc).strip() or type(exc).__name__
        typer.echo(f"canaryflow: error: {message}", err=True)
        sys.exit(exit_code_for(exc))
    sys.exit(0)
