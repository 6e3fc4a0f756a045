"""Datasets that need no files: scikit-learn's 8x8 digits and synthetic images of any shape."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from runners.trial.data.splits import Raw, split_raw, stratified_split

if TYPE_CHECKING:
    from runners.spec.data import DataConfig

DIGITS_LEVELS = 16  # digits pixels are integers 0..16
DEFAULT_SYNTHETIC_VAL = 256


def load_digits(cfg: DataConfig) -> Raw:
    import torch
    from sklearn.datasets import load_digits as sklearn_digits  # bundled: offline

    digits = sklearn_digits()
    x = torch.from_numpy(digits.images.astype(np.uint8)).unsqueeze(1)  # (N, 1, 8, 8), 0..16
    classes = [str(name) for name in digits.target_names]
    train, val = stratified_split(digits.target, cfg.val_fraction, cfg.split_seed)
    # 8x8 digits: shift by at most one pixel; mirrored digits are different symbols, so no flip.
    return split_raw(
        x, digits.target, train, val, classes=classes, pad=1, flip=False, scale=1 / DIGITS_LEVELS
    )


def synthetic_val_size(cfg: DataConfig) -> int:
    return cfg.val_size if cfg.val_size is not None else DEFAULT_SYNTHETIC_VAL


def load_synthetic(cfg: DataConfig) -> Raw:
    """Gaussian noise around one smooth random pattern per class: learnable, any shape.

    Patterns are left-right symmetric so that flips keep the class, and low-frequency (a 4x4
    grid upsampled) so that a few pixels of shift keep it too. Held as float32 (scale 1).
    """
    import torch
    import torch.nn.functional as F

    size, c, k = cfg.resolved_image_size(), cfg.channels, cfg.num_classes
    g = torch.Generator().manual_seed(cfg.split_seed)
    coarse = torch.randn(k, c, 4, 4, generator=g)
    patterns = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    patterns = (patterns + patterns.flip(-1)) / 2
    patterns = patterns / patterns.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)

    n = cfg.train_size + synthetic_val_size(cfg)
    y = torch.arange(n) % k  # balanced classes
    y = y[torch.randperm(n, generator=g)]
    x = patterns[y] + torch.randn(n, c, size, size, generator=g)
    split = cfg.train_size
    classes = [f"class_{i}" for i in range(k)]
    return Raw(x[:split], y[:split], x[split:], y[split:], classes, size // 8, True, scale=1.0)
