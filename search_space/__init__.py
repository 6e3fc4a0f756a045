"""The SE search space: validated architecture configs, the networks they build, their cost.

Names are imported lazily (PEP 562), so that reading a config (`selab validate`, `--help`) does
not import torch: only `build_model` and `SENetwork` need it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ArchConfig": ".config",
    "SEConfig": ".config",
    "ConfigError": ".errors",
    "SENetwork": ".networks",
    "build_model": ".networks",
    "arch_for": ".interop",
    "export_weights": ".interop",
    "load_external_weights": ".interop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
