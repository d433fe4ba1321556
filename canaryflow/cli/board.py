"""The demo's live board: one row per rollout (weight, latest verdict, last thing said)."""

from __future__ import annotations

from typing import Any

__all__ = ["Board"]


class Board:
    """The live display: one row per rollout (weight, latest verdict, last thing said)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, str]] = {}
        self.live: Any = None

    def event(self, rollout_id: str, event: str, details: Any) -> None:
        row = self.rows.setdefault(
            rollout_id, {"weight": "0%", "verdict": "", "said": "", "result": "running"}
        )
        if event == "weight":
            row["weight"] = f"{details['effective']:.0f}% (requested {details['requested']}%)"
        elif event == "verdict":
            row["verdict"] = f"interval {details['interval']}: {details['decision']}"
        elif event == "finished":
            row["result"] = details["result"]
        elif event == "log":
            row["said"] = str(details["message"])[:90]
        if self.live is not None:
            self.live.update(self.render())

    def render(self) -> Any:
        from rich.table import Table

        table = Table(title="canaryflow demo: rollouts of shop/web")
        for column in ("rollout", "canary weight", "judge", "result", "last step"):
            table.add_column(column)
        for rollout_id, row in self.rows.items():
            table.add_row(rollout_id, row["weight"], row["verdict"], row["result"], row["said"])
        return table
