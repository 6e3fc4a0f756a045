"""The training loop of one trial: plain PyTorch, one epoch per call, checkpointable.

The loop keeps the GPU busy: data already sits on the device as uint8 or streams to it without
blocking (runners.trial.data), the learning rate steps per batch in Python floats, and losses are
summed on the device and read back once per epoch (plus one cheap divergence check every
`Trainer.check_every` steps), so there is no host sync per step.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from runners.spec.train import TrainConfig
from search_space.se_fast import use_fast_se

if TYPE_CHECKING:
    from runners.trial.data.splits import DataSplits
    from runners.trial.data.streamed import StreamedSplits

# onecycle: start at lr / 25, end at lr / (25 * 1e4), ramp over 30% of the run unless
# warmup_epochs says otherwise (the defaults of torch's OneCycleLR).
ONECYCLE_DIV, ONECYCLE_FINAL_DIV, ONECYCLE_PCT = 25.0, 1e4, 0.3


@dataclass
class EpochResult:
    """What one `Trainer.run_epoch` measured. Accuracies are fractions in [0, 1].

    When `diverged` is true the epoch stopped at the first check that saw a non-finite loss and
    validation was skipped: the losses and val_acc are NaN. `test_acc` is measured after the
    last epoch only, on datasets with a test split apart from validation (CIFAR).
    """

    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    val_acc: float
    val_top5: float | None  # None when the dataset has 5 classes or fewer
    images_per_s: float  # training images / training wall time (augmentation included)
    epoch_time_s: float  # training plus validation
    diverged: bool
    test_acc: float | None = None

    def metrics(self) -> dict[str, float]:
        """The per-epoch metrics of docs/mlflow-schema.md (val_top5, test_acc when defined)."""
        out = {
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "val_acc": self.val_acc,
            "images_per_s": self.images_per_s,
            "epoch_time_s": self.epoch_time_s,
        }
        if self.val_top5 is not None:
            out["val_top5"] = self.val_top5
        if self.test_acc is not None:
            out["test_acc"] = self.test_acc
        return out


def autocast_dtype(device_type: str, capability: tuple[int, int] | None) -> torch.dtype:
    """The mixed-precision dtype for a device: bf16 on the CPU and on GPUs of compute
    capability 8.0 or more (Ampere and later have bf16 tensor cores), fp16 on older GPUs (which
    then need a gradient scaler: fp16 gradients underflow without one)."""
    if device_type == "cuda" and (capability is None or capability < (8, 0)):
        return torch.float16
    return torch.bfloat16


def lr_schedule(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The lr multiplier for optimizer step `step` (0-based); stepped per batch.

    Linear warmup over warmup_epochs (reaching 1 on its last step), then: cosine from 1 to 0
    over the remaining steps, step (times gamma at each milestone epoch), or constant.
    onecycle is its own shape: linear from 1/25 up to 1, cosine down to 1/(25 * 1e4).
    """
    total = cfg.epochs * steps_per_epoch
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    milestones = [m * steps_per_epoch for m in cfg.milestones]

    def cosine(step: int, start: int, low: float) -> float:
        progress = min(1.0, (step - start) / max(1, total - start))
        return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress))

    def factor(step: int) -> float:
        if cfg.schedule == "onecycle":
            ramp = warmup or max(1, round(ONECYCLE_PCT * total))
            low = 1 / ONECYCLE_DIV
            if step < ramp:
                return low + (1 - low) * step / ramp
            return cosine(step, ramp, low / ONECYCLE_FINAL_DIV)
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "cosine":
            return cosine(step, warmup, 0.0)
        if cfg.schedule == "step":
            return cfg.gamma ** bisect_right(milestones, step)
        return 1.0  # constant

    return factor


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD or AdamW with weight decay on weight matrices/kernels only.

    Decaying BN scales/shifts and biases only fights the normalisation (the usual recipe,
    e.g. Goyal et al. 2017), so every parameter with ndim <= 1 gets weight_decay 0.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    groups = [
        {"params": params, "weight_decay": wd}
        for params, wd in ((decay, cfg.weight_decay), (no_decay, 0.0))
        if params
    ]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    return torch.optim.SGD(
        groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0
    )


class Trainer:
    """Trains `model` on `splits` one epoch at a time; `state_dict` after any epoch resumes it.

    Seeding: the caller seeds the model's initialisation (torch.manual_seed); the Trainer owns a
    torch.Generator on the device, seeded from `seed`, for shuffling and augmentation.
    """

    check_every: int = 50  # steps between divergence checks, each one host sync

    def __init__(
        self,
        model: nn.Module,
        splits: DataSplits | StreamedSplits,
        cfg: TrainConfig,
        device: torch.device | str,
        seed: int,
        augment: bool = True,
    ) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        on_cuda = self.device.type == "cuda"
        self.amp = cfg.amp == "on" or (cfg.amp == "auto" and on_cuda)
        capability = torch.cuda.get_device_capability(self.device) if on_cuda else None
        self.amp_dtype = autocast_dtype(self.device.type, capability)
        # fp16 needs loss scaling; bf16 has fp32's range and does not.
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp and self.amp_dtype == torch.float16
        )
        if on_cuda:  # fixed input shapes: let cuDNN pick the fastest kernels once
            torch.backends.cudnn.benchmark = True
        use_cl = cfg.channels_last == "on" or (cfg.channels_last == "auto" and on_cuda)
        self.memory_format = torch.channels_last if use_cl else torch.contiguous_format

        if cfg.se_impl == "fast":
            use_fast_se(model)
        self.model = model.to(self.device, memory_format=self.memory_format)
        self.splits = splits.to(self.device)
        self.num_classes = splits.num_classes
        self.use_augmentation = augment and (splits.pad > 0 or splits.flip)

        # Full batches only (a ragged last batch would give BN a tiny batch and the schedule an
        # uneven step); a training set smaller than batch_size is one batch.
        self.batch_size = min(cfg.batch_size, splits.num_train)
        self.steps_per_epoch = splits.num_train // self.batch_size
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = LambdaLR(self.optimizer, lr_schedule(cfg, self.steps_per_epoch))
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.epoch = 0  # epochs completed

    @property
    def done(self) -> bool:
        return self.epoch >= self.cfg.epochs

    @property
    def lr(self) -> float:
        """The learning rate the next optimizer step will use (first parameter group)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def run_epoch(self) -> EpochResult:
        """Train one epoch, then evaluate on the validation split (skipped if diverged), and
        after the last epoch on the test split if the dataset has one."""
        start = time.perf_counter()
        self._sync()
        train_loss, steps = self._train_epoch()
        self._sync()
        train_time = time.perf_counter() - start
        self.epoch += 1
        diverged = not math.isfinite(train_loss)
        test_acc = None
        if diverged:
            val_loss, val_acc, val_top5 = math.nan, math.nan, None
        else:
            val_loss, val_acc, val_top5 = self.evaluate()
            if self.done and self.splits.has_test:
                test_acc = self.evaluate("test")[1]
        return EpochResult(
            epoch=self.epoch,
            train_loss=train_loss,
            val_loss=val_loss,
            val_acc=val_acc,
            val_top5=val_top5,
            images_per_s=steps * self.batch_size / max(train_time, 1e-9),
            epoch_time_s=time.perf_counter() - start,
            diverged=diverged,
            test_acc=test_acc,
        )

    def _train_epoch(self) -> tuple[float, int]:
        """(mean training loss, steps taken); the loss is NaN/inf if training diverged."""
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        batches = self.splits.train_batches(self.batch_size, self.generator, self.use_augmentation)
        steps = 0
        for x, y in batches:
            loss_sum += self._train_step(x.contiguous(memory_format=self.memory_format), y)
            steps += 1
            if steps % self.check_every == 0 and not torch.isfinite(loss_sum).item():
                return math.nan, steps  # stop at once: the caller ends the trial
        return (loss_sum / max(steps, 1)).item(), steps

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp)

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            logits = self.model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.cfg.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not scaled ones
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.detach()

    @torch.inference_mode()
    def evaluate(self, split: str = "val") -> tuple[float, float, float | None]:
        """(loss, top-1 accuracy, top-5 accuracy) on the un-augmented `split` (val or test).

        The loss is plain cross-entropy (no label smoothing), comparable across configs.
        """
        self.model.eval()
        totals = torch.zeros(4, device=self.device)  # loss sum, top-1 hits, top-5 hits, count
        top5 = self.num_classes > 5
        for x, y in self.splits.eval_batches(split, self.cfg.eval_batch_size):
            with self._autocast():
                logits = self.model(x.contiguous(memory_format=self.memory_format))
            logits = logits.float()
            totals[0] += F.cross_entropy(logits, y, reduction="sum")
            totals[1] += (logits.argmax(dim=1) == y).sum()
            if top5:
                totals[2] += (logits.topk(5, dim=1).indices == y[:, None]).any(dim=1).sum()
            totals[3] += y.shape[0]
        loss_sum, hits, hits5, count = totals.tolist()  # the one host sync of evaluation
        n = max(count, 1)
        return loss_sum / n, hits / n, (hits5 / n if top5 else None)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: pass through torch.save (it holds live
        references to the model's tensors) and hand to `load_state_dict` of a fresh Trainer."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "generator": self.generator.get_state(),
            "scaler": self.scaler.state_dict(),
            # The global RNGs too, for layers that draw from them (dropout, stochastic depth).
            "torch_rng": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["steps_per_epoch"] != self.steps_per_epoch:
            raise ValueError(
                f"checkpoint has {state['steps_per_epoch']} steps per epoch, this trainer "
                f"{self.steps_per_epoch}: resume with the same data and batch_size"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.generator.set_state(state["generator"].cpu())
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
