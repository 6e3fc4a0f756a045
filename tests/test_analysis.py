"""The excitation analysis and the model file, on a tiny trained network (no Ray, no MLflow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from search_space import ArchConfig, build_model
from search_space.excitation import gate_sites, last_per_stage
from search_space.excitation_analysis import ALL, analyze, saturation
from search_space.serialize import load_model, read_payload, save_model

CLASSES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def trained() -> tuple[ArchConfig, torch.nn.Module, torch.Tensor, torch.Tensor]:
    """SE-ResNet-8 trained for a few steps on three separable classes of 8x8 images."""
    torch.manual_seed(0)
    arch = ArchConfig.parse(
        {
            "backbone": "cifar_resnet8",
            "num_classes": 3,
            "in_channels": 1,
            "input_size": 8,
            "se": {"reduction": 4},
        }
    )
    model = build_model(arch)
    y = torch.arange(96) % 3
    x = torch.randn(96, 1, 8, 8) + y[:, None, None, None].float()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(15):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return arch, model.eval(), x, y


def direct_excitations(model: torch.nn.Module, x: torch.Tensor, stage: int) -> torch.Tensor:
    """The last unit of `stage`'s SE scale, computed from what enters the SE block."""
    se = model.stages[stage - 1][-1].se
    seen: list[torch.Tensor] = []
    handle = se.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].clone()))
    with torch.no_grad():
        model(x)
        handle.remove()
        pooled = seen[0].mean((2, 3))
        return torch.sigmoid(se.fc2(torch.relu(se.fc1(pooled))))


def test_per_class_means_match_a_direct_computation(trained):
    arch, model, x, y = trained
    batches = [(x[i : i + 40], y[i : i + 40]) for i in range(0, len(x), 40)]
    tables = analyze(model, batches, CLASSES, arch.se.gate)
    assert list(tables.summary["block"]) == ["stage1.unit1", "stage2.unit1", "stage3.unit1"]
    for stage in (1, 2, 3):
        s = direct_excitations(model, x, stage)
        rows = tables.per_class[tables.per_class["stage"] == stage]
        for k, name in enumerate(CLASSES):
            expected = s[y == k].mean(0).numpy()
            got = rows[rows["class"] == name].sort_values("channel")["mean"].to_numpy()
            np.testing.assert_allclose(got, expected, atol=1e-5)
        overall = rows[rows["class"] == ALL].sort_values("channel")["mean"].to_numpy()
        np.testing.assert_allclose(overall, s.mean(0).numpy(), atol=1e-5)
        summary = tables.summary[tables.summary["stage"] == stage].iloc[0]
        per_class = torch.stack([s[y == k].mean(0) for k in range(3)])
        assert summary["class_spread"] == pytest.approx(
            per_class.std(0, unbiased=False).mean().item(), abs=1e-5
        )
        assert summary["saturated_high"] == pytest.approx((s >= 0.95).float().mean().item())


def test_blocks_are_named_by_stage_and_unit_and_the_default_is_the_last_of_each_stage():
    arch = ArchConfig.parse(
        {
            "backbone": "cifar_resnet20",
            "num_classes": 10,
            "in_channels": 3,
            "input_size": 32,
            "se": {"stages": "1,0,1"},
        }
    )
    sites = gate_sites(build_model(arch))
    assert [s.name for s in sites] == [f"stage{s}.unit{u}" for s in (1, 3) for u in (1, 2, 3)]
    assert [s.name for s in last_per_stage(sites)] == ["stage1.unit3", "stage3.unit3"]


def test_saturation_is_measured_against_the_gates_range():
    values = np.array([[0.99, 0.5], [0.97, 0.01]])
    assert saturation(values, "sigmoid") == (0.5, 0.25)
    assert saturation(values * 2 - 1, "tanh") == (0.5, 0.25)
    assert all(np.isnan(v) for v in saturation(values, "relu"))


def test_a_saved_model_loads_with_weights_only_and_gives_identical_outputs(trained, tmp_path):
    arch, model, x, _ = trained
    path = save_model(tmp_path / "m.pt", arch, model, meta={"seed": 0})
    payload = torch.load(path, weights_only=True)  # plain tensors and JSON-like values only
    assert payload["arch"] == arch.to_dict() and payload["meta"] == {"seed": 0}
    loaded_arch, loaded = load_model(path)
    assert loaded_arch == arch
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert read_payload(path)["format"] == "selab.model/1"


def test_a_file_that_is_not_a_model_is_refused(tmp_path):
    from search_space.errors import ConfigError

    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not a selab model file"):
        load_model(tmp_path / "other.pt")
