"""Datasets written by the tests in the real on-disk formats: CIFAR pickles, image folders."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def write_cifar10(root: Path, per_batch: int = 200, test: int = 200, seed: int = 0) -> Path:
    """root/cifar-10-batches-py with 5 training batches, a test batch and batches.meta, in the
    official layout. Each class has its own mean colour, so the classes are learnable."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, size=(10, 3))

    def batch(n: int) -> dict:
        labels = rng.integers(0, 10, n)
        noise = rng.normal(0, 40, size=(n, 3, 32 * 32))
        images = np.clip(colours[labels][:, :, None] + noise, 0, 255).astype(np.uint8)
        return {b"data": images.reshape(n, 3072), b"labels": [int(v) for v in labels]}

    for i in range(1, 6):
        _dump(folder / f"data_batch_{i}", batch(per_batch))
    _dump(folder / "test_batch", batch(test))
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    _dump(folder / "batches.meta", {b"label_names": names})
    return folder


def _dump(path: Path, obj: object) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the official files are protocol-2 pickles


def write_image_folder(
    root: Path,
    classes: dict[str, tuple[int, int, int]],
    per_class: int,
    size: tuple[int, int] = (48, 40),
    suffix: str = ".jpg",
) -> Path:
    """root/<class>/img<i><suffix>: noisy images of one colour per class."""
    rng = np.random.default_rng(0)
    for name, colour in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 20, (size[1], size[0], 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"img{i}{suffix}")
    return root
