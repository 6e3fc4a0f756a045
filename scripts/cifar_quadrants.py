"""Write a CIFAR-10-format data set whose classes differ only in where four textures sit.

Every 32x32 image holds the same four textures, one per quadrant: horizontal stripes (h),
vertical stripes (v), a checkerboard (c) and a flat patch (f), each in two random colours, with
pixel noise. A class is an arrangement of the four (10 of the 24, named by the quadrants
top-left, top-right, bottom-left, bottom-right: ``hvcf``). Colours carry no class, and every
class has the same textures in the same amounts: a block that only sees small neighbourhoods
averages to the same statistics for every class, and only a network that relates positions can
tell the classes apart. It is the test set of the excitation analysis in docs/excitation.md
(experiments/paper/cpu/excitation_quadrants.yaml): where class information only exists at a
large scale, do the excitations turn class-specific only in the later stages?

    python scripts/cifar_quadrants.py data/quadrants     # data/quadrants/cifar-10-batches-py

The files follow the official layout (5 training batches, a test batch, batches.meta; protocol-2
pickles), so `data: {name: cifar10, root: data/quadrants}` reads them.
"""

from __future__ import annotations

import argparse
import itertools
import pickle
from pathlib import Path

import numpy as np

SIZE, HALF = 32, 16
TEXTURES = "hvcf"  # horizontal stripes, vertical stripes, checkerboard, flat
NOISE_SD = 25.0


def texture(kind: int, rng: np.random.Generator) -> np.ndarray:
    """A HALF x HALF pattern in [0, 1]: period 4 or 6 pixels, random phase."""
    y, x = np.mgrid[0:HALF, 0:HALF]
    period = int(rng.choice([4, 6]))
    phase = int(rng.integers(0, period))
    if kind == 0:
        return ((y + phase) % period < period // 2).astype(float)
    if kind == 1:
        return ((x + phase) % period < period // 2).astype(float)
    if kind == 2:
        cell = period // 2
        return (((x + phase) // cell + (y + phase) // cell) % 2).astype(float)
    return np.full((HALF, HALF), 0.5)


def image(arrangement: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """One (3, 32, 32) uint8 image: texture ``arrangement[q]`` in quadrant q (row-major)."""
    out = np.zeros((3, SIZE, SIZE))
    for quadrant, kind in enumerate(arrangement):
        row, col = divmod(quadrant, 2)
        pattern = texture(kind, rng)
        low, high = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)  # colours carry no class
        patch = low[:, None, None] + (high - low)[:, None, None] * pattern[None]
        out[:, row * HALF : (row + 1) * HALF, col * HALF : (col + 1) * HALF] = patch
    out += rng.normal(0, NOISE_SD, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def write(root: Path, per_batch: int = 1000, test: int = 1000, seed: int = 0) -> Path:
    """root/cifar-10-batches-py in the official layout; returns that folder."""
    rng = np.random.default_rng(seed)
    arrangements = list(itertools.permutations(range(4)))
    classes = [arrangements[i] for i in rng.choice(len(arrangements), 10, replace=False)]
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n: int) -> dict:
        labels = rng.integers(0, 10, n)
        data = np.stack([image(classes[k], rng).reshape(-1) for k in labels])
        return {b"data": data, b"labels": [int(k) for k in labels]}

    files = [f"data_batch_{i}" for i in range(1, 6)]
    for name, n in [*((f, per_batch) for f in files), ("test_batch", test)]:
        _dump(folder / name, batch(n))
    names = ["".join(TEXTURES[k] for k in a).encode() for a in classes]
    _dump(folder / "batches.meta", {b"label_names": names})
    return folder


def _dump(path: Path, obj: object) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the official files are protocol-2 pickles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="folder to hold cifar-10-batches-py")
    parser.add_argument("--per-batch", type=int, default=1000, help="images per training batch")
    parser.add_argument("--test", type=int, default=1000, help="images in the test batch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = write(args.root, args.per_batch, args.test, args.seed)
    print(f"{folder}: {5 * args.per_batch} training and {args.test} test images")


if __name__ == "__main__":
    main()
