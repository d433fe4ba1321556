"""The `canaryflow` command line (typer lives here and nowhere else).

Every command is thin: it parses arguments, imports the module that does the work *inside* the
command (so `canaryflow version`, `--help` and `replay` start fast and never load Prefect,
Kubernetes or FastAPI unless they need them), and lets `CanaryflowError` travel up to `main`, which
prints one line and exits with the error's code (`--debug` prints the traceback instead).
A command whose capability has not landed yet raises `NotImplementedYetError` (exit 2).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from canaryflow.errors import CanaryflowError, NotImplementedYetError, exit_code_for

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


def _not_yet(what: str, issue: str) -> NoReturn:
    raise NotImplementedYetError(f"{what}: not implemented yet ({issue} has not landed)")


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


@app.command()
def replay(
    logs: Annotated[
        list[Path], typer.Argument(help="Observation logs (canaryflow/observations@1).", exists=False)
    ],
    config: Annotated[
        Path | None,
        typer.Option(help="Rollout spec whose analysis settings apply (default: the project's defaults)."),
    ] = None,
    judge: Annotated[str, typer.Option(help="sequential | kayenta")] = "sequential",
) -> None:
    """Re-run the judge over recorded observation logs (a backtest); one JSON line per interval."""
    from canaryflow.replay import run_replay

    raise typer.Exit(run_replay(logs, config=config, judge=judge, out=sys.stdout))


@spec_app.command("validate")
def spec_validate(
    files: Annotated[list[Path], typer.Argument(help="Rollout spec YAML files.")],
) -> None:
    """Check rollout specs; print every problem with file, line and path. Exit 1 when invalid."""
    from canaryflow.spec import validate_files

    raise typer.Exit(validate_files(files, sys.stdout))


@spec_app.command("schema")
def spec_schema() -> None:
    """Print the JSON schema of a rollout spec (for editors)."""
    import json

    from canaryflow.spec import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@app.command()
def rollout(
    spec: Annotated[Path, typer.Argument(help="Rollout spec YAML.")],
    image: Annotated[str | None, typer.Option(help="The new image for the target container.")] = None,
    resume: Annotated[bool, typer.Option(help="Resume or clean up an interrupted rollout.")] = False,
) -> None:
    """Roll out a new image of the spec's target, step by step, judged by the analysis."""
    from flows.commands import run_rollout

    outcome = run_rollout(spec, image, resume=resume)
    typer.echo(f"{outcome.rollout_id} {outcome.result}: {outcome.reason}")
    typer.echo(f"report: {outcome.report}")
    raise typer.Exit(0 if outcome.result == "promoted" else 1)


@app.command()
def status(
    rollout_id: Annotated[str | None, typer.Argument(help="Rollout id (default: all).")] = None,
) -> None:
    """Show rollouts: step, weights, the latest verdict and its evidence."""
    import os

    from rich.console import Console

    from flows.commands import render_status

    reports = Path(os.environ.get("CANARYFLOW_REPORTS_DIR", "reports"))
    if render_status(reports, rollout_id, Console()) == 0:
        _say(f"no rollouts reported in {reports}")


@app.command()
def promote(rollout_id: Annotated[str, typer.Argument(help="Rollout id.")]) -> None:
    """Approve a rollout waiting in a pause (same as approving in the Prefect UI)."""
    from flows.commands import answer

    run = answer(rollout_id, "approve", "approved with canaryflow promote")
    typer.echo(f"approved {rollout_id} (flow run {run})")


@app.command()
def abort(
    rollout_id: Annotated[str, typer.Argument(help="Rollout id.")],
    reason: Annotated[str, typer.Option(help="Why, recorded with the rollback.")] = "aborted",
) -> None:
    """Reject a rollout: roll its canary back."""
    from flows.commands import answer

    run = answer(rollout_id, "reject", reason)
    typer.echo(f"rejected {rollout_id} (flow run {run}): its canary is rolled back")


@app.command()
def demo(
    cluster: Annotated[str, typer.Option(help="sim | kube")] = "sim",
    ui: Annotated[bool, typer.Option(help="Also start `prefect server` to watch the runs.")] = False,
) -> None:
    """Run a good and a bad rollout on the embedded stack and show what was decided."""
    from canaryflow.demo import run_demo

    raise typer.Exit(run_demo(cluster=cluster, ui=ui))


@webhook_app.command("serve")
def webhook_serve(
    config: Annotated[Path, typer.Option(help="Routes file (YAML).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
) -> None:
    """Serve POST /hooks/github and /hooks/gitlab, starting rollouts for pushes.

    Secrets come from CANARYFLOW_GITHUB_SECRET / CANARYFLOW_GITLAB_TOKEN (or *_FILE naming a file).
    """
    from canaryflow.webhooks.serve import serve

    serve(config, host=host, port=port)


KubeDir = Annotated[
    Path | None,
    typer.Option(
        "--dir", help="State directory (default: $CANARYFLOW_KUBE_DIR or ~/.local/state/canaryflow/kube)."
    ),
]


@kube_app.command("up")
def kube_up(
    directory: KubeDir = None,
    nodes: Annotated[int, typer.Option(min=1, max=50, help="Fake nodes managed by kwok.")] = 3,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness.")] = 60.0,
) -> None:
    """Start the local control plane and write its kubeconfig (idempotent)."""
    from canaryflow import devkube

    where = directory or devkube.default_directory()
    binaries = devkube.find_binaries()
    assert binaries is not None  # required=True raises instead
    plane = devkube.LocalControlPlane(where, binaries=binaries, nodes=nodes, say=_say).up(timeout=timeout)
    typer.echo(f"export KUBECONFIG={plane.kubeconfig}")
    typer.echo(f"export PATH={binaries}:$PATH")
    _say("watch it with: kubectl get deploy -w")


@kube_app.command("down")
def kube_down(directory: KubeDir = None) -> None:
    """Stop the local control plane and every process it started."""
    from canaryflow import devkube

    where = directory or devkube.default_directory()
    stopped = devkube.LocalControlPlane(where, binaries=Path()).down()
    _say("stopped" if stopped else "nothing was running")


@kube_app.command("env")
def kube_env(directory: KubeDir = None) -> None:
    """Print `export KUBECONFIG=...` for the running local control plane."""
    from canaryflow import devkube
    from canaryflow.errors import LocalClusterError

    where = directory or devkube.default_directory()
    plane = devkube.running_control_plane(where)
    if plane is None:
        raise LocalClusterError(
            f"no local control plane is running in {where}: start it with `canaryflow dev kube up`"
        )
    typer.echo(f"export KUBECONFIG={plane.kubeconfig}")
    binaries = devkube.find_binaries(required=False)
    if binaries is not None:
        typer.echo(f"export PATH={binaries}:$PATH")


def _say(message: str) -> None:
    typer.echo(message, err=True)


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
