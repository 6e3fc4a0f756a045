"""What a network costs in time: inference latency and training throughput, measured.

FLOPs (`cost.py`) say what a network computes; time says what it costs to run on a device, and
SE's time is not in its FLOPs: its squeeze, gates and channel scaling are a fraction of a
percent of ResNet-50's FLOPs but several percent of its time, because they are memory-bound
passes over the feature maps and many small ops (docs/cost.md).

What is timed, on the device, dtype and memory format given (a trial's own: bf16 autocast and
channels-last where it trains so), on random inputs already on the device:

- latency: one forward pass in eval mode without autograd, at each batch size of the plan
  (batch 1 and a deployment batch); data loading and host-device copies are not included;
- training: forward, cross-entropy loss, backward and an SGD step (momentum 0.9) in train
  mode, at the training batch size; data loading and augmentation are not included;
- per stage: forward hooks on each stage clock its share of the deployment-batch forward.

How: a few warm-up calls per network and measure (cuDNN's autotuning, allocator growth), then
rounds. A round times, for each measure, the plain network of the same shape, then the network,
then the plain network again (after one untimed call): the network/plain ratio of a round takes
the mean of its two plain timings, so that load which drifts during the measurement (a shared
CPU, a GPU shared with other trials, clocks) hits both sides alike and the ratio holds where the
absolute figure does not. The two plain timings of a round give the noise floor: the median
over rounds of how far their ratio is from 1; a network/plain ratio within it of 1 is not told
apart from 1. Figures are medians over rounds with their interquartile range. A timed sample is
enough back-to-back calls to last MIN_SAMPLE_S; on CUDA, CUDA events bracket it and are read
after synchronising, elsewhere the host clock is read.

Rounds go on until the measurement, warm-up included, has taken `budget_s` (at least
MIN_ROUNDS rounds, at most `max_rounds`): a slow network gets fewer rounds, not more time. The
caller sets the CPU threads (`torch.set_num_threads`), as for training. The global RNGs are left
as they were (dropout in a training step draws from them), so measuring never changes what a
seeded trial computes.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import ArchConfig
from .networks import build_model

MIN_ROUNDS = 5
MIN_SAMPLE_S = 0.002  # a timed sample: enough calls that the clock and Python do not dominate
WARMUP_CALLS = 2
TRAIN = "train"  # the training measure's name beside the latency batch sizes

Step = Callable[[], None]


@dataclass(frozen=True)
class TimingPlan:
    """Where and how to time: the trial's device, precision and layout, the batch sizes, and
    the budget. The last latency batch size is the deployment batch (per-stage times)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_sizes: tuple[int, ...] = (1, 32)
    train_batch_size: int | None = 64  # None: no training measure
    autocast_dtype: torch.dtype | None = None  # None: full precision
    memory_format: torch.memory_format = torch.contiguous_format
    budget_s: float = 1.5
    max_rounds: int = 15

    def __post_init__(self) -> None:
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ValueError(f"batch_sizes: at least one, each >= 1, got {self.batch_sizes}")
        if self.max_rounds < MIN_ROUNDS:
            raise ValueError(f"max_rounds: at least {MIN_ROUNDS}, got {self.max_rounds}")

    @property
    def deploy_batch(self) -> int:
        return self.batch_sizes[-1]

    def key(self) -> str:
        """What makes two measurements of one architecture the same measurement."""
        return (
            f"{self.device}/{self.autocast_dtype}/{self.memory_format}/"
            f"{self.batch_sizes}/{self.train_batch_size}"
        )


@dataclass(frozen=True)
class Spread:
    """Median and quartiles over rounds."""

    median: float
    q1: float
    q3: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        if len(values) < 2:
            value = values[0] if values else math.nan
            return cls(value, value, value)
        q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
        return cls(median, q1, q3)

    @classmethod
    def exact(cls, value: float) -> Spread:
        return cls(value, value, value)


@dataclass(frozen=True)
class Paired:
    """One measure of the network beside the plain network: seconds per call of each, the
    network/plain ratio per round, and the noise floor: the median over rounds of how far the
    ratio of the round's two plain timings is from 1 (spread and any effect of order alike)."""

    network: Spread
    plain: Spread
    ratio: Spread
    noise: float


@dataclass(frozen=True)
class Timing:
    """Measured time of a network, beside the plain network of the same shape."""

    latency: dict[int, Paired]  # by batch size: seconds per forward
    training: Paired | None  # seconds per training step
    train_batch_size: int | None
    stages: tuple[Spread, ...]  # the network's stages at the deployment batch, s per forward
    stages_added: tuple[Spread, ...]  # network minus plain, per stage
    rounds: int
    seconds: float  # what measuring took, warm-up included

    def as_metrics(self) -> dict[str, float]:
        """Flat metric names (docs/mlflow-schema.md): latency_b1_ms, latency_ratio_b1, ...,
        throughput_train_img_s, stage1.latency_ms, stage1.se_latency_ms, latency_rounds."""
        out: dict[str, float] = {}
        for batch, m in self.latency.items():
            out |= {
                f"latency_b{batch}_ms": 1e3 * m.network.median,
                f"latency_b{batch}_iqr_ms": 1e3 * m.network.iqr,
                f"plain_latency_b{batch}_ms": 1e3 * m.plain.median,
                f"latency_ratio_b{batch}": m.ratio.median,
                f"latency_ratio_b{batch}_iqr": m.ratio.iqr,
                f"latency_noise_b{batch}": m.noise,
            }
        if self.training is not None and self.train_batch_size:
            t, images = self.training, self.train_batch_size
            # A throughput ratio is the inverse of the time ratio: network img/s over plain.
            out |= {
                "throughput_train_img_s": images / t.network.median,
                "plain_throughput_train_img_s": images / t.plain.median,
                "throughput_train_ratio": 1 / t.ratio.median,
                "throughput_train_ratio_iqr": 1 / t.ratio.q1 - 1 / t.ratio.q3,
                "throughput_train_noise": t.noise,
            }
        for i, (own, added) in enumerate(zip(self.stages, self.stages_added, strict=True)):
            out[f"stage{i + 1}.latency_ms"] = 1e3 * own.median
            out[f"stage{i + 1}.se_latency_ms"] = 1e3 * added.median
        out["latency_rounds"] = float(self.rounds)
        return out


def time_arch(
    arch: ArchConfig,
    plan: TimingPlan,
    model: nn.Module | None = None,
    plain: nn.Module | None = None,
) -> Timing:
    """Time `arch` beside its plain network (the same network without attention) on `plan`.

    `model`: the network as it will be trained (fast SE swapped in, say); it is copied, never
    changed. `plain`: the plain network of the same shape, to reuse across calls (its weights
    and BN statistics are put back afterwards); None builds it. A network without attention is
    its own plain network: its ratios are 1 and its stages add nothing, by definition.
    """
    devices = [plan.device] if plan.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        network = copy.deepcopy(model) if model is not None else build_model(arch)
        if not any(arch.stage_mask):
            return _measure(
                network, network, plan, arch.in_channels, arch.input_size, arch.num_classes
            )
        if plain is None:
            plain = build_model(arch.plain())
        # Training steps at lr 0 keep the weights, unless fp16 gradients overflow (inf times
        # 0 is NaN); BN statistics move: the reused network gets its state back.
        state = copy.deepcopy(plain.state_dict())
        try:
            return _measure(
                network, plain, plan, arch.in_channels, arch.input_size, arch.num_classes
            )
        finally:
            plain.load_state_dict(state)


def time_networks(
    network: nn.Module,
    plain: nn.Module,
    plan: TimingPlan,
    in_channels: int,
    input_size: int,
    num_classes: int,
) -> Timing:
    """`time_arch` for two built networks (`network is plain`: a network timed alone)."""
    devices = [plan.device] if plan.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        return _measure(network, plain, plan, in_channels, input_size, num_classes)


def _measure(
    network: nn.Module,
    plain: nn.Module,
    plan: TimingPlan,
    in_channels: int,
    input_size: int,
    num_classes: int,
) -> Timing:
    began = time.perf_counter()
    alone = network is plain
    nets = {"plain": _prepare(plain, plan)} | ({} if alone else {"net": _prepare(network, plan)})
    inputs = _Inputs(plan, in_channels, input_size, num_classes)
    measures = [*plan.batch_sizes, *([TRAIN] if plan.train_batch_size else [])]
    steps = {
        (name, measure): _step(net, measure, inputs, plan)
        for name, net in nets.items()
        for measure in measures
    }
    clocks = {name: _StageClock(net, plan.device) for name, net in nets.items()}
    try:
        per_call = _warm_up(steps, nets, measures, plan.device)
        calls = {
            m: max(1, math.ceil(MIN_SAMPLE_S / min(per_call[n, m] for n in nets))) for m in measures
        }
        # plain, network, plain: the network between two plain timings (alone: plain twice).
        order = ["plain", "plain"] if alone else ["plain", "net", "plain"]
        samples: dict[Any, list[list[float]]] = {m: [] for m in measures}
        stage_samples: list[list[tuple[float, ...]]] = []
        rounds = 0
        while rounds < plan.max_rounds and (
            rounds < MIN_ROUNDS or time.perf_counter() - began < plan.budget_s
        ):
            rounds += 1
            for m in measures:
                _set_mode(nets.values(), training=m == TRAIN)
                clocked = clocks if m == plan.deploy_batch else {}
                per_side, per_stage = _round(steps, m, calls[m], order, clocked, plan.device)
                samples[m].append(per_side)
                if per_stage:
                    stage_samples.append(per_stage)
    finally:
        for clock in clocks.values():
            clock.remove()
    return _summarise(samples, stage_samples, plan, alone, rounds, time.perf_counter() - began)


def _round(
    steps: dict[tuple[str, Any], Step],
    measure: Any,
    calls: int,
    order: list[str],
    clocks: dict[str, _StageClock],
    device: torch.device,
) -> tuple[list[float], list[tuple[float, ...]]]:
    """One measure of one round: seconds per call of each side in `order`, and per stage when
    `clocks` are given."""
    # One untimed call first: the first call after another measure (another batch size or
    # mode) pays for memory the last one freed, and would be slower than the same network's
    # second timing in the round.
    steps[order[0], measure]()
    per_side, per_stage = [], []
    for name in order:
        clock = clocks.get(name)
        per_side.append(_sample(steps[name, measure], calls, device, clock))
        if clock is not None:
            per_stage.append(clock.per_call(calls))
    return per_side, per_stage


def _summarise(
    samples: dict[Any, list[list[float]]],
    stage_samples: list[list[tuple]],
    plan: TimingPlan,
    alone: bool,
    rounds: int,
    seconds: float,
) -> Timing:
    paired = {m: _paired(rows, alone) for m, rows in samples.items()}
    stages: tuple[Spread, ...] = ()
    added: tuple[Spread, ...] = ()
    if stage_samples and stage_samples[0][0]:
        count = len(stage_samples[0][0])
        own = 0 if alone else 1  # the network's stages: the middle sample of a round
        stages = tuple(Spread.of([r[own][i] for r in stage_samples]) for i in range(count))
        added = tuple(
            Spread.exact(0.0)
            if alone
            else Spread.of([r[1][i] - (r[0][i] + r[2][i]) / 2 for r in stage_samples])
            for i in range(count)
        )
    return Timing(
        latency={b: paired[b] for b in plan.batch_sizes},
        training=paired.get(TRAIN),
        train_batch_size=plan.train_batch_size,
        stages=stages,
        stages_added=added,
        rounds=rounds,
        seconds=seconds,
    )


def _paired(rows: list[list[float]], alone: bool) -> Paired:
    """Per round: [plain, network, plain] seconds (alone: [plain, plain])."""
    noise = statistics.median(abs(r[-1] / r[0] - 1) for r in rows)
    if alone:
        every = Spread.of([t for r in rows for t in r])
        return Paired(every, every, Spread.exact(1.0), noise)
    return Paired(
        network=Spread.of([r[1] for r in rows]),
        plain=Spread.of([(r[0] + r[2]) / 2 for r in rows]),
        ratio=Spread.of([2 * r[1] / (r[0] + r[2]) for r in rows]),
        noise=noise,
    )


# ----------------------------------------------------------------------------- the timed steps


class _Inputs:
    """Random images and labels on the device, one batch per batch size (a seeded generator
    of their own: the global RNGs are not drawn from)."""

    def __init__(self, plan: TimingPlan, in_channels: int, size: int, num_classes: int) -> None:
        self.plan, self.shape, self.num_classes = plan, (in_channels, size, size), num_classes
        self._generator = torch.Generator().manual_seed(0)
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        if size not in self._cache:
            x = torch.randn(size, *self.shape, generator=self._generator)
            y = torch.randint(0, self.num_classes, (size,), generator=self._generator)
            self._cache[size] = (
                x.to(self.plan.device, memory_format=self.plan.memory_format),
                y.to(self.plan.device),
            )
        return self._cache[size]


def _prepare(net: nn.Module, plan: TimingPlan) -> nn.Module:
    return net.to(plan.device, memory_format=plan.memory_format)


def _autocast(plan: TimingPlan) -> torch.autocast:
    return torch.autocast(
        plan.device.type, dtype=plan.autocast_dtype, enabled=plan.autocast_dtype is not None
    )


def _step(net: nn.Module, measure: Any, inputs: _Inputs, plan: TimingPlan) -> Step:
    """One call of a measure: a forward at a batch size, or one training step."""
    if measure != TRAIN:
        x, _ = inputs.batch(measure)

        def forward() -> None:
            with torch.inference_mode(), _autocast(plan):
                net(x)

        return forward
    assert plan.train_batch_size is not None
    x, y = inputs.batch(plan.train_batch_size)
    # lr 0: the step's arithmetic runs in full and the weights stay as they are.
    optimizer = torch.optim.SGD(net.parameters(), lr=0.0, momentum=0.9)

    def train_step() -> None:
        with _autocast(plan):
            logits = net(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return train_step


def _set_mode(nets: Any, training: bool) -> None:
    for net in nets:
        net.train(training)


def _warm_up(
    steps: dict[tuple[str, Any], Step],
    nets: dict[str, nn.Module],
    measures: list,
    device: torch.device,
) -> dict[tuple[str, Any], float]:
    """WARMUP_CALLS calls of every step; the seconds of the last one, per (network, measure)."""
    per_call = {}
    for m in measures:
        _set_mode(nets.values(), training=m == TRAIN)
        for name in nets:
            for _ in range(WARMUP_CALLS - 1):
                steps[name, m]()
            per_call[name, m] = _sample(steps[name, m], 1, device, None)
    return per_call


def _sample(step: Step, calls: int, device: torch.device, clock: _StageClock | None) -> float:
    """Seconds per call over `calls` back-to-back calls."""
    with clock.running() if clock is not None else _nothing():
        if device.type == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                step()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / calls
        began = time.perf_counter()
        for _ in range(calls):
            step()
        return (time.perf_counter() - began) / calls


@contextmanager
def _nothing() -> Iterator[None]:
    yield


class _StageClock:
    """Forward hooks on each stage that add up the time spent in it while `running`: the host
    clock on a CPU, CUDA events (read after the sample has synchronised) on a GPU."""

    def __init__(self, net: nn.Module, device: torch.device) -> None:
        self.stages = list(getattr(net, "stages", []))
        self.cuda = device.type == "cuda"
        self.on = False
        self.totals = [0.0] * len(self.stages)
        self._events: list[list[tuple[Any, Any]]] = [[] for _ in self.stages]
        self._open: list[Any] = [None] * len(self.stages)
        self._hooks = []
        for i, stage in enumerate(self.stages):
            self._hooks.append(stage.register_forward_pre_hook(self._enter(i)))
            self._hooks.append(stage.register_forward_hook(self._leave(i)))

    def _now(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _enter(self, i: int) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            if self.on:
                self._open[i] = self._now()

        return hook

    def _leave(self, i: int) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            if self.on:
                if self.cuda:
                    self._events[i].append((self._open[i], self._now()))
                else:
                    self.totals[i] += time.perf_counter() - self._open[i]

        return hook

    @contextmanager
    def running(self) -> Iterator[None]:
        self.totals = [0.0] * len(self.stages)
        self._events = [[] for _ in self.stages]
        self.on = True
        try:
            yield
        finally:
            self.on = False

    def per_call(self, calls: int) -> tuple[float, ...]:
        """Seconds per call in each stage, over the last sample."""
        if self.cuda:
            torch.cuda.synchronize()
            self.totals = [sum(a.elapsed_time(b) for a, b in pairs) / 1e3 for pairs in self._events]
        return tuple(t / calls for t in self.totals)

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
