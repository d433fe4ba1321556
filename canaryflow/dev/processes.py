"""Child processes and loopback ports for the local stacks: one home for the plumbing they share.

The local control plane, the Prefect server and Prometheus all start programs on 127.0.0.1, wait
for them to answer, and stop them (process group SIGTERM, then SIGKILL) so that nothing outlives
the demo or the test run. With `die_with_parent` as ``preexec_fn`` the kernel also kills a child
when the process that started it dies (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

__all__ = [
    "alive",
    "die_with_parent",
    "free_port",
    "on_lasting_thread",
    "port_is_free",
    "stop_groups",
    "tail",
    "wait_until",
]

_PR_SET_PDEATHSIG = 1
_T = TypeVar("_T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether `port` on 127.0.0.1 can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_until(
    check: Callable[[], _T], *, timeout: float, what: str, interval: float = 0.1, backoff: float = 1.0
) -> _T:
    """Poll `check` until it returns something truthy (returned); TimeoutError after `timeout` s.

    The programs polled here are other processes with no event to await; `backoff` > 1 grows the
    interval up to 0.5 s.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * backoff, max(interval, 0.5))


#: libc's ``prctl``, looked up here, in the parent: a child of a threaded process should not load
#: libraries between fork and exec.
_PRCTL = ctypes.CDLL("libc.so.6", use_errno=True).prctl


def die_with_parent() -> None:
    """``preexec_fn`` for a child that the kernel kills (SIGKILL) when its parent dies.

    The kernel's "parent" is the *thread* that forked: start such children from the main thread
    or through `on_lasting_thread`, never from a short-lived thread (its end would kill them)."""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


_keeper_jobs: queue.Queue[Callable[[], None]] = queue.Queue()
_keeper_lock = threading.Lock()
_keeper: threading.Thread | None = None


def on_lasting_thread(work: Callable[[], _T]) -> _T:
    """Run `work` on a thread that lives as long as the process, and return its result (or raise
    its error): at once on the main thread, else on one daemon thread kept for this. Children
    started there with `die_with_parent` die with the process, not with the thread that asked
    (which may end long before)."""
    if threading.current_thread() is threading.main_thread():
        return work()
    global _keeper
    with _keeper_lock:
        if _keeper is None:
            _keeper = threading.Thread(target=_keep, name="process-keeper", daemon=True)
            _keeper.start()
    done = threading.Event()
    outcome: list[_T] = []
    failure: list[BaseException] = []

    def job() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed back to the caller as it is
            failure.append(exc)
        finally:
            done.set()

    _keeper_jobs.put(job)
    done.wait()
    if failure:
        raise failure[0]
    return outcome[0]


def _keep() -> None:
    while True:
        _keeper_jobs.get()()


def alive(pid: int) -> bool:
    """Whether process `pid` runs: a zombie is not alive (one of ours is reaped first; another's
    waits for its parent, or for an init that may never reap it)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc to ask: it exists
    return state != "Z"


def stop_groups(pids: Iterable[int], *, grace: float = 10.0) -> None:
    """SIGTERM the process group of each of `pids` (in the order given), SIGKILL what is left after
    `grace` seconds, and wait (up to 5 s each) until they are gone. Idempotent."""
    order = list(pids)
    for pid in order:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for pid in order:
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)  # a process we may not be the parent of: no event to await
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        kill_deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < kill_deadline:
            time.sleep(0.02)


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file (``(no log)`` when it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
