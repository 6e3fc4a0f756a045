#!/usr/bin/env bash
# Runs the quick test lane (pytest -m "not slow") against the newest releases that
# pyproject.toml allows, instead of the locked ones, and names the package behind each failure:
# every package newer than requirements/lock.txt is put back to its locked version, one at a
# time, and the failed tests are run again; a package whose locked version makes a failure go
# away is reported as the one that broke it.
#
#   scripts/check_latest.sh            # a fresh environment in .latest-venv (kept for reuse)
#   VENV=/path/to/venv scripts/check_latest.sh
#
# Exit code: 0 when the quick lane passes with the newest releases, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.latest-venv}

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/pip" install --quiet --upgrade --upgrade-strategy eager -e '.[test]' || exit 1
exec "$venv/bin/python" scripts/latest_culprits.py requirements/lock.txt
