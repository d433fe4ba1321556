"""Benchmark: adaptive exposure (an analyze step's ``maxWeight``) against a fixed weight.

    .venv/bin/python bench/exposure.py [--runs 200]

Simulates one analyze step of 30 s intervals for 20 minutes on the error-rate metric alone
(baseline 1 %, the judge's defaults with the default error-rate ceiling of 0.1 %, the early
give-up off as a raising step has it): each track
serves ``rps`` requests per second per 10 % of weight (Poisson), the canary at 10 % to start.
After every undecided verdict `canaryflow.exposure.next_weight` may raise the weight (any weight
is reachable here; the flow takes the nearest split the pods allow). Good canaries (1 %), and bad
ones (2 % and 5 %): the share promoted (inconclusive counts as not promoted) or rolled back, the
median minutes to the decision, and the canary's extra failed requests over the whole analysis
(beyond what the baseline's rate would have failed) against the risk budget. Prints Markdown.

``--metrics default`` judges the rollout spec's default metrics instead, error rate *and* latency
(log-normal, median 100 ms, the decision benchmark's buckets; the same for both tracks), as a
spec without an ``analysis`` section gets them, with ``maxWeight`` 25 and 50: what a user of the
example spec sees. ``--jitter 0.5`` gives each track's error rate its own mean-one log-normal
factor of that standard deviation every interval (independent overdispersion).
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time

import numpy as np

from analysis.judge import SequentialJudge
from analysis.observations import HistogramCounts, PairedObservation, RatioCounts
from analysis.settings import AnalysisSettings, MetricSettings
from bench.decisions import PRODUCT_SETTINGS
from bench.scenarios import LE, bucket_probabilities
from canaryflow.exposure import RaiseAccount, next_weight

SETTINGS = AnalysisSettings(
    metrics=(MetricSettings(name="error-rate", type="ratio", max_rate=0.001),),
    max_duration_seconds=1200.0,
    min_chance=0.0,
)
#: The rollout spec's default metrics (error rate with its ceiling, latency), as an analyze step
#: with ``maxWeight`` runs them.
DEFAULT_SETTINGS = PRODUCT_SETTINGS.model_copy(update={"max_duration_seconds": 1200.0, "min_chance": 0.0})
BASE_RATE = 0.01
_CELLS = np.diff(np.concatenate([[0.0], bucket_probabilities(1.0)]))


def _latency(rng: np.random.Generator, requests: int) -> HistogramCounts:
    counts = np.cumsum(rng.multinomial(requests, _CELLS))
    return HistogramCounts(le=LE, counts=tuple(float(c) for c in counts))


def run(
    *,
    rps: float,
    canary_rate: float,
    max_weight: int | None,
    risk_budget: float,
    seed: int,
    latency: bool = False,
    jitter: float = 0.0,
) -> tuple[str, int, float, int]:
    """One analysis: (decision, interval of the decision, extra failed requests, last weight);
    `latency`: the default metrics, error rate and latency; `jitter`: each track's error rate
    times its own mean-one log-normal factor of that standard deviation, every interval."""
    rng = np.random.default_rng(seed)
    judge = SequentialJudge(DEFAULT_SETTINGS if latency else SETTINGS, interval_seconds=30.0)
    weight, extra, account = 10, 0.0, RaiseAccount(base=10)
    for _ in range(40):
        mean = rps * weight / 10 * 30.0
        nb, nc = int(rng.poisson(mean)), int(rng.poisson(mean))
        account.record({"error-rate": nc, "latency": nc}, weight)
        own_b, own_c = rng.lognormal(-jitter * jitter / 2, jitter, 2) if jitter else (1.0, 1.0)
        yc = float(rng.binomial(nc, min(1.0, canary_rate * own_c)))
        extra += yc - nc * BASE_RATE
        pair = PairedObservation(
            RatioCounts(float(rng.binomial(nb, min(1.0, BASE_RATE * own_b))), float(nb)),
            RatioCounts(yc, float(nc)),
        )
        observed = {"error-rate": pair}
        if latency:
            observed["latency"] = PairedObservation(_latency(rng, nb), _latency(rng, nc))
        verdict = judge.update(observed)
        if verdict.final:
            return verdict.decision, verdict.interval, extra, weight
        if max_weight is not None:
            raised = next_weight(
                verdict,
                weight=weight,
                max_weight=max_weight,
                risk_budget=risk_budget,
                account=account,
            )
            if raised is not None:
                weight = raised.weight
    verdict = judge.finish()
    return verdict.decision, verdict.interval, extra, weight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--metrics", choices=("error-rate", "default"), default="error-rate")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + runs - 1")
    parser.add_argument(
        "--jitter", type=float, default=0.0, help="each track's own log-normal error-rate jitter (sd)"
    )
    args = parser.parse_args()
    latency = args.metrics == "default"
    raises = (
        ((None, 0.0), (25, 100.0), (50, 100.0))
        if latency
        else ((None, 0.0), (50, 100.0), (50, 1000.0), (50, math.inf))
    )
    rates = (
        ((0.01, "good (1 %)"), (0.05, "errors x5"))
        if latency
        else ((0.01, "good (1 %)"), (0.02, "errors x2"), (0.05, "errors x5"))
    )
    began = time.perf_counter()
    print(
        f"{platform.machine()}, Python {platform.python_version()}, {args.runs} runs per row, "
        f"{args.metrics}, jitter {args.jitter:g}"
    )
    print()
    print(
        "| canary | req/s per track at 10 % | maxWeight | riskBudget | promoted | rolled back "
        "| median minutes | median final weight | extra failed requests (median / 95th pct) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for canary_rate, label in rates:
        for rps in (2.0, 10.0):
            for max_weight, budget in raises:
                outcomes = [
                    run(
                        rps=rps, canary_rate=canary_rate, max_weight=max_weight, risk_budget=budget,
                        seed=args.first_seed + s, latency=latency, jitter=args.jitter,
                    )
                    for s in range(args.runs)
                ]  # fmt: skip
                promoted = sum(o[0] == "promote" for o in outcomes) / args.runs
                rolled = sum(o[0] == "rollback" for o in outcomes) / args.runs
                minutes = statistics.median(o[1] / 2 for o in outcomes)
                weights = statistics.median(o[3] for o in outcomes)
                extras = sorted(o[2] for o in outcomes)
                p95 = extras[min(len(extras) - 1, int(0.95 * len(extras)))]
                cells = [
                    label, f"{rps:g}", "-" if max_weight is None else str(max_weight),
                    "-" if max_weight is None else f"{budget:g}",
                    f"{100 * promoted:.1f} %", f"{100 * rolled:.1f} %",
                    f"{minutes:.1f}", f"{weights:g}", f"{statistics.median(extras):.0f} / {p95:.0f}",
                ]  # fmt: skip
                print("| " + " | ".join(cells) + " |", flush=True)
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
