"""The local Prometheus of the demo and the tests does not outlive the process that started it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from canaryflow.dev.processes import alive, wait_until
from tests.fixtures.prometheus import prometheus_binary

pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parents[3]

# Starts one from a short-lived thread (as a demo's set-up may), waits until that thread is gone
# from the kernel's tasks, says its pid, and waits.
PROGRAM = """
import os, sys, threading
from canaryflow.dev.localprometheus import LocalPrometheus
found = []
starter = threading.Thread(
    target=lambda: found.append((threading.get_native_id(), LocalPrometheus.start(sys.argv[1])))
)
starter.start()
starter.join()
task, prometheus = found[0]
while os.path.exists(f"/proc/self/task/{task}"):
    pass
print(prometheus.process.pid, flush=True)
threading.Event().wait()
"""


def test_a_killed_process_takes_its_prometheus_with_it() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, prometheus_binary()], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        # it outlived the thread that started it (a kill at that thread's end comes at once)
        with pytest.raises(TimeoutError):
            wait_until(lambda: not alive(pid), timeout=2, what="Prometheus ended with its thread")
    finally:
        child.send_signal(signal.SIGKILL)  # no Python runs after this: `stop` cannot
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()

    wait_until(lambda: not alive(pid), timeout=30, what=f"Prometheus (pid {pid}) gone after its parent")
