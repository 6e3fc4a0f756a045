"""The `timing:` section of a spec: whether each trial measures what its network costs in time.

Beside FLOPs and parameters, a trial measures its network's inference latency (batch 1 and the
deployment batch `batch_size`) and its training throughput (at `train.batch_size`), on its own
device, in the dtype and memory format it trains in, paired with the plain network of the same
shape (search_space.timing). A worker process measures each architecture once and keeps the
figures for the next trial of that architecture (other seeds). `budget_s` bounds what one
measurement takes: on 2 CPU cores the quickstart's SE-ResNet-20 spends about a second.

Only the settings live here (pure pydantic, no torch).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from runners.spec.section import ConfigModel


class TimingConfig(ConfigModel):
    """The `timing:` section. Bad values raise ConfigError naming `timing.<field>`."""

    section: ClassVar[str] = "timing"

    enabled: bool = True
    # The deployment batch: latency is measured at batch 1 and at this size (per-stage time
    # too). Per image at this batch: latency_b<batch_size>_ms / batch_size.
    batch_size: int = Field(32, ge=1)
    training: bool = True  # also training throughput, at train.batch_size
    budget_s: float = Field(1.0, gt=0, le=600)  # seconds per architecture and worker, about
    rounds: int = Field(15, ge=5, le=1000)  # the most rounds (at least 5 are always taken)

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        return (1,) if self.batch_size == 1 else (1, self.batch_size)
