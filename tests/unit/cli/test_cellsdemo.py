"""The pieces of ``canaryflow demo --cells`` that need no cluster: the cells' names, what each
image does in each cell, and the specs it writes (valid, as `canaryflow spec validate` sees them).
The whole demo runs in tests/e2e/test_demo_cells.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from canaryflow.cli.cellsdemo import cell_names, cell_profiles, cell_rollout_spec_text, release_spec_text
from canaryflow.dev.stacks import BAD_IMAGE, GOOD_IMAGE, PROFILES, STABLE_IMAGE
from canaryflow.errors import UsageError
from canaryflow.spec.loading import load_release, load_spec


def test_cells_are_named_in_order_and_their_count_is_bounded() -> None:
    assert cell_names(3) == ["cell-1", "cell-2", "cell-3"]
    for count in (0, 1, 6):
        with pytest.raises(UsageError, match=f"demo --cells {count}: give between 2 and 5"):
            cell_names(count)


def test_the_bad_image_fails_only_in_the_later_cells() -> None:
    first, later = cell_profiles(0), cell_profiles(1)
    assert first[BAD_IMAGE] == PROFILES[STABLE_IMAGE]
    assert later[BAD_IMAGE] == PROFILES[BAD_IMAGE] != PROFILES[STABLE_IMAGE]
    assert first[GOOD_IMAGE] == later[GOOD_IMAGE] == PROFILES[GOOD_IMAGE]


def test_the_specs_it_writes_are_valid_and_say_what_the_demo_promises(tmp_path: Path) -> None:
    rollout = tmp_path / "rollout.yaml"
    rollout.write_text(cell_rollout_spec_text())
    spec = load_spec(rollout)
    assert [step.kind for step in spec.spec.steps] == ["setWeight", "analyze"]
    assert spec.spec.steps[0].set_weight == 50
    release = tmp_path / "release.yaml"
    urls = {
        "cell-1": "http://127.0.0.1:9001",
        "cell-2": "http://127.0.0.1:9002",
        "cell-3": "http://127.0.0.1:9003",
    }
    release.write_text(release_spec_text(rollout, urls))
    loaded = load_release(release)
    assert [wave.cells for wave in loaded.spec.waves] == [("cell-1",), ("cell-2", "cell-3")]
    assert loaded.spec.waves[0].bake is not None
    assert loaded.spec.on_failure == "rollback-all"
    assert {cell.name: (cell.context, cell.work_pool, cell.prometheus) for cell in loaded.spec.cells} == {
        name: (name, name, url) for name, url in urls.items()
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cells", "1"], "demo --cells 1: give between 2 and 5 cells"),
        (["--cells", "3", "--cluster", "kube"], "demo --cells runs each cell on a local control plane"),
    ],
)
def test_bad_arguments_are_refused_in_one_line_before_anything_starts(args: list[str], message: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "canaryflow", "demo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert "Starting" not in done.stdout + done.stderr
