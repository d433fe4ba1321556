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

# Starts one from a short-lived thread (as a demo's set-up may), says its pid, and waits.
PROGRAM = """
import sys, threading
from canaryflow.dev.localprometheus import LocalPrometheus
found = []
starter = threading.Thread(target=lambda: found.append(LocalPrometheus.start(sys.argv[1])))
starter.start()
starter.join()
print(found[0].process.pid, flush=True)
threading.Event().wait()
"""


def test_a_killed_process_takes_its_prometheus_with_it() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, prometheus_binary()], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        assert alive(pid)  # it outlived the thread that started it
    finally:
        child.send_signal(signal.SIGKILL)  # no Python runs after this: `stop` cannot
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()

    wait_until(lambda: not alive(pid), timeout=30, what=f"Prometheus (pid {pid}) gone after its parent")
