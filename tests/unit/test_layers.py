"""Every module of ours sits in a layer of the import contract, and the package docstring draws
the same layers: a new module cannot dodge the contract, and the drawing cannot go stale."""

from __future__ import annotations

import pkgutil
import re
import tomllib
from pathlib import Path

import canaryflow

ROOT = Path(__file__).resolve().parents[2]


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    return [name.strip() for layer in layers for name in re.split(r"[|:]", layer)]


def test_every_module_of_canaryflow_is_in_a_layer() -> None:
    named = set(_layers())
    children = {f"canaryflow.{m.name}" for m in pkgutil.iter_modules(canaryflow.__path__)} - {
        "canaryflow.__main__"
    }
    assert children - named == set(), "add these modules to the layers contract in pyproject.toml"
    assert {"flows", "analysis"} <= named


def test_the_package_docstring_draws_every_layer() -> None:
    doc = canaryflow.__doc__ or ""
    for name in _layers():
        short = name.removeprefix("canaryflow.")
        assert re.search(rf"\b{re.escape(short)}(/|\.py|\b)", doc), (
            f"{short} is not drawn in canaryflow/__init__"
        )
