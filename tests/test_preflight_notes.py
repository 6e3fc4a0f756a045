"""What the checks before a sweep notice that is not an error: `selab validate` (and `selab run`)
print it as `note: ...` and exit as they would without it.

The identity-path note (search_space.identity_path, docs/placements.md): POST gates the identity
path of all 54 units of ResNet-164, so at the default gate init it carries 0.5^54 of the signal;
started near 1 (`arch.se.gate_init`) it does not, and the note goes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import selab, tiny_spec, write_spec

POST_164 = {"backbone": "cifar_resnet164", "se": {"placement": "post", "reduction": 16}}


def notes(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("note: ")]


def test_post_on_resnet164_gets_the_identity_path_note_and_gate_init_lifts_it(
    tmp_path: Path,
) -> None:
    spec = write_spec(
        tmp_path / "post.yaml",
        tiny_spec(name="post", arch=POST_164, search={"grid": {"arch.se.reduction": [8, 16]}}),
    )
    result = selab(["validate", spec], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    (note,) = notes(result.stdout)  # one note for the fixed spec and both points alike
    assert "arch.se.placement post multiplies the identity path" in note
    assert "cifar_resnet164 has 54 such units" in note and "0.5^54" in note
    assert "Set arch.se.gate_init:" in note
    started = selab(
        ["validate", spec, "--set", "arch.se.gate_init=0.9975"], cwd=tmp_path, timeout=300
    )
    assert started.returncode == 0, started.stderr
    assert notes(started.stdout) == []


@pytest.mark.slow
def test_a_note_that_concerns_some_points_names_them(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path / "mixed.yaml",
        tiny_spec(
            name="mixed",
            arch={"backbone": "cifar_resnet164"},
            search={"grid": {"arch.se.placement": ["standard", "post"]}},
        ),
    )
    result = selab(["validate", spec], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    (note,) = notes(result.stdout)  # tiny_spec's grid also varies r: 4 points, 2 with post
    assert note.startswith(
        "note: grid point r=4 placement=post, grid point r=8 placement=post: "
        "arch.se.placement post multiplies"
    )
