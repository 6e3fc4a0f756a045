"""Datasets for trials: loaded once into tensors on the trial's device, augmented there.

Every dataset here is small enough to live in (GPU) memory as one float32 tensor, so the training
loop never touches Python per image: batches are index gathers, augmentation is a few batched
tensor ops (`augment`), shuffling is one `randperm` on the device (`iterate_batches`).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from search_space.errors import ConfigError, allowed, from_validation_error

DatasetName = Literal["digits", "cifar10", "cifar100", "imagefolder", "synthetic"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
FIXED_IMAGE_SIZE = {"digits": 8, "cifar10": 32, "cifar100": 32}


class ConfigModel(BaseModel):
    """Base of the config sections: unknown keys are errors, and so is every bad value.

    `model_validate` raises `ConfigError` with one line per bad field, named by its dotted path
    (`data.val_fraction: ...`). Nested inside a bigger model (the sweep spec), errors surface in
    that model's ValidationError with the same dotted locations; the plain constructor, meant
    for code rather than user input, raises pydantic's ValidationError (also a ValueError).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    section: ClassVar[str] = ""

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any):  # type: ignore[override]
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as err:
            raise from_validation_error(err, f"{cls.section}.") from None


class DataConfig(ConfigModel):
    """The `data:` section of a spec. Fields that do not apply to the chosen dataset are ignored
    (e.g. `num_classes` outside synthetic), except `image_size`, which must match the fixed size
    of digits (8) and CIFAR (32) when given."""

    section: ClassVar[str] = "data"

    name: DatasetName
    root: str | None = None  # None: $SELAB_DATA, else ./data
    download: bool = False  # CIFAR only: fetch the archive when the files are missing
    val_fraction: float = Field(0.2, gt=0, lt=1)  # digits, imagefolder (no train/val folders)
    split_seed: int = 0  # the split (and synthetic data) never depend on the trial seed
    image_size: int | None = Field(None, ge=1, validate_default=True)
    num_classes: int = Field(10, ge=2)  # synthetic
    channels: int = Field(3, ge=1)  # synthetic
    train_size: int = Field(512, ge=1)  # synthetic
    val_size: int = Field(256, ge=1)  # synthetic
    limit_train: int | None = Field(None, ge=1)  # stratified subset of the training split
    augment: bool = True

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


@dataclass
class DataSplits:
    """Train/val tensors on the trial's device plus what a model and the augmentation need.

    Images are float32 (N, C, H, W), normalised with the per-channel mean/std of the full training
    split; labels are int64. `pad`/`flip` are the dataset's augmentation policy for `augment`.
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
    mean: tuple[float, ...] = ()  # per-channel stats of the raw pixels (8-bit scaled to [0, 1])
    std: tuple[float, ...] = ()

    @property
    def num_train(self) -> int:
        return int(self.train_y.shape[0])

    @property
    def num_val(self) -> int:
        return int(self.val_y.shape[0])


@dataclass
class _Raw:
    """A loader's output before normalisation: CPU tensors, uint8 or float in [0, 1]."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    classes: list[str]
    pad: int
    flip: bool


def load_splits(cfg: DataConfig, device: torch.device | str = "cpu") -> DataSplits:
    """Load `cfg`'s dataset, split it, normalise it and put it on `device`."""
    loaders = {
        "digits": _load_digits,
        "cifar10": _load_cifar,
        "cifar100": _load_cifar,
        "imagefolder": _load_imagefolder,
        "synthetic": _load_synthetic,
    }
    raw = loaders[cfg.name](cfg)
    device = torch.device(device)

    train_x = _to_float(raw.train_x.to(device))
    std, mean = torch.std_mean(train_x, dim=(0, 2, 3))  # stats of the full training split
    std = std.clamp_min(1e-6)
    train_y = raw.train_y
    if cfg.limit_train is not None and cfg.limit_train < len(train_y):
        keep = np.sort(stratified_order(train_y.numpy(), cfg.split_seed)[: cfg.limit_train])
        keep_t = torch.from_numpy(keep)
        train_x, train_y = train_x[keep_t.to(device)], train_y[keep_t]
    val_x = _to_float(raw.val_x.to(device))

    def normalise(x: torch.Tensor) -> torch.Tensor:
        return ((x - mean[:, None, None]) / std[:, None, None]).contiguous()

    return DataSplits(
        train_x=normalise(train_x),
        train_y=train_y.to(device=device, dtype=torch.int64),
        val_x=normalise(val_x),
        val_y=raw.val_y.to(device=device, dtype=torch.int64),
        num_classes=len(raw.classes),
        in_channels=int(train_x.shape[1]),
        image_size=int(train_x.shape[-1]),
        classes=raw.classes,
        pad=raw.pad,
        flip=raw.flip,
        mean=tuple(mean.tolist()),
        std=tuple(std.tolist()),
    )


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


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
    labels: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices), each sorted, val about val_fraction of every class."""
    n = len(labels)
    if n < 2:
        raise ConfigError(f"data: need at least 2 images to split into train and val, found {n}")
    n_val = min(max(round(val_fraction * n), 1), n - 1)
    order = stratified_order(labels, seed)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _split_raw(
    x: torch.Tensor, y: np.ndarray, cfg: DataConfig, classes: list[str], pad: int, flip: bool
) -> _Raw:
    train, val = stratified_split(y, cfg.val_fraction, cfg.split_seed)
    y_t = torch.from_numpy(y.astype(np.int64))
    train_t, val_t = torch.from_numpy(train), torch.from_numpy(val)
    return _Raw(x[train_t], y_t[train_t], x[val_t], y_t[val_t], classes, pad, flip)


# ----------------------------------------------------------------------------- datasets


def _load_digits(cfg: DataConfig) -> _Raw:
    from sklearn.datasets import load_digits  # ships with scikit-learn: offline

    digits = load_digits()
    x = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8)
    classes = [str(name) for name in digits.target_names]
    # 8x8 digits: shift by at most one pixel; mirrored digits are different symbols, so no flip.
    return _split_raw(x, digits.target, cfg, classes, pad=1, flip=False)


@dataclass(frozen=True)
class _CifarLayout:
    title: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: bytes
    names_key: bytes
    num_classes: int
    url: str
    md5: str


CIFAR = {
    "cifar10": _CifarLayout(
        title="CIFAR-10",
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_file="test_batch",
        meta_file="batches.meta",
        label_key=b"labels",
        names_key=b"label_names",
        num_classes=10,
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": _CifarLayout(
        title="CIFAR-100",
        folder="cifar-100-python",
        train_files=("train",),
        test_file="test",
        meta_file="meta",
        label_key=b"fine_labels",
        names_key=b"fine_label_names",
        num_classes=100,
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
    ),
}


def _load_cifar(cfg: DataConfig) -> _Raw:
    layout = CIFAR[cfg.name]
    root = cfg.root_path()
    folder = root / layout.folder
    missing = _missing_cifar_files(folder, layout)
    if missing and cfg.download:
        download_cifar(cfg.name, root)
        missing = _missing_cifar_files(folder, layout)
    if missing:
        raise ConfigError(
            f"data.root: {layout.title} not found: looked in {folder.resolve()} and missed "
            f"{', '.join(missing)}.\n"
            "Expected layout (the 'python version' from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html): "
            f"<root>/{layout.folder}/{{{', '.join(layout.train_files + (layout.test_file,))}, "
            f"{layout.meta_file}}}.\n"
            f"Set `data.download: true` to fetch it into {root.resolve()}, or point data.root "
            f"(or $SELAB_DATA) at the folder that holds {layout.folder}/."
        )
    train = [_read_pickle(folder / name) for name in layout.train_files]
    test = _read_pickle(folder / layout.test_file)
    train_x = torch.cat([_cifar_images(batch, folder) for batch in train])
    train_y = torch.cat([_cifar_labels(batch, layout) for batch in train])
    classes = [str(i) for i in range(layout.num_classes)]
    if (folder / layout.meta_file).is_file():
        names = _key(_read_pickle(folder / layout.meta_file), layout.names_key)
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    # CIFAR's own test split is the validation set: the usual protocol, and no split to pick.
    return _Raw(
        train_x, train_y, _cifar_images(test, folder), _cifar_labels(test, layout), classes, 4, True
    )


def _missing_cifar_files(folder: Path, layout: _CifarLayout) -> list[str]:
    names = layout.train_files + (layout.test_file,)
    return [name for name in names if not (folder / name).is_file()]


def _read_pickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")  # the files are Python 2 pickles


def _key(batch: Mapping, key: bytes) -> Any:
    """Look up a key the way the official (bytes) or a re-pickled (str) file spells it."""
    if key in batch:
        return batch[key]
    return batch[key.decode()]


def _cifar_images(batch: Mapping, folder: Path) -> torch.Tensor:
    data = np.asarray(_key(batch, b"data"), dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ConfigError(f"data.root: {folder} holds data of shape {data.shape}, not (N, 3072)")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())  # rows are R, G, B planes


def _cifar_labels(batch: Mapping, layout: _CifarLayout) -> torch.Tensor:
    return torch.as_tensor(np.asarray(_key(batch, layout.label_key)), dtype=torch.int64)


def download_cifar(name: str, root: Path | str) -> Path:
    """Fetch and unpack the official CIFAR archive into `root`; returns the dataset folder.

    Safe when several trials do it at once: each unpacks into its own temporary folder and the
    first to finish renames it into place.
    """
    layout = CIFAR[name]
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / layout.folder
    tmp = Path(tempfile.mkdtemp(prefix=f".{layout.folder}-", dir=root))
    try:
        archive = tmp / Path(layout.url).name
        urllib.request.urlretrieve(layout.url, archive)
        digest = hashlib.md5(archive.read_bytes()).hexdigest()
        if digest != layout.md5:
            raise ConfigError(f"data.download: {layout.url} has md5 {digest}, not {layout.md5}")
        with tarfile.open(archive, "r:gz") as tar:
            if hasattr(tarfile, "data_filter"):  # refuses links and paths that escape tmp
                tar.extractall(tmp, filter="data")
            else:  # pragma: no cover - Python < 3.10.12
                tar.extractall(tmp)
        try:
            os.rename(tmp / layout.folder, target)
        except OSError:
            if not target.is_dir():  # not a lost race with another trial
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _load_imagefolder(cfg: DataConfig) -> _Raw:
    root = cfg.root_path()
    if not root.is_dir():
        raise ConfigError(
            f"data.root: {root.resolve()} is not a folder (imagefolder expects "
            f"<root>/<class>/*{'|'.join(IMAGE_SUFFIXES)})"
        )
    size = cfg.resolved_image_size()
    pad = size // 8
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
        paths, labels = _flatten(train_files, classes)
        val_paths, val_labels = _flatten(val_files, classes)
        x = _read_images(paths + val_paths, size)
        n = len(paths)
        return _Raw(
            x[:n], torch.tensor(labels), x[n:], torch.tensor(val_labels), classes, pad, True
        )
    files = _class_files(root)
    classes = sorted(files)
    paths, labels = _flatten(files, classes)
    return _split_raw(_read_images(paths, size), np.array(labels), cfg, classes, pad, flip=True)


def _class_files(folder: Path) -> dict[str, list[Path]]:
    """{class name: sorted image files} for every non-hidden sub-folder of `folder`."""
    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise ConfigError(
            f"data.root: no class folders in {folder.resolve()}; imagefolder expects "
            f"<root>/<class>/*{'|'.join(IMAGE_SUFFIXES)} (optionally under <root>/train and "
            f"<root>/val)"
        )
    files = {}
    for d in class_dirs:
        images = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise ConfigError(
                f"data.root: class folder {d.resolve()} has no images ({allowed(IMAGE_SUFFIXES)})"
            )
        files[d.name] = images
    return files


def _flatten(files: dict[str, list[Path]], classes: list[str]) -> tuple[list[Path], list[int]]:
    paths, labels = [], []
    for name, images in files.items():
        paths += images
        labels += [classes.index(name)] * len(images)
    return paths, labels


def _read_images(paths: list[Path], size: int) -> torch.Tensor:
    """uint8 (N, C, size, size); C = 1 when every image is grayscale, else 3 (RGB)."""
    from PIL import Image, UnidentifiedImageError

    images = []
    try:
        for path in paths:
            with Image.open(path) as im:
                im.load()
                images.append(im.copy())
    except (OSError, UnidentifiedImageError) as err:
        raise ConfigError(f"data.root: cannot read image {path}: {err}") from None
    mode = "L" if all(im.mode in ("1", "L", "LA") for im in images) else "RGB"
    arrays = []
    for im in images:
        im = im.convert(mode)
        if im.size != (size, size):
            im = im.resize((size, size), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(im, dtype=np.uint8).reshape(size, size, -1))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _load_synthetic(cfg: DataConfig) -> _Raw:
    """Gaussian noise around one smooth random pattern per class: learnable, any shape.

    Patterns are left-right symmetric so that flips keep the class, and low-frequency (a 4x4
    grid upsampled) so that a few pixels of shift keep it too.
    """
    size, c, k = cfg.resolved_image_size(), cfg.channels, cfg.num_classes
    g = torch.Generator().manual_seed(cfg.split_seed)
    coarse = torch.randn(k, c, 4, 4, generator=g)
    patterns = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    patterns = (patterns + patterns.flip(-1)) / 2
    patterns = patterns / patterns.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)

    n = cfg.train_size + cfg.val_size
    y = torch.arange(n) % k  # balanced classes
    y = y[torch.randperm(n, generator=g)]
    x = patterns[y] + torch.randn(n, c, size, size, generator=g)
    split = cfg.train_size
    classes = [f"class_{i}" for i in range(k)]
    return _Raw(x[:split], y[:split], x[split:], y[split:], classes, size // 8, True)


# ----------------------------------------------------------------------------- on-device batches


def augment(
    x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random crop with `pad` pixels of zero padding and random horizontal flip, per sample.

    The whole batch at once: pad once, draw an offset (and a flip bit) per sample, then gather
    every sample's window with one advanced-indexing op. A flip just reverses the window's
    column indices (torch.where on the per-sample mask), so it costs nothing extra.
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
