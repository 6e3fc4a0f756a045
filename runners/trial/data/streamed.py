"""An image folder too large for memory, streamed from disk through torchvision.

Decoding and augmentation run in DataLoader worker processes (`datasets.ImageFolder`,
`transforms.v2`), with the ImageNet recipe: random-resized crop and horizontal flip for
training, resize to 256/224 of the size and a center crop for evaluation. Batches stay uint8
until they reach the trial's device (pinned memory and non-blocking copies on a GPU), where
they are normalised like the in-memory ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from runners.trial.data.imagefolder import IMAGE_SUFFIXES, scan, split_indices
from runners.trial.data.splits import SplitName

if TYPE_CHECKING:
    from runners.spec.data import DataConfig

STATS_SAMPLE = 256  # images whose pixels give the normalisation stats
EVAL_RESIZE = 256 / 224  # resize the short side to this times the crop, then center-crop


def _open_image(path: str, mode: str):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert(mode)


def train_transform(size: int):
    return v2.Compose(
        [v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(), v2.PILToTensor()]
    )


def eval_transform(size: int):
    return v2.Compose(
        [
            v2.Resize(round(size * EVAL_RESIZE), antialias=True),
            v2.CenterCrop(size),
            v2.PILToTensor(),
        ]
    )


class StreamedSplits:
    """Train/val splits read from disk per batch; the same interface as DataSplits."""

    streamed: ClassVar[bool] = True
    pad, flip = 0, True  # augmentation happens in the workers (random-resized crop, flip)
    has_test = False

    def __init__(self, cfg: DataConfig, channels: int, workers: int) -> None:
        layout = scan(cfg)
        self.image_size = cfg.resolved_image_size()
        self.in_channels = channels
        self.classes = layout.classes
        self.num_classes = len(layout.classes)
        self.workers = workers
        self.device = torch.device("cpu")
        mode = "L" if channels == 1 else "RGB"
        size = self.image_size

        def folder(split_root: Path, transform) -> Dataset:
            return _Folder(split_root, layout.classes, mode, transform)

        if layout.val is not None:
            self.train: Dataset = folder(layout.root / "train", train_transform(size))
            self.train_plain: Dataset = folder(layout.root / "train", eval_transform(size))
            self.val: Dataset = folder(layout.root / "val", eval_transform(size))
        else:
            train_idx, val_idx = split_indices(layout, cfg)
            self.train = Subset(folder(layout.root, train_transform(size)), train_idx.tolist())
            plain = folder(layout.root, eval_transform(size))
            self.train_plain = Subset(plain, train_idx.tolist())
            self.val = Subset(plain, val_idx.tolist())
        self.num_train, self.num_val = len(self.train), len(self.val)
        self.mean, self.std = self._sample_stats(cfg.split_seed)
        self.scale = 1 / 255

    def _sample_stats(self, seed: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel pixel mean/std over a seeded sample of training images."""
        from runners.trial.data.splits import channel_stats

        g = torch.Generator().manual_seed(seed)
        count = min(STATS_SAMPLE, len(self.train_plain))
        picks = torch.randperm(len(self.train_plain), generator=g)[:count].tolist()
        x = torch.stack([self.train_plain[i][0] for i in picks])
        mean, std = channel_stats(x, 1 / 255)
        return tuple(mean), tuple(std)

    def to(self, device: torch.device | str) -> StreamedSplits:
        self.device = torch.device(device)
        return self

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=x.device)[:, None, None]
        std = torch.tensor(self.std, device=x.device)[:, None, None]
        return torch.addcmul(-mean / std, x.float(), self.scale / std)

    def _batches(self, loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in loader:
            x = x.to(self.device, non_blocking=True)
            yield self.normalise(x), y.to(self.device, non_blocking=True)

    def _loader(self, dataset: Dataset, batch_size: int, **kwargs) -> DataLoader:
        workers = self.workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
            **kwargs,
        )

    def train_batches(
        self, batch_size: int, generator: torch.Generator, use_augmentation: bool
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # The shuffle (and through it each worker's augmentation seed) comes from the trainer's
        # generator, so a checkpoint of that generator replays the same epoch.
        seed = int(
            torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item()
        )
        dataset = self.train if use_augmentation else self.train_plain
        loader = self._loader(
            dataset,
            batch_size,
            shuffle=True,
            drop_last=True,
            generator=torch.Generator().manual_seed(seed),
        )
        return self._batches(loader)

    def eval_batches(
        self, split: SplitName, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if split != "val":
            raise ValueError(f"this dataset has no {split} split")
        return self._batches(self._loader(self.val, batch_size, shuffle=False))


def _is_image(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES


class _Folder(ImageFolder):
    """ImageFolder with the class list of the scan (labels agree across train and val, and the
    same files count as images)."""

    def __init__(self, root: Path, classes: list[str], mode: str, transform) -> None:
        self._all_classes = classes
        super().__init__(
            str(root),
            transform=transform,
            loader=partial(_open_image, mode=mode),
            is_valid_file=_is_image,
        )

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        present = [c for c in self._all_classes if os.path.isdir(os.path.join(directory, c))]
        return present, {c: self._all_classes.index(c) for c in present}
