"""Decision-quality benchmark: our sequential judge against Flagger, Argo Rollouts, Kayenta and Wald's SPRT.

Usage::

    .venv/bin/python bench/decisions.py [--quick] [--seed N] [--replications R] [--jobs J]
                                        [--markdown FILE] [--write-logs DIR] [--logs DIR]
                                        [--no-history]

Every scenario (see ``bench/scenarios.py``) is one canary analysis of at most 20 minutes in 30 s
intervals; all judges see the same observation log. Per family and traffic level the benchmark
reports the false-rollback rate (good canaries), the miss rate (bad canaries not rolled back
within 20 minutes) and the median time to decision (a run without decision counts as the full
20 minutes), then checks the targets. ``--write-logs DIR`` writes the generated scenarios as
``canaryflow/observations@1`` logs with a ``labels.json``; ``--logs DIR`` judges such a directory
(held-out scenarios) instead of generating. The error rate's warm-up dispersion is learned from
an hour of the stable's history drawn with each family's noise (as the rollout flow learns it);
``--no-history`` starts every analysis from the bound fixed in advance instead. Deterministic for
a given seed.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.backtest import judge_log
from analysis.logs import LogFormatError, ObservationLog, dump_log, parse_log
from analysis.settings import AnalysisSettings, MetricSettings
from bench.anchors import argo, flagger, sprt
from bench.scenarios import (
    ADDED_GOOD,
    BAD,
    ERROR_FREE,
    FAMILIES,
    GOOD,
    INTERVAL_SECONDS,
    MAX_INTERVALS,
    Truth,
    generate,
)
from canaryflow.spec.metrics import DEFAULT_METRICS

JUDGES = ("ours", "kayenta", "flagger", "argo", "sprt")
RATES = (2.0, 10.0, 50.0)
#: Families also run at high traffic, where overdispersion dominates the binomial noise.
HIGH_RATE = 500.0
HIGH_RATE_FAMILIES = (
    "overdispersed",
    "independent-overdispersion",
    "strong-independent-overdispersion",
    "uneven-traffic",
)
FLOOR_SECONDS = 111.0  # 1 % -> 2 % at 10 requests/s, alpha 0.05, power 0.8, equal live baseline
MAX_SECONDS = MAX_INTERVALS * INTERVAL_SECONDS
#: Bad families whose canary is good at first: the time that counts is the time after the change.
CHANGING = ("errors-x5-midway", "one-interval-crash")


@dataclass(frozen=True)
class Outcome:
    """One judge's decision on one scenario."""

    family: str
    rps: float
    bad: bool
    judge: str
    decision: str
    seconds: float
    promoted_on_gap: bool = False
    #: Seconds from the start of the first bad interval to the decision (bad canaries only).
    after_change: float | None = None


@dataclass(frozen=True)
class Case:
    """A scenario to judge: generated (family, rps, seed) or a held-out log with its label."""

    family: str
    rps: float
    bad: bool
    seed: int = 0
    path: str = ""
    #: Whether the error rate's warm-up is learned from the stable's history (`bench.scenarios`).
    history: bool = True


def _product_settings() -> AnalysisSettings:
    """The settings a rollout spec gets by default (its default metrics, with their ceilings)."""
    keep = set(MetricSettings.model_fields)
    metrics = tuple(MetricSettings.model_validate(m.model_dump(include=keep)) for m in DEFAULT_METRICS)
    return AnalysisSettings(metrics=metrics)


#: What "ours" judges with: the product's defaults for the metrics a log has.
PRODUCT_SETTINGS = _product_settings()


def _ours(log: ObservationLog) -> tuple[str, int, bool]:
    names = {m.name for m in PRODUCT_SETTINGS.metrics}
    settings = PRODUCT_SETTINGS if set(log.metrics) == names else None
    verdicts = list(judge_log(log, settings))
    final = verdicts[-1]
    gap = final.decision == "promote" and any(v is None for v in log.intervals[final.interval - 1].values())
    return final.decision, final.interval, gap


def _kayenta(log: ObservationLog) -> tuple[str, int]:
    final = list(judge_log(log, judge="kayenta"))[-1]
    return final.decision, final.interval


def judge_case(case: Case) -> list[Outcome]:
    """Run every judge on one scenario."""
    bad_from: int | None = None
    if case.path:
        log, truth = parse_log(Path(case.path).read_bytes()), FAMILIES.get(case.family, Truth())
    else:
        scenario = generate(case.family, case.rps, case.seed, history=case.history)
        log, truth, bad_from = scenario.log, scenario.truth, scenario.bad_from
    results: list[tuple[str, str, int, bool]] = []
    decision, interval, gap = _ours(log)
    results.append(("ours", decision, interval, gap))
    results.append(("kayenta", *_kayenta(log), False))
    for name, anchor in (("flagger", flagger), ("argo", argo)):
        d = anchor(log)
        results.append((name, d.decision, d.interval, False))
    if case.family in FAMILIES and case.family not in ERROR_FREE:  # the SPRT floor assumes 1 % errors
        d = sprt(log, truth, bad=case.bad)
        results.append(("sprt", d.decision, d.interval, False))
    return [
        Outcome(
            case.family, case.rps, case.bad, judge, decision, interval * log.interval_seconds, gap,
            after_change=None if bad_from is None else (interval - bad_from) * log.interval_seconds,
        )
        for judge, decision, interval, gap in results
    ]  # fmt: skip


def generated_cases(replications: int, seed: int, *, history: bool = True) -> list[Case]:
    cases = []
    # families added later are seeded after the others, which keep the seeds of the tables before
    order = tuple(f for f in GOOD if f not in ADDED_GOOD) + BAD + ADDED_GOOD
    for f, family in enumerate(order):
        rates = (*RATES, HIGH_RATE) if family in HIGH_RATE_FAMILIES else RATES
        for r, rps in enumerate(rates):
            for i in range(replications):
                cases.append(
                    Case(
                        family,
                        rps,
                        family in BAD,
                        seed=seed * 1_000_003 + (f * 10 + r) * 10_007 + i,
                        history=history,
                    )
                )
    return cases


def held_out_cases(directory: Path) -> list[Case]:
    """Logs in `directory` with their labels (``labels.json``: file -> {"bad", "family", "rps"})."""
    labels_path = directory / "labels.json"
    labels = json.loads(labels_path.read_text()) if labels_path.exists() else {}
    cases = []
    for path in sorted(directory.glob("*.json")):
        if path.name == "labels.json":
            continue
        try:
            parse_log(path.read_bytes())
        except LogFormatError as exc:  # one bad file does not stop the others' judging
            print(f"skipped {path}: {exc}", file=sys.stderr)
            continue
        label = labels.get(path.name, {})
        bad = bool(label.get("bad", path.name.startswith("bad")))
        cases.append(
            Case(
                str(label.get("family", "bad" if bad else "good")),
                float(label.get("rps", 0)),
                bad,
                path=str(path),
            )
        )
    return cases


def write_logs(cases: Sequence[Case], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    labels = {}
    for case in cases:
        name = f"{'bad' if case.bad else 'good'}-{case.family}-{case.rps:g}rps-{case.seed}.json"
        scenario = generate(case.family, case.rps, case.seed)
        (directory / name).write_text(json.dumps(dump_log(scenario.log)))
        labels[name] = {"bad": case.bad, "family": case.family, "rps": case.rps}
    (directory / "labels.json").write_text(json.dumps(labels, indent=1))


def _median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else math.nan


def _rate(outcomes: Sequence[Outcome], decision: str, *, negate: bool = False) -> float:
    if not outcomes:
        return math.nan
    hits = sum((o.decision == decision) != negate for o in outcomes)
    return hits / len(outcomes)


def _time(o: Outcome) -> float:
    return o.seconds if o.decision in ("rollback", "promote") else MAX_SECONDS


def _fmt_pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f} %"


def _fmt_min(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds / 60:.1f}"


def _minutes(seconds: float) -> str:
    """``_fmt_min`` with its unit ("-" alone without a number)."""
    text = _fmt_min(seconds)
    return text if text == "-" else f"{text} min"


def family_table(outcomes: Sequence[Outcome]) -> list[str]:
    """Markdown rows: per family and traffic level, each judge's error rate and median time."""
    groups: dict[tuple[str, float, str], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[(o.family, o.rps, o.judge)].append(o)
    keys = sorted(
        {(o.family, o.rps, o.bad) for o in outcomes},
        key=lambda k: (k[2], (GOOD + BAD).index(k[0]) if k[0] in FAMILIES else 99, k[1]),
    )
    header = "| family | req/s | n | " + " | ".join(f"{j}: err / median min" for j in JUDGES) + " |"
    rows = [header, "|" + "---|" * (3 + len(JUDGES))]
    for family, rps, bad in keys:
        cells = []
        for judge in JUDGES:
            group = groups.get((family, rps, judge), [])
            error = _rate(group, "rollback", negate=True) if bad else _rate(group, "rollback")
            cells.append(
                f"{_fmt_pct(error)} / {_fmt_min(_median(_time(o) for o in group))}" if group else "-"
            )
        n = len(groups.get((family, rps, "ours"), []))
        label = f"{'bad' if bad else 'good'}: {family}"
        rows.append(f"| {label} | {rps:g} | {n} | " + " | ".join(cells) + " |")
    return rows


def summary(outcomes: Sequence[Outcome]) -> tuple[list[str], list[tuple[str, bool]]]:
    """The per-judge summary rows and the target checks (for our judge)."""
    by_judge: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_judge[o.judge].append(o)
    rows = [
        "| judge | false rollbacks (good) | worst good family | misses (bad, >= 10 req/s) "
        "| mean time to rollback (bad) | mean time to promote (good, 50 req/s) |",
        "|---|---|---|---|---|---|",
    ]
    for judge in JUDGES:
        group = by_judge.get(judge, [])
        good = [o for o in group if not o.bad]
        bad = [o for o in group if o.bad]
        worst = max(
            (_rate([o for o in good if o.family == f], "rollback") for f in {o.family for o in good}),
            default=math.nan,
        )
        misses = _rate([o for o in bad if o.rps >= 10], "rollback", negate=True)
        rollback_time = (
            statistics.fmean(o.seconds if o.decision == "rollback" else MAX_SECONDS for o in bad)
            if bad
            else math.nan
        )
        fast = [o for o in good if o.rps >= 50]
        promote_time = (
            statistics.fmean(_time(o) if o.decision == "promote" else MAX_SECONDS for o in fast)
            if fast
            else math.nan
        )
        rows.append(
            f"| {judge} | {_fmt_pct(_rate(good, 'rollback'))} | {_fmt_pct(worst)} | {_fmt_pct(misses)} | "
            f"{_minutes(rollback_time)} | {_minutes(promote_time)} |"
        )
    return rows, targets(by_judge)


def targets(by_judge: dict[str, list[Outcome]]) -> list[tuple[str, bool]]:
    ours = by_judge.get("ours", [])
    good = [o for o in ours if not o.bad]
    bad = [o for o in ours if o.bad]
    checks: list[tuple[str, bool]] = []
    if good:
        overall = _rate(good, "rollback")
        worst = max(_rate([o for o in good if o.family == f], "rollback") for f in {o.family for o in good})
        checks.append((f"false rollbacks over all good families {_fmt_pct(overall)} <= 2 %", overall <= 0.02))
        checks.append((f"false rollbacks in the worst good family {_fmt_pct(worst)} <= 5 %", worst <= 0.05))
        early = [o for o in good if o.decision == "promote" and o.seconds < 300]
        gaps = [o for o in ours if o.promoted_on_gap]
        checks.append(
            (
                f"promotions before 5 min: {len(early)}; promotions on a scrape gap: {len(gaps)}",
                not early and not gaps,
            )
        )
        fast = [o for o in good if o.rps >= 50]
        if fast:
            mean_promote = statistics.fmean(
                _time(o) if o.decision == "promote" else MAX_SECONDS for o in fast
            )
            checks.append(
                (
                    f"good canaries at 50 req/s promoted in {_fmt_min(mean_promote)} min on average"
                    " <= 10 min",
                    mean_promote <= 600,
                )
            )
    if bad:
        misses = _rate([o for o in bad if o.rps >= 10], "rollback", negate=True)
        severe = _rate([o for o in bad if o.family in ("outage", "errors-x5")], "rollback", negate=True)
        checks.append((f"misses over bad families at >= 10 req/s {_fmt_pct(misses)} <= 3 %", misses <= 0.03))
        checks.append((f"misses for outage and errors x5 (all traffic) {_fmt_pct(severe)} = 0", severe == 0))
        kayenta = [o for o in by_judge.get("kayenta", []) if o.bad]
        ours_mean = statistics.fmean(o.seconds if o.decision == "rollback" else MAX_SECONDS for o in bad)
        if kayenta:
            k_mean = statistics.fmean(o.seconds if o.decision == "rollback" else MAX_SECONDS for o in kayenta)
            checks.append(
                (
                    f"mean time to rollback {_fmt_min(ours_mean)} min"
                    f" <= half of Kayenta's {_fmt_min(k_mean)} min",
                    ours_mean <= k_mean / 2,
                )
            )
        severe10 = [o for o in bad if o.family in ("outage", "errors-x5") and o.rps == 10]
        if severe10:
            median = _median(_time(o) for o in severe10)
            checks.append((f"outage and errors x5 at 10 req/s: median {median:.0f} s <= 60 s", median <= 60))
        changing = [o for o in bad if o.family in CHANGING]
        if changing:
            promoted = sum(o.decision == "promote" for o in changing)
            checks.append(
                (f"canaries that turn bad mid-analysis: promoted {promoted} of {len(changing)}", not promoted)
            )
            busy = [o for o in changing if o.rps >= 10]
            soon = [
                o for o in busy if o.decision == "rollback" and (o.after_change or 0) <= 2 * INTERVAL_SECONDS
            ]
            share = len(soon) / len(busy) if busy else math.nan
            checks.append(
                (
                    f"... rolled back within 2 intervals of the change at >= 10 req/s: {_fmt_pct(share)}"
                    " (target: all)",
                    len(soon) == len(busy),
                )
            )
        x2 = [o for o in bad if o.family == "errors-x2" and o.rps == 10]
        if x2:
            median = _median(_time(o) for o in x2)
            checks.append(
                (
                    f"errors x2 at 10 req/s: median {median:.0f} s"
                    f" = {median / FLOOR_SECONDS:.2f} x the 111 s floor <= 2",
                    median <= 2 * FLOOR_SECONDS,
                )
            )
    if good:
        busy = [o for o in good if o.rps >= 10]
        promoted = _rate(busy, "promote")
        checks.append(
            (
                f"good canaries at >= 10 req/s promoted within 20 min (default policy)"
                f" {_fmt_pct(promoted)} >= 95 %",
                promoted >= 0.95,
            )
        )
    return checks


def promotion_by_traffic(outcomes: Sequence[Outcome]) -> list[str]:
    rows = ["| req/s | good canaries promoted | median time to promotion |", "|---|---|---|"]
    ours = [o for o in outcomes if o.judge == "ours" and not o.bad]
    for rps in sorted({o.rps for o in ours}):
        group = [o for o in ours if o.rps == rps]
        promoted = [o.seconds for o in group if o.decision == "promote"]
        rows.append(f"| {rps:g} | {_fmt_pct(len(promoted) / len(group))} | {_minutes(_median(promoted))} |")
    return rows


def promotion_by_family(outcomes: Sequence[Outcome]) -> list[str]:
    """Good canaries per family and traffic level: promoted, and the rest inconclusive or rolled
    back (the default policy promotes neither)."""
    rows = [
        "| good family | req/s | promoted | inconclusive | rolled back | median time to promotion |",
        "|---|---|---|---|---|---|",
    ]
    ours = [o for o in outcomes if o.judge == "ours" and not o.bad]
    known = {family: index for index, family in enumerate(GOOD)}  # held-out families after ours
    for family, rps in sorted({(o.family, o.rps) for o in ours}, key=lambda c: (known.get(c[0], 99), c)):
        group = [o for o in ours if o.family == family and o.rps == rps]
        promoted = [o.seconds for o in group if o.decision == "promote"]
        inconclusive = sum(o.decision == "inconclusive" for o in group) / len(group)
        rolled_back = sum(o.decision == "rollback" for o in group) / len(group)
        median = _minutes(_median(promoted))
        rows.append(
            f"| {family} | {rps:g} | {_fmt_pct(len(promoted) / len(group))} | {_fmt_pct(inconclusive)} "
            f"| {_fmt_pct(rolled_back)} | {median} |"
        )
    return rows


def floor_table(outcomes: Sequence[Outcome]) -> list[str]:
    """Median time to rollback of bad canaries at 10 req/s: ours against the measured SPRT floor."""
    rows = [
        "| bad family (10 req/s) | ours, median s | Wald SPRT (true rates), median s | ratio |",
        "|---|---|---|---|",
    ]
    for family in (f for f in BAD if f not in CHANGING):
        ours = [_time(o) for o in outcomes if o.judge == "ours" and o.family == family and o.rps == 10]
        floor = [_time(o) for o in outcomes if o.judge == "sprt" and o.family == family and o.rps == 10]
        if ours and floor:
            a, b = _median(ours), _median(floor)
            rows.append(f"| {family} | {a:.0f} | {b:.0f} | {a / b:.1f} |")
    return rows


def change_table(outcomes: Sequence[Outcome]) -> list[str]:
    """Canaries that turn bad mid-analysis: per judge, promoted, and seconds from the change to rollback."""
    rows = [
        "| family | req/s | judge | promoted | rolled back | median s after change | within 2 intervals |",
        "|---|---|---|---|---|---|---|",
    ]
    for family in CHANGING:
        for rps in sorted({o.rps for o in outcomes if o.family == family}):
            for judge in JUDGES:
                group = [o for o in outcomes if o.family == family and o.rps == rps and o.judge == judge]
                if not group:
                    continue
                back = [o for o in group if o.decision == "rollback"]
                after = _median(o.after_change or 0.0 for o in back)
                soon = sum((o.after_change or 0.0) <= 2 * INTERVAL_SECONDS for o in back) / len(group)
                rows.append(
                    f"| {family} | {rps:g} | {judge} | {_fmt_pct(_rate(group, 'promote'))} "
                    f"| {_fmt_pct(len(back) / len(group))} | {after:.0f} | {_fmt_pct(soon)} |"
                )
    return rows


def report(outcomes: Sequence[Outcome], *, command: str, seconds: float) -> str:
    summary_rows, checks = summary(outcomes)
    lines = [
        "## Decision quality (`bench/decisions.py`)",
        "",
        f"Command: `{command}` on 2 cores, {seconds:.0f} s wall.",
        "",
        "### Per judge",
        "",
        *summary_rows,
        "",
        "Times count a run without decision as the full 20 minutes.",
        "",
        "### Targets (our judge)",
        "",
        *[f"- [{'x' if ok else ' '}] {text}" for text, ok in checks],
        "",
        "### Time to detection against the information floor",
        "",
        *floor_table(outcomes),
        "",
        "### Canaries that turn bad mid-analysis",
        "",
        *change_table(outcomes),
        "",
        "### Early promotion by traffic (our judge, good canaries)",
        "",
        *promotion_by_traffic(outcomes),
        "",
        "### Good canaries per family (our judge; inconclusive counts as not promoted)",
        "",
        *promotion_by_family(outcomes),
        "",
        "### Per family (error rate: false rollbacks for good, misses for bad / median minutes to decision)",
        "",
        *family_table(outcomes),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 replications per cell")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--replications", type=int, default=None, help="per family and traffic level (default 150)"
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    parser.add_argument("--write-logs", type=Path, help="write the generated scenarios as logs and stop")
    parser.add_argument("--logs", type=Path, help="judge a directory of labelled logs instead of generating")
    parser.add_argument(
        "--no-history",
        action="store_true",
        help="start every analysis from the dispersion bound fixed in advance, as without a stable's history",
    )
    args = parser.parse_args(argv)
    replications = args.replications or (10 if args.quick else 150)
    cases = (
        held_out_cases(args.logs)
        if args.logs
        else generated_cases(replications, args.seed, history=not args.no_history)
    )
    if args.write_logs:
        write_logs(cases, args.write_logs)
        print(f"wrote {len(cases)} logs to {args.write_logs}")
        return 0
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = [o for batch in pool.map(judge_case, cases, chunksize=4) for o in batch]
    command = "python bench/decisions.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = report(outcomes, command=command.strip(), seconds=time.perf_counter() - start)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
