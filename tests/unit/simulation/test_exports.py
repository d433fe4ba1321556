"""The public surface of `canaryflow.simulation` is what `__all__` says, and all of it exists."""

from __future__ import annotations

import canaryflow.simulation as simulation


def test_all_names_exist_and_are_unique() -> None:
    assert len(set(simulation.__all__)) == len(simulation.__all__)
    for name in simulation.__all__:
        assert hasattr(simulation, name), name


def test_public_names_are_exported() -> None:
    public = {n for n in vars(simulation) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(simulation.__all__)
