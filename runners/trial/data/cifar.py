"""CIFAR-10 and CIFAR-100 from the official python-pickle files, read with a safe unpickler.

The training batches are split into train and validation (stratified, `data.split_seed`,
`data.val_size` images, 5,000 by default); the official test batch is kept apart as the test
split, so that search and selection never see it.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runners.trial.data.splits import DatasetInfo, Raw, split_raw, stratified_split
from search_space.errors import ConfigError

if TYPE_CHECKING:
    from runners.spec.data import DataConfig

DEFAULT_VAL_SIZE = 5000
ROW_BYTES = 3 * 32 * 32


@dataclass(frozen=True)
class CifarLayout:
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
    "cifar10": CifarLayout(
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
    "cifar100": CifarLayout(
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

# The only globals a CIFAR pickle needs: numpy's array reconstruction (numpy 1 and 2 spell the
# module differently) and the codec Python 3 uses for bytes in protocol-2 pickles. Anything
# else (os.system, builtins.eval, ...) is refused before it can run.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_batch(path: Path) -> Mapping:
    """One CIFAR batch file: a dict of lists and numpy arrays, nothing else."""
    try:
        data = path.read_bytes()
        batch = _CifarUnpickler(io.BytesIO(data), encoding="bytes").load()  # Python 2 pickles
    except OSError as err:
        raise ConfigError(f"data.root: cannot read {path}: {err.strerror}") from None
    except Exception as err:  # noqa: BLE001 - any malformed pickle is bad input
        raise ConfigError(
            f"data.root: {path} is not a CIFAR batch file ({type(err).__name__}: {err}); "
            "only the official python-pickle files are read"
        ) from None
    if not isinstance(batch, Mapping):
        raise ConfigError(f"data.root: {path} holds a {type(batch).__name__}, not a CIFAR batch")
    return batch


def _key(batch: Mapping, key: bytes, path: Path) -> Any:
    """Look up a key the way the official (bytes) or a re-pickled (str) file spells it."""
    for candidate in (key, key.decode()):
        if candidate in batch:
            return batch[candidate]
    raise ConfigError(f"data.root: {path} has no {key.decode()!r} entry; not a CIFAR batch")


def _images(batch: Mapping, path: Path) -> np.ndarray:
    data = np.asarray(_key(batch, b"data", path))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_BYTES:
        raise ConfigError(
            f"data.root: {path} holds data of shape {data.shape} ({data.dtype}), "
            f"not uint8 (N, {ROW_BYTES})"
        )
    return data.reshape(-1, 3, 32, 32)  # rows are the R, G, B planes of a 32x32 image


def _labels(batch: Mapping, layout: CifarLayout, path: Path, count: int) -> np.ndarray:
    labels = np.asarray(_key(batch, layout.label_key, path), dtype=np.int64)
    if labels.shape != (count,) or (
        count and (labels.min() < 0 or labels.max() >= layout.num_classes)
    ):
        raise ConfigError(
            f"data.root: {path} needs {count} labels in 0..{layout.num_classes - 1}, "
            f"got {labels.shape[0] if labels.ndim else 'none'}"
        )
    return labels


def _folder(cfg: DataConfig) -> tuple[CifarLayout, Path]:
    layout = CIFAR[cfg.name]
    root = cfg.root_path()
    folder = root / layout.folder
    missing = missing_files(folder, layout)
    if missing and cfg.download:
        download_cifar(cfg.name, root)
        missing = missing_files(folder, layout)
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
    return layout, folder


def missing_files(folder: Path, layout: CifarLayout) -> list[str]:
    names = layout.train_files + (layout.test_file,)
    return [name for name in names if not (folder / name).is_file()]


def _read_all(cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]:
    layout, folder = _folder(cfg)
    train_x, train_y = [], []
    for name in layout.train_files:
        batch = read_batch(folder / name)
        images = _images(batch, folder / name)
        train_x.append(images)
        train_y.append(_labels(batch, layout, folder / name, len(images)))
    test = read_batch(folder / layout.test_file)
    test_x = _images(test, folder / layout.test_file)
    test_y = _labels(test, layout, folder / layout.test_file, len(test_x))
    classes = [str(i) for i in range(layout.num_classes)]
    if (folder / layout.meta_file).is_file():
        meta_path = folder / layout.meta_file
        names = _key(read_batch(meta_path), layout.names_key, meta_path)
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return np.concatenate(train_x), np.concatenate(train_y), test_x, test_y, classes


def _val_count(cfg: DataConfig, num_train: int) -> int:
    count = cfg.val_size if cfg.val_size is not None else DEFAULT_VAL_SIZE
    if count >= num_train:
        raise ConfigError(
            f"data.val_size: {count} validation images are carved from the {num_train} "
            f"training images of {CIFAR[cfg.name].title}, leaving none to train on; set "
            f"data.val_size below {num_train}"
        )
    return count


def inspect(cfg: DataConfig) -> DatasetInfo:
    """Every file read and checked (safely): counts, shapes and labels; nothing kept."""
    train_x, _, test_x, _, classes = _read_all(cfg)
    n_val = _val_count(cfg, len(train_x))
    return DatasetInfo(
        num_classes=len(classes),
        in_channels=3,
        image_size=32,
        num_train=len(train_x) - n_val,
        num_val=n_val,
        num_test=len(test_x),
    )


def load(cfg: DataConfig) -> Raw:
    import torch

    train_x, train_y, test_x, test_y, classes = _read_all(cfg)
    train, val = stratified_split(train_y, 0.0, cfg.split_seed, _val_count(cfg, len(train_y)))
    x = torch.from_numpy(train_x)
    raw = split_raw(x, train_y, train, val, classes=classes, pad=4, flip=True)
    raw.test_x = torch.from_numpy(test_x.copy())
    raw.test_y = torch.from_numpy(test_y)
    return raw


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
