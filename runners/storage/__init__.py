"""Where a sweep's files live: its folder (local or behind a URI), the lock, Ray's saved state,
checkpoints and their pruning, trained models, and opening a saved sweep (`saved_sweep.py`)."""
