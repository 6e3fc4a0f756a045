"""Speed and fault measurements, each a script run from the repository's root (those that use
the tests' servers and nodes as modules: `python -m benchmarks.faults`)."""
