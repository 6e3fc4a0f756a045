"""The `data:` section of a spec: which dataset a trial trains on and how it is split.

Only the settings live here (pure pydantic, no torch); reading the files and building a
trial's splits is runners.trial.data (`load.py`: inspect_dataset, load_splits).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from runners.spec.limits import seed_problem
from runners.spec.section import ConfigModel
from search_space.errors import allowed

DatasetName = Literal["digits", "cifar10", "cifar100", "imagefolder", "synthetic"]
FIXED_IMAGE_SIZE = {"digits": 8, "cifar10": 32, "cifar100": 32}
FILE_DATASETS = ("cifar10", "cifar100", "imagefolder")  # the ones that read data.root


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

    @field_validator("split_seed")
    @classmethod
    def _a_seed(cls, value: int) -> int:
        if problem := seed_problem(value):
            raise ValueError(problem)
        return value

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
