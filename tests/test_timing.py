"""Measured time (search_space.timing, the `timing:` section, the trial's cache): what a
measurement reports, not how fast anything is. A network with a stage that sleeps must come out
slower than its plain twin, with the extra time in that stage; a plain network is its own
baseline; measuring leaves the trial's network and RNG as they were; a worker times each
architecture once. Real networks, real Trainer, real digits."""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import runners.trial.timing as trial_timing_module
from runners.spec.data import DataConfig
from runners.spec.load import parse_spec
from runners.spec.timing import TimingConfig
from runners.spec.train import TrainConfig
from runners.storage.paths import SweepFolder
from runners.trial.data.load import load_splits
from runners.trial.timing import trial_timing
from runners.trial.training import Trainer
from search_space import ArchConfig, build_model
from search_space.errors import ConfigError
from search_space.timing import TimingPlan, time_arch, time_networks

DIGITS = {"num_classes": 10, "in_channels": 1, "input_size": 8}
SMALL_PLAN = TimingPlan(batch_sizes=(1, 4), train_batch_size=8, budget_s=0.2)
SLEEP_S = 0.02  # long beside the network (about 1 ms), so that load on the machine cannot hide it


class Sleep(nn.Module):
    """Costs SLEEP_S per call and nothing else: time that no FLOP count sees."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(SLEEP_S)
        return x


@pytest.fixture(autouse=True)
def one_thread() -> None:
    """One torch thread, as a trial with one CPU has: two threads on two busy cores wait on
    each other at every op."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def arch(**se) -> ArchConfig:
    return ArchConfig.parse({"backbone": "cifar_resnet8", **DIGITS, "se": {"reduction": 4, **se}})


def test_a_stage_that_sleeps_is_slower_and_its_time_lands_in_that_stage() -> None:
    torch.manual_seed(0)
    plain_arch = arch(enabled=False)
    plain = build_model(plain_arch)
    slowed = copy.deepcopy(plain)
    slowed.stages[1].append(Sleep())
    timing = time_networks(slowed, plain, SMALL_PLAN, 1, 8, 10)
    metrics = timing.as_metrics()

    assert timing.rounds >= 5
    for batch in (1, 4):
        # The sleep adds at least its own length to every forward.
        assert (
            metrics[f"latency_b{batch}_ms"] - metrics[f"plain_latency_b{batch}_ms"]
            >= 0.75e3 * SLEEP_S
        )
        assert metrics[f"latency_ratio_b{batch}"] > 1.1
    assert metrics["throughput_train_ratio"] < 0.9  # a training step runs the forward too
    added = [metrics[f"stage{s}.se_latency_ms"] for s in (1, 2, 3)]
    assert added[1] >= 0.75e3 * SLEEP_S
    assert added[1] > 0.8 * sum(max(a, 0.0) for a in added)  # the share is the slowed stage's
    own = [metrics[f"stage{s}.latency_ms"] for s in (1, 2, 3)]
    assert own[1] == max(own)


def test_every_figure_is_positive_and_finite_and_a_plain_network_is_its_own_baseline() -> None:
    se = time_arch(arch(), SMALL_PLAN).as_metrics()
    plain = time_arch(arch(enabled=False), SMALL_PLAN).as_metrics()
    for metrics in (se, plain):
        assert all(math.isfinite(v) for v in metrics.values())
        for key in (
            "latency_b1_ms",
            "latency_b4_ms",
            "plain_latency_b1_ms",
            "throughput_train_img_s",
            "stage1.latency_ms",
            "latency_ratio_b1",
        ):
            assert metrics[key] > 0, key
        assert all(metrics[f"latency_noise_b{b}"] >= 0 for b in (1, 4))
    # Without attention the network is the plain one: ratio 1 and nothing added, by definition.
    assert plain["latency_ratio_b1"] == plain["latency_ratio_b4"] == 1.0
    assert plain["throughput_train_ratio"] == 1.0
    assert [plain[f"stage{s}.se_latency_ms"] for s in (1, 2, 3)] == [0.0, 0.0, 0.0]
    assert plain["latency_b1_ms"] == plain["plain_latency_b1_ms"]
    # With attention the plain network is timed beside it: a different network, other figures.
    assert se["latency_b1_ms"] != se["plain_latency_b1_ms"]


def test_measuring_changes_neither_the_network_nor_the_global_rng() -> None:
    """A seeded trial computes the same whether its worker measured time first or not."""
    torch.manual_seed(0)
    model, plain = build_model(arch()), build_model(arch(enabled=False))
    before = {net: {k: v.clone() for k, v in net.state_dict().items()} for net in (model, plain)}
    rng = torch.get_rng_state()
    time_arch(arch(), SMALL_PLAN, model=model, plain=plain)
    assert torch.equal(torch.get_rng_state(), rng)
    for net, state in before.items():  # the plain network is reused: it gets its state back
        after = net.state_dict()
        assert all(torch.equal(state[k], after[k]) for k in state)  # BN statistics too


def test_rounds_stop_at_the_budget_but_never_before_five_nor_after_the_most() -> None:
    one_batch = {"batch_sizes": (1,), "train_batch_size": None}
    capped = time_arch(arch(), TimingPlan(**one_batch, budget_s=600, max_rounds=8))
    slowed = build_model(arch(enabled=False))
    slowed.stages[0].append(Sleep())
    slow = time_networks(
        slowed, slowed, TimingPlan(**one_batch, budget_s=0.01, max_rounds=40), 1, 8, 10
    )
    assert capped.rounds == 8 and slow.rounds == 5
    assert slow.seconds < 60  # 5 rounds, not the 40 allowed
    assert "throughput_train_img_s" not in capped.as_metrics()  # no training measure asked for


def trainer_for(arch_config: ArchConfig, splits, batch_size: int = 32) -> Trainer:
    return Trainer(
        build_model(arch_config),
        splits,
        TrainConfig(batch_size=batch_size, epochs=1),
        torch.device("cpu"),
        seed=0,
    )


def test_a_worker_times_each_architecture_once_and_shares_it_through_the_sweep_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[0])
        return time_arch(*args, **kwargs)

    monkeypatch.setattr(trial_timing_module, "time_arch", counted)
    monkeypatch.setattr(trial_timing_module, "_measured", {})
    monkeypatch.setattr(trial_timing_module, "_plain_networks", {})
    splits = load_splits(DataConfig(name="digits"), "cpu")
    cfg = TimingConfig(batch_size=4, budget_s=0.1)
    folder = SweepFolder(str(tmp_path), "sweep")
    r4, r8 = arch(reduction=4), arch(reduction=8)
    first = trial_timing(r4, cfg, trainer_for(r4, splits), folder)
    again = trial_timing(r4, cfg, trainer_for(r4, splits), folder)  # another seed
    other = trial_timing(r8, cfg, trainer_for(r8, splits), folder)
    assert calls == [r4, r8] and first == again and other != first
    # Another batch size is another measurement; the plain network was built once.
    trial_timing(r4, cfg, trainer_for(r4, splits, batch_size=16), folder)
    assert calls == [r4, r8, r4] and len(trial_timing_module._plain_networks) == 1
    assert trial_timing(r4, TimingConfig(enabled=False), trainer_for(r4, splits)) == {}
    assert "latency_b4_ms" in first and "throughput_train_img_s" in first
    # A new worker process of the same machine reads what an earlier one measured.
    monkeypatch.setattr(trial_timing_module, "_measured", {})
    assert trial_timing(r8, cfg, trainer_for(r8, splits), folder) == other
    assert calls == [r4, r8, r4]
    assert len(list((tmp_path / "sweep" / ".selab_timing").iterdir())) == 3
    # Without the sweep's folder (or with another thread count: another key) it measures.
    monkeypatch.setattr(trial_timing_module, "_measured", {})
    trial_timing(r8, cfg, trainer_for(r8, splits))
    assert calls == [r4, r8, r4, r8]


def test_the_timing_section_names_its_bad_fields(tiny_spec) -> None:
    spec = parse_spec(tiny_spec())
    assert spec.timing.enabled and spec.timing.batch_sizes == (1, 32)
    assert parse_spec(tiny_spec(timing={"batch_size": 1})).timing.batch_sizes == (1,)
    for bad, field in (
        ({"batch_size": 0}, "timing.batch_size"),
        ({"rounds": 2}, "timing.rounds"),
        ({"budget_s": 0}, "timing.budget_s"),
        ({"warmup": 3}, "timing.warmup"),
    ):
        with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
            parse_spec(tiny_spec(timing=bad))


@pytest.mark.slow
def test_every_trial_of_a_sweep_logs_its_measured_time_once(
    ray_address: str, tiny_spec, tmp_path: Path, sweep_runs
) -> None:
    """A real sweep (2 SE points and the baseline, 2 seeds): every trial run carries the time
    metrics at step 0, positive and finite; the baseline's ratios are 1."""
    from mlflow import MlflowClient

    from runners.sweep.run import run_sweep

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    data = tiny_spec(
        name="timed",
        seeds=[0, 1],
        train={"epochs": 1},
        timing={"batch_size": 8, "budget_s": 0.3},
        search={"grid": {"arch.se.reduction": [4, 8]}, "baseline": True},
    )
    result = run_sweep(
        parse_spec(data), address=ray_address, tracking_uri=uri, storage=str(tmp_path / "runs")
    )
    assert result.complete and result.statuses["finished"] == 6
    client = MlflowClient(uri)
    _, trials = sweep_runs(uri, "timed")
    assert len(trials) == 6
    for run in trials:
        metrics = run.data.metrics
        for key in (
            "latency_b1_ms",
            "latency_b8_ms",
            "latency_ratio_b1",
            "latency_noise_b1",
            "throughput_train_img_s",
            "throughput_train_ratio",
            "stage3.latency_ms",
            "plain_latency_b8_ms",
            "latency_rounds",
        ):
            assert math.isfinite(metrics[key]) and metrics[key] > 0, key
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0]
        if run.data.tags["selab.baseline"] == "true":
            assert metrics["latency_ratio_b1"] == 1.0 == metrics["throughput_train_ratio"]
            assert metrics["stage2.se_latency_ms"] == 0.0
