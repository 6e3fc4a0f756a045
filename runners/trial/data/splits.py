"""Splits held in (GPU) memory: uint8 images on the trial's device, normalised per batch.

Every in-memory dataset lives on the device as one uint8 tensor (4x less memory than float32),
so the training loop never touches Python per image: batches are index gathers, augmentation is
a few batched tensor ops (`augment`), shuffling is one `randperm` on the device, and each batch
is turned into normalised float32 only when it is used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from search_space.errors import ConfigError

SplitName = Literal["val", "test"]


@dataclass
class DataSplits:
    """Train/val (and, for CIFAR, test) tensors on one device plus what a model needs.

    Images are (N, C, H, W), uint8 as read from the files (float32 only for synthetic data);
    `scale` maps stored values to [0, 1] pixels, and `mean`/`std` are the per-channel stats of
    those pixels over the full training split. `pad`/`flip` are the augmentation policy.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int
    in_channels: int
    image_size: int
    classes: list[str]
    pad: int  # random-crop zero padding in pixels (0: no crop)
    flip: bool  # random horizontal flips
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    scale: float = 1 / 255
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None
    streamed: ClassVar[bool] = False  # held in memory (see runners.trial.data.streamed)
    _affine: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    @property
    def num_train(self) -> int:
        return int(self.train_y.shape[0])

    @property
    def num_val(self) -> int:
        return int(self.val_y.shape[0])

    @property
    def has_test(self) -> bool:
        return self.test_y is not None

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def to(self, device: torch.device | str) -> DataSplits:
        """These splits on `device`: self when they are there already (no second copy)."""
        device = torch.device(device)
        if self.device == device or (
            device.type == "cuda" and self.device.type == "cuda" and device.index is None
        ):
            return self
        moved = {
            name: getattr(self, name).to(device)
            for name in _TENSORS
            if getattr(self, name) is not None
        }
        return dataclasses.replace(self, **moved, _affine=None)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Stored values to float32 with zero mean and unit std per channel: x * a - b."""
        if self._affine is None or self._affine[0].device != x.device:
            std = torch.tensor(self.std, device=x.device)[:, None, None]
            mean = torch.tensor(self.mean, device=x.device)[:, None, None]
            self._affine = (self.scale / std, mean / std)
        a, b = self._affine
        return torch.addcmul(-b, x.float(), a)

    def train_batches(
        self, batch_size: int, generator: torch.Generator, use_augmentation: bool
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Full, shuffled, augmented and normalised training batches on the device."""
        augmenting = use_augmentation and (self.pad > 0 or self.flip)
        for x, y in iterate_batches(
            self.train_x, self.train_y, batch_size, True, generator, drop_last=True
        ):
            if augmenting:
                x = augment(x, self.pad, self.flip, generator)
            yield self.normalise(x), y

    def eval_batches(
        self, split: SplitName, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y = (self.val_x, self.val_y) if split == "val" else (self.test_x, self.test_y)
        if x is None or y is None:
            raise ValueError(f"this dataset has no {split} split")
        for xb, yb in iterate_batches(x, y, batch_size, False):
            yield self.normalise(xb), yb


_TENSORS = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")


@dataclass
class Raw:
    """A loader's output before it goes to the device: CPU tensors, uint8 (or float)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    classes: list[str]
    pad: int
    flip: bool
    scale: float = 1 / 255
    test_x: torch.Tensor | None = None
    test_y: torch.Tensor | None = None


def channel_stats(x: torch.Tensor, scale: float) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of x * scale, in chunks (no float copy of the whole set)."""
    total = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    squares = torch.zeros_like(total)
    for start in range(0, x.shape[0], 4096):
        chunk = x[start : start + 4096].to(torch.float64) * scale
        total += chunk.sum(dim=(0, 2, 3))
        squares += (chunk * chunk).sum(dim=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / count
    var = (squares / count - mean * mean).clamp_min(0) * count / max(count - 1, 1)
    return mean.tolist(), var.sqrt().clamp_min(1e-6).tolist()


def to_device(raw: Raw, limit_train: int | None, seed: int, device: torch.device) -> DataSplits:
    """Stats over the full training split, then an optional stratified subset, on `device`."""
    mean, std = channel_stats(raw.train_x, raw.scale)
    train_x, train_y = raw.train_x, raw.train_y
    if limit_train is not None and limit_train < len(train_y):
        keep = torch.from_numpy(np.sort(stratified_order(train_y.numpy(), seed)[:limit_train]))
        train_x, train_y = train_x[keep], train_y[keep]

    def put(t: torch.Tensor | None, labels: bool = False) -> torch.Tensor | None:
        if t is None:
            return None
        return t.to(device=device, dtype=torch.int64) if labels else t.to(device).contiguous()

    return DataSplits(
        train_x=put(train_x),
        train_y=put(train_y, True),
        val_x=put(raw.val_x),
        val_y=put(raw.val_y, True),
        test_x=put(raw.test_x),
        test_y=put(raw.test_y, True),
        num_classes=len(raw.classes),
        in_channels=int(train_x.shape[1]),
        image_size=int(train_x.shape[-1]),
        classes=raw.classes,
        pad=raw.pad,
        flip=raw.flip,
        mean=tuple(mean),
        std=tuple(std),
        scale=raw.scale,
    )


# ----------------------------------------------------------------------------- splitting


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded order of all indices whose every prefix is (close to) class-proportional.

    Each class's members are shuffled and placed at evenly spaced fractions (r + 0.5) / count,
    so taking the first k indices gives each class about k * count / n of them.
    """
    rng = np.random.default_rng(seed)
    keys = np.empty(len(labels), dtype=np.float64)
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        keys[members] = (np.arange(len(members)) + 0.5) / len(members)
    return np.argsort(keys, kind="stable")


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int, val_count: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices), each sorted, val about val_fraction (or exactly
    val_count images) of every class."""
    n = len(labels)
    if n < 2:
        raise ConfigError(f"data: need at least 2 images to split into train and val, found {n}")
    wanted = val_count if val_count is not None else round(val_fraction * n)
    n_val = min(max(wanted, 1), n - 1)
    order = stratified_order(labels, seed)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def split_raw(
    x: torch.Tensor, y: np.ndarray, train: np.ndarray, val: np.ndarray, **rest: object
) -> Raw:
    y_t = torch.from_numpy(np.asarray(y).astype(np.int64))
    train_t, val_t = torch.from_numpy(train), torch.from_numpy(val)
    return Raw(x[train_t], y_t[train_t], x[val_t], y_t[val_t], **rest)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- on-device batches


def augment(
    x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random crop with `pad` pixels of zero padding and random horizontal flip, per sample.

    The whole batch at once: pad once, draw an offset (and a flip bit) per sample, then gather
    every sample's window with one advanced-indexing op. A flip just reverses the window's
    column indices (torch.where on the per-sample mask), so it costs nothing extra. Works on
    uint8 as on float (zero padding is black, as torchvision's RandomCrop pads).
    `generator` must live on x's device.
    """
    if pad <= 0 and not flip:
        return x
    n, c, h, w = x.shape
    dev = x.device
    rows = torch.arange(h, device=dev).expand(n, h)
    cols = torch.arange(w, device=dev).expand(n, w)
    if pad > 0:
        x = F.pad(x, (pad, pad, pad, pad))
        rows = rows + torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=dev)
        cols = cols + torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=dev)
    if flip:
        mirrored = torch.rand(n, 1, generator=generator, device=dev) < 0.5
        cols = torch.where(mirrored, cols.flip(1), cols)
    samples = torch.arange(n, device=dev)[:, None, None, None]
    channels = torch.arange(c, device=dev)[None, :, None, None]
    return x[samples, channels, rows[:, None, :, None], cols[:, None, None, :]]


def iterate_batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (x, y) batches on x's device; with shuffle, in the order of one on-device randperm."""
    n = int(x.shape[0])
    order = torch.randperm(n, generator=generator, device=x.device) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:
            yield x[start : start + batch_size], y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset holds, found without loading it (file headers, sizes, a sample)."""

    num_classes: int
    in_channels: int
    image_size: int
    num_train: int
    num_val: int
    num_test: int = 0
    streamed: bool = False  # imagefolder above the memory budget: read from disk per batch

    @property
    def memory_bytes(self) -> int:
        """uint8 bytes of every split held in memory (0 when streamed)."""
        if self.streamed:
            return 0
        images = self.num_train + self.num_val + self.num_test
        return images * self.in_channels * self.image_size**2
