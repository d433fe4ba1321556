"""canaryflow: progressive delivery for Kubernetes, judged by sequential statistics, run by Prefect.

The package is drawn in layers; a module imports only from the layers below its own, and the
import contracts in ``pyproject.toml`` (import-linter) enforce it::

    entry points   cli/            the `canaryflow` command: commands, terminal rendering (typer, rich)
    ─────────────────────────────────────────────────────────────────────────────────────────────
    dev tooling    dev/            local stacks for the demo and the tests: control plane, demo
                                   stacks, a Prefect server, Prometheus, processes and ports
    flows          flows/          (a package of its own) the rollout, cleanup, undo and release
                                   flows: where Prefect meets the adapters and the judge
    apps           webhooks/       the receiver of git pushes (FastAPI)
    ─────────────────────────────────────────────────────────────────────────────────────────────
    triggers       triggers/       ports `RolloutStarter`, `CellRuns` + Prefect adapters that start runs
    preflight      preflight.py    what a rollout needs, checked before it changes anything
    bake           baking.py       a wave's bake: its cells against later ones or their history
    blockers       health.py       a cell's stable healthy enough for its rollout to start
    ─────────────────────────────────────────────────────────────────────────────────────────────
    wiring         plan.py         a request resolved: spec, target, rollout id, queries
                   environment.py  the settings read from the environment, and the real adapters
                   exporter.py     the controller's metrics, computed from the reports directory
                   waves.py        what a release does next, wave by wave (pure: no I/O)
                   cells.py        what one cell's rollout run gets: work pool, environment, request
                   undoing.py      a target's last promotion taken back, under its lock
                   exposure.py     how far an analysis raises the canary's weight to decide in time
    ─────────────────────────────────────────────────────────────────────────────────────────────
    ports and      cluster/        port `Cluster` + Kubernetes and simulated adapters
    adapters       metrics/        port `MetricsSource` + Prometheus and simulated adapters
                   reports.py      a rollout's report files (status.json, observation logs)
                   history.py      every rollout that ended (history.jsonl), delivery figures
                   releasereport.py  a release's report (release.json): its waves and cells
                   releasehistory.py  every release that ended, the release figures
    ─────────────────────────────────────────────────────────────────────────────────────────────
    simulation     simulation/     simulated traffic: per-pod outcomes and latencies, /metrics
    ─────────────────────────────────────────────────────────────────────────────────────────────
    core           spec/ routes.py status.py replicas.py
                                   rollout specs, webhook routes, `RolloutStatus`, replica math
                   requests.py yamldoc.py querytemplates.py clock.py files.py liveness.py
                   secrets.py      `RolloutRequest`, YAML with lines, PromQL templates, time,
                                   atomic files, whether a recorded process still runs, secrets
                                   from the environment or the files it names
                   errors.py       the one exception tree
    ─────────────────────────────────────────────────────────────────────────────────────────────
    analysis       analysis/       (a package of its own) pure statistics: observations in,
                                   verdicts out

Siblings within a layer do not import each other (within the core, the lower rows are below the
upper ones). Each third-party library has one home: ``kubernetes`` in the cluster adapter, the
Prometheus client in the metrics adapter, ``prefect`` in ``flows`` and the trigger adapters,
``fastapi`` in the webhook app, ``typer`` and ``rich`` in the command line, ``matplotlib`` in the
verdict chart. Nothing here is loaded at import: clients and configuration are built at the entry
points (the command line, a flow's start, the webhook app's lifespan) and passed down.
"""
