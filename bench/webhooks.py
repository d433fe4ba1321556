"""Webhook receiver benchmark: deliveries per second verified and routed, p99 latency, memory.

    .venv/bin/python bench/webhooks.py [--requests 3000] [--concurrency 8] [--seconds 20]

The receiver (`canaryflow.webhooks.serve.build_app` with an in-memory starter, so no flow is
started; the SQLite delivery store is real) runs in its own process on a free 127.0.0.1 port;
a bounded load generator of threads with keep-alive `http.client` connections sends signed
GitHub deliveries to it. Every request goes to 127.0.0.1 only; each scenario stops after
`--requests` deliveries or `--seconds` seconds, whichever comes first. Prints a Markdown section.

Scenarios: ``started`` (a new push each time, signed by the client: verify, parse, route, claim,
start in memory, record), ``ignored`` (verify, parse, route: a branch without a route), ``refused`` (a wrong
signature: 401). Latency is measured by the client, per request, on loopback.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import platform
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

SECRET = "benchmark-secret"
REPOSITORY = "Codertocat/Hello-World"
ROUTES = """\
deliveries: {deliveries}
routes:
  - repository: Codertocat/Hello-World
    branch: master
    rollout: config/rollouts/web.yaml
    image: registry.example.com/hello/world:{{sha}}
"""


def _serve(routes_file: str, conn: Connection) -> None:
    """The receiver process: bind a free loopback port, report it, serve until terminated."""
    import uvicorn

    from canaryflow.triggers import InMemoryRolloutStarter
    from canaryflow.webhooks.serve import build_app

    app = build_app(
        Path(routes_file), environ={"CANARYFLOW_GITHUB_SECRET": SECRET}, starter=InMemoryRolloutStarter()
    )
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets (else 40 ms delayed-ACK stalls).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    conn.send(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="error", access_log=False, lifespan="off", ws="none")
    uvicorn.Server(config).run(sockets=[sock])


def _push_body(ref: str, after: str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c") -> bytes:
    commit = {
        "id": after,
        "added": [],
        "removed": [],
        "modified": ["README.md"],
    }
    payload = {
        "ref": ref,
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": after,
        "repository": {"id": 186853002, "name": "Hello-World", "full_name": REPOSITORY},
        "pusher": {"name": "Codertocat", "email": "codertocat@example.com"},
        "created": False,
        "deleted": False,
        "forced": False,
        "commits": [commit],
        "head_commit": commit,
    }
    return json.dumps(payload).encode()


def _headers(body: bytes, secret: str) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-Hub-Signature-256": f"sha256={signature}",
    }


def _new_push() -> bytes:
    """A push of a commit of its own: the receiver keys deliveries by the push, so a body sent
    again under a new delivery id would be a duplicate, not a start."""
    return _push_body("refs/heads/master", after=uuid.uuid4().hex + "0" * 8)


SCENARIOS: dict[str, tuple[Callable[[], bytes], str, int]] = {
    "started": (_new_push, SECRET, 202),
    "ignored": (lambda: _push_body("refs/heads/develop"), SECRET, 202),
    "refused": (lambda: _push_body("refs/heads/master"), "wrong-secret", 401),
}


@dataclass(frozen=True)
class Result:
    scenario: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _load(port: int, scenario: str, *, requests: int, concurrency: int, seconds: float) -> Result:
    make_body, secret, expected = SCENARIOS[scenario]
    remaining = [requests]
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    deadline = time.monotonic() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle/delayed-ACK stalls
        mine: list[float] = []
        while time.monotonic() < deadline:
            with lock:
                if remaining[0] == 0:
                    break
                remaining[0] -= 1
            body = make_body()
            sent = {**_headers(body, secret), "X-GitHub-Delivery": str(uuid.uuid4())}
            start = time.perf_counter()
            conn.request("POST", "/hooks/github", body=body, headers=sent)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            if response.status != expected:
                with lock:
                    errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Result(scenario, len(latencies), errors[0], time.perf_counter() - began, latencies)


def _rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def _markdown(
    results: list[Result], idle: dict[str, int], after: dict[str, int], args: argparse.Namespace
) -> str:
    load = Path("/proc/loadavg").read_text().split()[:3]
    lines = [
        "## Webhook receiver (`bench/webhooks.py`)",
        "",
        f"Command: `.venv/bin/python bench/webhooks.py --requests {args.requests} "
        f"--concurrency {args.concurrency} --seconds {args.seconds}`. "
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, load average {' '.join(load)} "
        "at the end (other work was running). One uvicorn worker process with an in-memory starter (no flow "
        "started) and the real SQLite delivery store; the load generator (threads, keep-alive "
        "`http.client`) shares the 2 cores with it, on loopback.",
        "",
        "| scenario | the receiver | deliveries | errors | deliveries/s | p50 ms | p99 ms | max ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    what = {
        "started": "verify, parse, route, claim + record in SQLite, start (in memory)",
        "ignored": "verify, parse, route (no route for the branch)",
        "refused": "verify (wrong signature, 401)",
    }
    for r in results:
        lines.append(
            f"| {r.scenario} | {what[r.scenario]} | {r.requests} | {r.errors} | {r.requests / r.seconds:.0f} "
            f"| {r.percentile(0.5):.1f} | {r.percentile(0.99):.1f} | {max(r.latencies) * 1000:.1f} |"
        )
    lines += [
        "",
        f"Receiver memory: {idle['VmRSS'] / 1024:.0f} MiB RSS idle after start-up, "
        f"{after['VmRSS'] / 1024:.0f} MiB after the runs, {after['VmHWM'] / 1024:.0f} MiB peak.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="deliveries per scenario (at most)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per scenario")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        routes_file = Path(tmp) / "routes.yaml"
        routes_file.write_text(ROUTES.format(deliveries=Path(tmp) / "deliveries.sqlite3"))
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        receiver = context.Process(target=_serve, args=(str(routes_file), child), daemon=True)
        receiver.start()
        try:
            port = parent.recv()
            assert receiver.pid is not None
            _load(port, "ignored", requests=200, concurrency=2, seconds=10)  # warm-up
            idle = _rss_kib(receiver.pid)
            results = [
                _load(port, name, requests=args.requests, concurrency=args.concurrency, seconds=args.seconds)
                for name in SCENARIOS
            ]
            after = _rss_kib(receiver.pid)
        finally:
            receiver.terminate()
            receiver.join(timeout=10)
    print(_markdown(results, idle, after, args))


if __name__ == "__main__":
    main()
