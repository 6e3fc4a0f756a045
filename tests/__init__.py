"""selab's tests (a package, so that `tests.support` imports the same way from the tests and
from the benchmarks: `python -m benchmarks.faults` from the repository's root)."""
