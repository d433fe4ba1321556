"""The public surface of the trigger modules is listed in `__all__`, and the pure parts stay pure."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

MODULES = [
    "canaryflow.routes",
    "canaryflow.triggers",
    "canaryflow.triggers.memory",
    "canaryflow.triggers.port",
    "canaryflow.triggers.prefect_runs",
    "canaryflow.webhooks",
    "canaryflow.webhooks.app",
    "canaryflow.webhooks.deliveries",
    "canaryflow.webhooks.handling",
    "canaryflow.webhooks.pushes",
    "canaryflow.webhooks.routing",
    "canaryflow.webhooks.serve",
    "canaryflow.webhooks.signatures",
]


@pytest.mark.parametrize("name", MODULES)
def test_every_public_name_is_exported_and_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert all(hasattr(module, member) for member in exported)
    own = {
        member
        for member, value in vars(module).items()
        if not member.startswith("_") and getattr(value, "__module__", None) == name and callable(value)
    }
    assert own <= exported, f"{name}: public but not in __all__: {sorted(own - exported)}"


def test_the_pure_parts_import_neither_fastapi_nor_prefect() -> None:
    pure = [
        "canaryflow.routes",
        "canaryflow.triggers",
        "canaryflow.webhooks",
        "canaryflow.webhooks.deliveries",
        "canaryflow.webhooks.handling",
        "canaryflow.webhooks.pushes",
        "canaryflow.webhooks.routing",
        "canaryflow.webhooks.signatures",
    ]
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in pure)
        + "print(sorted(m for m in ('fastapi', 'starlette', 'prefect', 'uvicorn') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
