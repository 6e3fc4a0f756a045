"""The `data:` section of a spec and the one entry point that turns it into a trial's splits.

The datasets themselves live in runners.datasets: `cifar` (safe unpickling, a validation split
carved from the training batches, the official test split apart), `imagefolder` (decoded into
memory under `memory_budget_mb`), `streamed` (larger folders, read from disk through
torchvision), `builtin` (digits, synthetic). In-memory splits hold uint8 on the device and are
normalised per batch (runners.datasets.splits).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from runners.config_base import ConfigModel
from runners.datasets.splits import (
    DatasetInfo,
    DataSplits,
    augment,
    iterate_batches,
    stratified_order,
    stratified_split,
)
from search_space.errors import allowed

if TYPE_CHECKING:
    import torch

    from runners.datasets.streamed import StreamedSplits

__all__ = [
    "ConfigModel", "DataConfig", "DataSplits", "DatasetInfo", "augment", "inspect_dataset",
    "iterate_batches", "load_splits", "stratified_order", "stratified_split",
]

DatasetName = Literal["digits", "cifar10", "cifar100", "imagefolder", "synthetic"]
FIXED_IMAGE_SIZE = {"digits": 8, "cifar10": 32, "cifar100": 32}
FILE_DATASETS = ("cifar10", "cifar100", "imagefolder")  # the ones that read data.root
DIGITS_IMAGES = 1797


class DataConfig(ConfigModel):
    """The `data:` section of a spec. Fields that do not apply to the chosen dataset are ignored
    (e.g. `num_classes` outside synthetic), except `image_size`, which must match the fixed size
    of digits (8) and CIFAR (32) when given."""

    section: ClassVar[str] = "data"

    name: DatasetName
    root: str | None = None  # None: $SELAB_DATA, else ./data (made absolute by the driver)
    download: bool = False  # CIFAR only: fetch the archive when the files are missing
    val_fraction: float = Field(0.2, gt=0, lt=1)  # digits, imagefolder (no train/val folders)
    # Validation images: CIFAR carves them from the training batches (default 5000), synthetic
    # generates them (default 256).
    val_size: int | None = Field(None, ge=1)
    split_seed: int = 0  # the split (and synthetic data) never depend on the trial seed
    image_size: int | None = Field(None, ge=1, validate_default=True)
    num_classes: int = Field(10, ge=2)  # synthetic
    channels: int = Field(3, ge=1)  # synthetic
    train_size: int = Field(512, ge=1)  # synthetic
    limit_train: int | None = Field(None, ge=1)  # stratified subset of the training split
    augment: bool = True
    # imagefolder: decoded into memory (uint8) up to this size, streamed from disk above it.
    memory_budget_mb: int = Field(4096, ge=0)
    loader_workers: int | None = Field(None, ge=0)  # streamed: DataLoader processes (None: CPUs)

    @field_validator("image_size")
    @classmethod
    def _image_size_fits_dataset(cls, value: int | None, info: ValidationInfo) -> int | None:
        fixed = FIXED_IMAGE_SIZE.get(info.data.get("name", ""))
        if value is not None and fixed is not None and value != fixed:
            raise ValueError(
                f"{info.data['name']} images are {fixed}x{fixed}; leave image_size unset "
                f"(resizing applies to: {allowed(['imagefolder', 'synthetic'])})"
            )
        return value

    def root_path(self) -> Path:
        return Path(self.root or os.environ.get("SELAB_DATA") or "./data").expanduser()

    def resolved_image_size(self) -> int:
        return FIXED_IMAGE_SIZE.get(self.name) or self.image_size or 32

    @property
    def reads_files(self) -> bool:
        return self.name in FILE_DATASETS


_info_cache: dict[str, DatasetInfo] = {}


def inspect_dataset(cfg: DataConfig, fresh: bool = False) -> DatasetInfo:
    """What the dataset holds (shape, counts, whether it streams), without loading it whole.

    Raises ConfigError naming data.* when the files are missing or malformed. Cached per
    process and per resolved root (a sweep asks once per point); `fresh` reads the files again.
    """
    key = f"{cfg.model_dump_json()}@{cfg.root_path().resolve() if cfg.reads_files else ''}"
    if fresh or key not in _info_cache:
        _info_cache[key] = _inspect(cfg)
    return _info_cache[key]


def _inspect(cfg: DataConfig) -> DatasetInfo:
    if cfg.name in ("cifar10", "cifar100"):
        from runners.datasets import cifar

        return cifar.inspect(cfg)
    if cfg.name == "imagefolder":
        from runners.datasets import imagefolder

        return imagefolder.inspect(cfg)
    if cfg.name == "digits":
        n_val = min(max(round(cfg.val_fraction * DIGITS_IMAGES), 1), DIGITS_IMAGES - 1)
        return DatasetInfo(10, 1, 8, DIGITS_IMAGES - n_val, n_val)
    from runners.datasets.builtin import synthetic_val_size

    return DatasetInfo(cfg.num_classes, cfg.channels, cfg.resolved_image_size(),
                       cfg.train_size, synthetic_val_size(cfg))


def load_splits(
    cfg: DataConfig, device: torch.device | str = "cpu", workers: int = 1
) -> DataSplits | StreamedSplits:
    """`cfg`'s dataset as splits for `device`: uint8 tensors on it, or a stream from disk for an
    imagefolder above `memory_budget_mb` (decoded by `loader_workers`, else `workers`,
    processes)."""
    import torch

    from runners.datasets import builtin, cifar, imagefolder
    from runners.datasets.splits import to_device

    device = torch.device(device)
    if cfg.name == "imagefolder":
        info = inspect_dataset(cfg)
        if info.streamed:
            from runners.datasets.streamed import StreamedSplits

            processes = cfg.loader_workers if cfg.loader_workers is not None else workers
            return StreamedSplits(cfg, info.in_channels, processes).to(device)
        raw = imagefolder.load(cfg, info.in_channels)
    elif cfg.name in ("cifar10", "cifar100"):
        raw = cifar.load(cfg)
    elif cfg.name == "digits":
        raw = builtin.load_digits(cfg)
    else:
        raw = builtin.load_synthetic(cfg)
    return to_device(raw, cfg.limit_train, cfg.split_seed, device)
