"""How big a spec may be: bounds checked while it is read, before anything is expanded.

A spec is small: a few dozen keys, a grid of a few values per key. Far larger input is a
mistake (a generated list gone wrong) or a YAML bomb (aliases that expand a few lines into
billions of values), and reading it must fail at once, naming the limit and how to raise it,
rather than keep `selab validate` busy for minutes. Each limit is an environment variable:

- SELAB_MAX_SPEC_BYTES: the size of a spec file (default 1 MiB);
- SELAB_MAX_SPEC_NODES: the values and keys a spec holds once its YAML aliases are expanded,
  each alias counted as often as it is used (default 100,000);
- SELAB_MAX_TRIALS: the trials of one sweep: a grid's points (the product of its lists'
  lengths, plus the baseline) times its seeds, a search's num_samples, a race's points times
  its seeds.max; also the most values one `choice` of a search space may list (default 10,000).

Every seed (`seeds`, `search.sampler_seed`, `data.split_seed`) is at most MAX_SEED, the largest
seed NumPy's legacy generator takes.
"""

from __future__ import annotations

import os

from search_space.errors import ConfigError

MAX_SEED = 2**32 - 1
DEFAULTS = {
    "SELAB_MAX_SPEC_BYTES": 1 << 20,
    "SELAB_MAX_SPEC_NODES": 100_000,
    "SELAB_MAX_TRIALS": 10_000,
}


def limit(name: str) -> int:
    """The limit `name` (one of DEFAULTS): the environment's value, else the default."""
    raw = os.environ.get(name, "").strip().replace("_", "")
    if not raw:
        return DEFAULTS[name]
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(
            f"${name}: got {os.environ[name]!r}; allowed: a whole number >= 1 "
            f"(default {DEFAULTS[name]:,}); unset it to use the default"
        )
    return int(raw)


def raise_hint(name: str, needed: int) -> str:
    """How to lift the limit `name` for input that needs `needed`."""
    return (
        f"to allow it, set {name}={needed} in the environment (the default is {DEFAULTS[name]:,})"
    )


def seed_problem(value: object) -> str | None:
    """Why `value` is not a seed, or None when it is one."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEED:
        return None
    return (
        f"got {value!r}; allowed: whole numbers 0..{MAX_SEED} (2^32 - 1, the largest seed "
        "NumPy's and PyTorch's generators both take), e.g. 0, 1, 2"
    )
