"""Run the quick test lane in this environment and name the package behind each failure.

Called by scripts/check_latest.sh inside an environment with the newest releases installed:
compares what is installed with requirements/lock.txt, runs `pytest -m "not slow"`, and for
each package newer than the lock, installs its locked version, runs the failed tests again and
puts the newest back. Prints one line per package that breaks tests, with the tests.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPORT = Path(".latest-report.txt")


def locked_versions(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and not line.startswith("#"):
            pins[_norm(name)] = version.split(";")[0].strip()
    return pins


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def newer_than_lock(pins: dict[str, str]) -> dict[str, tuple[str, str]]:
    """{package: (locked, installed)} for every installed package whose version differs."""
    changed = {}
    for dist in metadata.distributions():
        name = _norm(dist.metadata["Name"])
        if name in pins and dist.version != pins[name]:
            changed[name] = (pins[name], dist.version)
    return changed


def failed_tests(args: list[str]) -> list[str] | None:
    """Node ids of the failed tests (None when pytest could not run at all)."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", *args],
        capture_output=True,
        text=True,
    )
    sys.stdout.write(out.stdout[-3000:])
    ids = [
        line.split()[1]
        for line in out.stdout.splitlines()
        if line.startswith(("FAILED ", "ERROR "))
    ]
    if out.returncode not in (0, 1) and not ids:
        return None
    return ids


def pip_install(requirement: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", requirement], check=True
    )


def main(lock: str) -> int:
    pins = locked_versions(Path(lock))
    changed = newer_than_lock(pins)
    lines = [f"{name}: locked {old}, newest {new}" for name, (old, new) in sorted(changed.items())]
    print("Newer than the lock:\n  " + ("\n  ".join(lines) or "nothing"))
    failed = failed_tests(["-m", "not slow"])
    if failed is None:
        print("pytest did not run: see its output above")
        return 1
    if not failed:
        print("The quick lane passes with the newest releases.")
        return 0
    verdicts = []
    for name, (old, new) in sorted(changed.items()):
        pip_install(f"{name}=={old}")
        still = failed_tests(failed) or []
        pip_install(f"{name}=={new}")
        fixed = [test for test in failed if test not in still]
        if fixed:
            verdicts.append(f"{name} {new} (locked {old}) breaks: " + ", ".join(fixed))
    unexplained = set(failed) - {t for v in verdicts for t in v.split(": ", 1)[1].split(", ")}
    if unexplained:
        verdicts.append("no single package explains: " + ", ".join(sorted(unexplained)))
    REPORT.write_text("\n".join(verdicts) + "\n")
    print("\n".join(verdicts))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
