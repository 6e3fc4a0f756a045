"""The two entry points from a spec's `data:` section to a trial's data.

`inspect_dataset` says what a dataset holds without loading it (preflight, and a trial's
network shape when a point varies the data); `load_splits` loads it for a trial. The datasets
themselves are the modules beside this one: `cifar` (safe unpickling, a validation split carved
from the training batches, the official test split apart), `imagefolder` (decoded into memory
under `memory_budget_mb`), `streamed` (larger folders, read from disk through torchvision),
`builtin` (digits, synthetic). In-memory splits hold uint8 on the device and are normalised per
batch (`splits`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from runners.spec.data import DataConfig
from runners.trial.data import builtin, cifar, imagefolder
from runners.trial.data.splits import DatasetInfo, DataSplits, to_device

if TYPE_CHECKING:
    from runners.trial.data.streamed import StreamedSplits

DIGITS_IMAGES = 1797

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
        return cifar.inspect(cfg)
    if cfg.name == "imagefolder":
        return imagefolder.inspect(cfg)
    if cfg.name == "digits":
        n_val = min(max(round(cfg.val_fraction * DIGITS_IMAGES), 1), DIGITS_IMAGES - 1)
        return DatasetInfo(10, 1, 8, DIGITS_IMAGES - n_val, n_val)
    return DatasetInfo(
        cfg.num_classes,
        cfg.channels,
        cfg.resolved_image_size(),
        cfg.train_size,
        builtin.synthetic_val_size(cfg),
    )


def load_splits(
    cfg: DataConfig, device: torch.device | str = "cpu", workers: int = 1
) -> DataSplits | StreamedSplits:
    """`cfg`'s dataset as splits for `device`: uint8 tensors on it, or a stream from disk for an
    imagefolder above `memory_budget_mb` (decoded by `loader_workers`, else `workers`,
    processes)."""
    device = torch.device(device)
    if cfg.name == "imagefolder":
        info = inspect_dataset(cfg)
        if info.streamed:  # torchvision's loaders: imported only for a streamed folder
            from runners.trial.data.streamed import StreamedSplits

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
