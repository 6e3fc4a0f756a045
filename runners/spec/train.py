"""The `train:` section of a spec: how one trial trains (epochs, optimizer, schedule, precision).

Only the settings live here (pure pydantic, no torch); the loop that follows them is
runners.trial.training.
"""

from __future__ import annotations

from itertools import pairwise
from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from runners.spec.section import ConfigModel


class TrainConfig(ConfigModel):
    """The `train:` section of a spec. Bad values raise ConfigError naming `train.<field>`."""

    section: ClassVar[str] = "train"

    epochs: int = Field(5, ge=1)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd only
    nesterov: bool = True  # sgd only; ignored when momentum is 0
    weight_decay: float = Field(5e-4, ge=0)  # not applied to BN and bias parameters
    schedule: Literal["cosine", "step", "constant", "onecycle"] = "cosine"
    milestones: list[int] = Field(default_factory=list, validate_default=True)  # epochs (step)
    gamma: float = Field(0.1, gt=0, le=1)  # step: lr factor at each milestone
    warmup_epochs: float = Field(0, ge=0, validate_default=True)  # may be fractional
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    # Mixed precision. auto: on for CUDA only, in bf16 on GPUs that support it (compute
    # capability 8.0+: A100, H100, RTX 30xx and later), else fp16 with a gradient scaler. on:
    # also on the CPU (bf16). See autocast_dtype.
    amp: Literal["auto", "on", "off"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"  # auto = on for CUDA only
    # How SE blocks are computed, not what: "fast" swaps each SqueezeExcite for
    # search_space.se_fast.FastSqueezeExcite (same parameters, outputs and gradients; fewer
    # passes over the feature map in backward). Other attention kinds are unaffected.
    se_impl: Literal["plain", "fast"] = "plain"
    grad_clip: float | None = Field(None, gt=0)  # max global grad norm
    eval_batch_size: int = Field(1024, ge=1)
    # Epochs between checkpoints (the last epoch always gets one): fewer writes to storage.
    checkpoint_every: int = Field(1, ge=1)

    @field_validator("milestones")
    @classmethod
    def _milestones(cls, value: list[int], info: ValidationInfo) -> list[int]:
        if any(m < 1 for m in value) or any(a >= b for a, b in pairwise(value)):
            raise ValueError(f"must be increasing epoch numbers >= 1, got {value}")
        if info.data.get("schedule") == "step" and not value:
            raise ValueError(
                "schedule 'step' needs milestones: the epochs after which lr is multiplied "
                "by gamma, e.g. [30, 60]"
            )
        return value

    @field_validator("warmup_epochs")
    @classmethod
    def _warmup_within_run(cls, value: float, info: ValidationInfo) -> float:
        epochs = info.data.get("epochs")
        if epochs is not None and value > epochs:
            raise ValueError(f"must be at most epochs ({epochs}), got {value}")
        return value
