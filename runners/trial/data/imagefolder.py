"""Image folders: `<root>/<class>/*.jpg` (split into train/val here) or `<root>/train/<class>/`
with `<root>/val/<class>/`.

What a folder holds is found from its listing and a sample of image headers (`inspect`); a set
whose uint8 pixels fit `data.memory_budget_mb` is decoded once into memory (`load`), a larger one
is streamed from disk through torchvision (runners.trial.data.streamed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from runners.trial.data.splits import DatasetInfo, Raw, split_raw, stratified_split
from search_space.errors import ConfigError, allowed

if TYPE_CHECKING:
    import torch

    from runners.spec.data import DataConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
HEADER_SAMPLE = 64  # images whose header is read to check the files and find the channels
GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16")


@dataclass(frozen=True)
class FolderLayout:
    """The image files of a folder dataset, per split, with one class list for both."""

    classes: list[str]
    train: list[tuple[Path, int]]
    val: list[tuple[Path, int]] | None  # None: split train by data.val_fraction
    root: Path


def scan(cfg: DataConfig) -> FolderLayout:
    root = cfg.root_path()
    if not root.is_dir():
        raise ConfigError(
            f"data.root: {root.resolve()} is not a folder (imagefolder expects "
            f"<root>/<class>/*{'|'.join(IMAGE_SUFFIXES)})"
        )
    if (root / "train").is_dir() and (root / "val").is_dir():
        train_files = _class_files(root / "train")
        classes = sorted(train_files)
        val_files = _class_files(root / "val")
        extra = sorted(set(val_files) - set(classes))
        if extra:
            raise ConfigError(
                f"data.root: {root / 'val'} has classes missing from {root / 'train'}: "
                f"{allowed(extra)}"
            )
        return FolderLayout(
            classes, _samples(train_files, classes), _samples(val_files, classes), root
        )
    files = _class_files(root)
    classes = sorted(files)
    return FolderLayout(classes, _samples(files, classes), None, root)


def _class_files(folder: Path) -> dict[str, list[Path]]:
    """{class name: sorted image files} for every non-hidden sub-folder of `folder`."""
    with os.scandir(folder) as entries:
        class_dirs = sorted(
            Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(".")
        )
    if not class_dirs:
        raise ConfigError(
            f"data.root: no class folders in {folder.resolve()}; imagefolder expects "
            f"<root>/<class>/*{'|'.join(IMAGE_SUFFIXES)} (optionally under <root>/train and "
            f"<root>/val)"
        )
    files = {}
    for d in class_dirs:
        with os.scandir(d) as entries:
            images = sorted(
                Path(e.path)
                for e in entries
                if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES
            )
        if not images:
            raise ConfigError(
                f"data.root: class folder {d.resolve()} has no images ({allowed(IMAGE_SUFFIXES)})"
            )
        files[d.name] = images
    return files


def _samples(files: dict[str, list[Path]], classes: list[str]) -> list[tuple[Path, int]]:
    index = {name: i for i, name in enumerate(classes)}
    return [(path, index[name]) for name, paths in files.items() for path in paths]


def sample_channels(samples: list[tuple[Path, int]]) -> int:
    """1 if every sampled image is grayscale, else 3; reads headers only (no decoding)."""
    from PIL import Image, UnidentifiedImageError

    step = max(1, len(samples) // HEADER_SAMPLE)
    modes = set()
    for path, _ in samples[::step][:HEADER_SAMPLE]:
        try:
            with Image.open(path) as im:
                modes.add(im.mode)
        except (OSError, UnidentifiedImageError) as err:
            raise ConfigError(f"data.root: cannot read image {path}: {err}") from None
    return 1 if modes <= set(GRAYSCALE_MODES) else 3


def inspect(cfg: DataConfig) -> DatasetInfo:
    layout = scan(cfg)
    size = cfg.resolved_image_size()
    channels = sample_channels(layout.train + (layout.val or []))
    n = len(layout.train) + len(layout.val or [])
    n_val = len(split_indices(layout, cfg)[1]) if layout.val is None else len(layout.val)
    streamed = n * channels * size * size > cfg.memory_budget_mb * 2**20
    return DatasetInfo(
        num_classes=len(layout.classes),
        in_channels=channels,
        image_size=size,
        num_train=n - n_val,
        num_val=n_val,
        streamed=streamed,
    )


def split_indices(layout: FolderLayout, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    labels = np.array([label for _, label in layout.train])
    return stratified_split(labels, cfg.val_fraction, cfg.split_seed)


def load(cfg: DataConfig, channels: int) -> Raw:
    """Decode every image (resized to image_size) into uint8 tensors in memory."""
    import torch

    layout = scan(cfg)
    size = cfg.resolved_image_size()
    pad = size // 8
    paths = [p for p, _ in layout.train] + [p for p, _ in layout.val or []]
    labels = np.array([lab for _, lab in layout.train] + [lab for _, lab in layout.val or []])
    x = _read_images(paths, size, channels)
    if layout.val is not None:
        n = len(layout.train)
        y = torch.from_numpy(labels.astype(np.int64))
        return Raw(x[:n], y[:n], x[n:], y[n:], layout.classes, pad, True)
    train, val = split_indices(layout, cfg)
    return split_raw(x, labels, train, val, classes=layout.classes, pad=pad, flip=True)


def _read_images(paths: list[Path], size: int, channels: int) -> torch.Tensor:
    """uint8 (N, channels, size, size), each image converted to L or RGB and resized."""
    import torch
    from PIL import Image, UnidentifiedImageError

    mode = "L" if channels == 1 else "RGB"
    out = torch.empty(len(paths), size, size, channels, dtype=torch.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                im = im.convert(mode)
                if im.size != (size, size):
                    im = im.resize((size, size), Image.Resampling.BILINEAR)
                out[i] = torch.from_numpy(np.array(im, dtype=np.uint8).reshape(size, size, -1))
        except (OSError, UnidentifiedImageError) as err:
            raise ConfigError(f"data.root: cannot read image {path}: {err}") from None
    return out.permute(0, 3, 1, 2).contiguous()
