"""Local stacks for the demo and the tests: everything a laptop needs to run a rollout for real.

What belongs here: the local Kubernetes control plane (`canaryflow.dev.kube`: certificates,
processes, kubeconfig, the binaries ``tools/kube/build.sh`` builds; several at once for cells,
`canaryflow.dev.kube.planes`), the demo's stacks
(`canaryflow.dev.stacks`: the example target on a simulated or a real cluster, its simulated
traffic, a real Prometheus scraping it), a ``prefect server`` of canaryflow's own
(`canaryflow.dev.prefectserver`, its database in SQLite or in a throwaway PostgreSQL,
`canaryflow.dev.postgres`), work pools with canaryflow's deployments and a ``prefect worker``
each (`canaryflow.dev.workers`), the local Prometheus (`canaryflow.dev.localprometheus`) and the
process and port plumbing they share (`canaryflow.dev.processes`).

What must not: anything a production rollout runs. Only the command line (`canaryflow.cli`) and
the tests import this package (the import contracts in ``pyproject.toml`` enforce it); it never
imports the flows, and it starts Prefect and Prometheus as other processes rather than importing
them.
"""
