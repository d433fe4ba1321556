"""Git-push triggers: a webhook receiver that starts rollouts safely (DESIGN.md §6).

What belongs here, from the bottom up:

- ``signatures``  GitHub's HMAC signature and GitLab's token, the `Secret` type (pure)
- ``pushes``      GitHub and GitLab push payloads as one typed `PushEvent` (pure)
- ``routing``     which routes a push matches and the rollout requests it makes (pure)
- ``deliveries``  the SQLite store of pushes: the queue, claims, what started (stdlib sqlite3)
- ``dispatch``    `Dispatcher`: the thread that starts queued pushes, retrying while the
                  orchestrator is down
- ``handling``    `DeliveryHandler`: one delivery in, one `Reply` out; the receiver's counters
- ``app``         `create_app`: the FastAPI app (the only modules importing FastAPI are ``app``
                  and ``serve``)
- ``serve``       `serve`: builds the dependencies and runs uvicorn (``canaryflow webhook serve``)

The routes file models live in `canaryflow.routes`, the starter port and its adapters in
`canaryflow.triggers`. What must not be here: Prefect (only `canaryflow.triggers.prefect_runs`
starts deployments), module-level clients, or configuration read at import. Importing this
package imports neither FastAPI nor Prefect.
"""

from __future__ import annotations

__all__: list[str] = []
