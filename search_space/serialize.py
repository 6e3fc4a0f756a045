"""A trained network as one file: its architecture config and its weights.

The file is a plain dict of JSON-like values and tensors, so `torch.load(path, weights_only=True)`
reads it without running any code, and `load_model` rebuilds the network from it:

    {"format": "selab.model/1", "arch": ArchConfig.to_dict(), "state_dict": {...}, "meta": {...}}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import ArchConfig
from .errors import ConfigError

FORMAT = "selab.model/1"


def model_payload(
    arch: ArchConfig, state_dict: Mapping[str, torch.Tensor], meta: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The dict `save_model` writes: weights detached and on the CPU, in their own storage."""
    weights = {key: value.detach().to("cpu").clone() for key, value in state_dict.items()}
    return {
        "format": FORMAT,
        "arch": arch.to_dict(),
        "state_dict": weights,
        "meta": dict(meta or {}),
    }


def save_model(
    path: str | Path,
    arch: ArchConfig,
    model: nn.Module | Mapping[str, torch.Tensor],
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write `model` (a module or its state_dict) and the config that builds it to `path`."""
    state = model.state_dict() if isinstance(model, nn.Module) else model
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model_payload(arch, state, meta), path)
    return path


def read_payload(path: str | Path) -> dict[str, Any]:
    """The saved dict, read with weights_only=True (no code runs); checks the format."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise ConfigError(f"model file {path}: cannot read it ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(f"model file {path}: not a selab model file (format {FORMAT})")
    return payload


def load_model(path: str | Path) -> tuple[ArchConfig, nn.Module]:
    """(config, network in eval mode with the saved weights) from a `save_model` file."""
    from .networks import build_model

    payload = read_payload(path)
    arch = ArchConfig.parse(payload["arch"], prefix="arch.")
    model = build_model(arch)
    model.load_state_dict(payload["state_dict"])
    return arch, model.eval()
