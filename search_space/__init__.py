"""The SE search space: validated architecture configs, the networks they build, their cost."""

from .config import ArchConfig, SEConfig
from .errors import ConfigError
from .networks import SENetwork, build_model

__all__ = ["ArchConfig", "ConfigError", "SEConfig", "SENetwork", "build_model"]
