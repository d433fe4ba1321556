"""Prefect work pools with canaryflow's deployments and a worker each, as separate processes.

A release starts each cell's rollout as a run of ``rollout/<pool>`` on the cell's work pool, its
undo as ``undo/<pool>`` and its cleanup as ``cleanup/<pool>`` (``deployments/prefect.yaml`` ends
with that template). `cell_workers` makes those for each pool on a Prefect server the way an
operator would (``prefect work-pool create`` and ``prefect deploy``, run from the source tree so
the runs' working directory is the tree) and starts one ``prefect worker`` per pool, so the runs
are real Prefect flow runs in processes of their own. Everything is stopped at the end, the
workers' flow-run processes included.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from canaryflow.dev.processes import die_with_parent, tail
from canaryflow.errors import LocalStackError

__all__ = [
    "SOURCE_TREE",
    "cell_pools_yaml",
    "cell_workers",
    "check_workers",
    "descendants",
    "prefect_cli",
    "spawn",
    "stop",
    "stop_all",
]

SOURCE_TREE = Path(__file__).resolve().parents[2]
#: The flows a cell's pool runs, by the deployment's flow name (each deployment is named after the pool).
_ENTRYPOINTS = {
    "rollout": "flows/rollout.py:rollout",
    "undo": "flows/undo.py:undo",
    "cleanup": "flows/cleanup.py:cleanup",
}


def cell_pools_yaml(pools: Sequence[str]) -> str:
    """A ``prefect.yaml`` with the ``rollout``, ``undo`` and ``cleanup`` deployments of each pool."""
    lines = ["# Made by canaryflow for the cells' work pools.", "deployments:"]
    for pool in pools:
        for entrypoint in _ENTRYPOINTS.values():
            lines += [
                f"  - name: {pool}",
                f"    entrypoint: {entrypoint}",
                "    tags: [canaryflow]",
                "    enforce_parameter_schema: true",
                f"    work_pool: {{name: {pool}, work_queue_name: default}}",
            ]
    return "\n".join(lines) + "\n"


def prefect_cli(env: Mapping[str, str], *args: str, cwd: Path = SOURCE_TREE, timeout: float = 300.0) -> str:
    """Run ``prefect ARGS`` (this interpreter's) and return its output; `LocalStackError` with
    its output when it fails."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "prefect", *args],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LocalStackError(f"prefect {' '.join(args)}: no answer within {timeout:g} s") from exc
    if done.returncode != 0:
        output = [line for line in (done.stdout + done.stderr).strip().splitlines() if line.strip()]
        last = output[-1].strip() if output else f"exit code {done.returncode}"
        raise LocalStackError(f"prefect {' '.join(args)} failed: {last}\n" + "\n".join(output[-15:]))
    return done.stdout


def spawn(command: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `command` with its output in `log`, killed by the kernel if this process dies."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            cwd=log.parent,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first, then theirs), read from ``/proc``."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found.append(int(child))
                found.extend(descendants(int(child)))
    return found


def stop(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """Terminate `process`, then kill whatever it started that is left (a worker's flow runs)."""
    stop_all([process], grace=grace)


def stop_all(processes: Sequence[subprocess.Popen[bytes]], grace: float = 30.0) -> None:
    """`stop` each of `processes` at once: all are asked to end, then each gets what is left of
    one `grace` (so three workers take one grace, not three)."""
    left = [pid for process in processes for pid in descendants(process.pid)]
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def check_workers(workers: Sequence[subprocess.Popen[bytes]], pools: Sequence[str], workdir: Path) -> None:
    """`LocalStackError` with the end of its log when a worker of `cell_workers` has exited: the
    runs of its pool would wait for it for ever."""
    for worker, pool in zip(workers, pools, strict=True):
        if worker.poll() is not None:
            log = workdir / f"worker-{pool}.log"
            raise LocalStackError(
                f"the worker of work pool {pool} exited (code {worker.returncode}); its log {log} ends:\n"
                + tail(log)
            )


@contextlib.contextmanager
def cell_workers(
    pools: Sequence[str],
    *,
    env: Mapping[str, str],
    workdir: Path,
    say: Callable[[str], None] = lambda _: None,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Create each of `pools` (a process work pool) on the Prefect server `env` names
    (``PREFECT_API_URL``), deploy the cells' flows to it, and run one worker per pool with `env`
    (its flow runs inherit it, plus the job variables each run brings) for the duration of a
    ``with`` block. Worker logs are ``worker-<pool>.log`` in `workdir`."""
    for pool in pools:
        prefect_cli(env, "work-pool", "create", pool, "--type", "process", "--overwrite")
    prefect_file = workdir / "prefect.yaml"
    prefect_file.write_text(cell_pools_yaml(pools))
    prefect_cli(env, "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file))
    say(f"Prefect: deployments rollout, undo and cleanup on the work pools {', '.join(pools)}")
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for pool in pools:
            command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--name", pool]
            workers.append(spawn(command, env, workdir / f"worker-{pool}.log"))
        say(f"Prefect: one worker per pool (logs: {workdir}/worker-<pool>.log)")
        yield workers
    finally:
        stop_all(workers, grace=15.0)
