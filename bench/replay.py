"""Benchmark: what ``canaryflow replay`` costs per interval, and that the cost is linear.

    .venv/bin/python bench/replay.py [--sizes 1000,10000,50000] [--samples N] [--judge kayenta]

For each size, writes an A/A observation log of that many intervals (error-rate as a ratio,
latency as a Prometheus histogram with the default buckets, 20 requests per track per interval,
10 ms intervals so that the default 20-minute analysis covers 120,000 of them and the judge
does not stop at its maximum first) and replays it with the same runner as the command
(`canaryflow.cli.backtest.run_replay`, output to a discarded stream): wall time, time per
interval, and the intervals judged (the judge may stop earlier at a decision; the time per
interval is what matters). With ``--samples N`` the log also has a ``samples`` metric (``cpu``: N
values per track per interval, e.g. one per pod). ``--judge kayenta`` replays with the Kayenta
anchor instead of the sequential judge (what ``canaryflow replay --judge kayenta`` does). Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from canaryflow.cli.backtest import run_replay

LE = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
REQUESTS = 20


class _Counter(io.TextIOBase):
    def __init__(self) -> None:
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return len(text)


def _track(rng: np.random.Generator) -> tuple[dict[str, int], dict[str, list[int]]]:
    latency = rng.lognormal(math.log(0.1), 0.5, size=REQUESTS)
    counts = [int((latency <= bound).sum()) for bound in LE]
    errors = int(rng.binomial(REQUESTS, 0.01))
    return {"bad": errors, "total": REQUESTS}, {"counts": counts}


def write_log(path: Path, intervals: int, seed: int = 1, samples: int = 0) -> None:
    """An A/A log of `intervals` intervals at `path` (with `samples` values per track of a samples
    metric, if any)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(intervals):
        (rb, hb), (rc, hc) = _track(rng), _track(rng)
        row: dict[str, object] = {
            "error-rate": {"baseline": rb, "canary": rc},
            "latency": {"baseline": hb, "canary": hc},
        }
        if samples:
            cpu = rng.gamma(20.0, 0.01, size=(2, samples))
            row["cpu"] = {"baseline": cpu[0].tolist(), "canary": cpu[1].tolist()}
        rows.append(row)
    document = {
        "format": "canaryflow/observations@1",
        "interval_seconds": 0.01,
        "metrics": {
            "error-rate": {"type": "ratio"},
            "latency": {
                "type": "histogram",
                "unit": "seconds",
                "le": [b if math.isfinite(b) else "+Inf" for b in LE],
            },
        },
        "intervals": rows,
    }
    if samples:
        document["metrics"]["cpu"] = {"type": "samples"}  # type: ignore[index]
    path.write_text(json.dumps(document))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--samples", type=int, default=0, help="values per track of a samples metric")
    parser.add_argument("--judge", choices=("sequential", "kayenta"), default="sequential")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"Machine: {platform.machine()}, Python {platform.python_version()}, judge {args.judge}")
    print()
    print("| intervals in the log | intervals judged | wall s | ms per interval judged |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            path = Path(tmp) / f"aa-{size}.json"
            write_log(path, size, samples=args.samples)
            out = _Counter()
            start = time.perf_counter()
            run_replay([path], config=None, judge=args.judge, out=out)  # type: ignore[arg-type]
            wall = time.perf_counter() - start
            print(f"| {size} | {out.lines} | {wall:.1f} | {1000 * wall / max(out.lines, 1):.2f} |")


if __name__ == "__main__":
    main()
