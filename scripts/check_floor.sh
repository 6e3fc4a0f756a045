#!/usr/bin/env bash
# Runs the quick test lane (pytest -m "not slow") against the OLDEST releases pyproject.toml
# allows: every `name>=X` of the dependencies and the test extra is installed at exactly X, in
# a fresh environment of the oldest Python selab supports. This is what makes the lower bounds
# in pyproject.toml tested ones; raise a bound when this fails and the older release cannot be
# made to work.
#
#   scripts/check_floor.sh                    # Python 3.10 (PYTHON=python3.10), .floor-venv
#   PYTHON=/path/to/python3.10 VENV=/tmp/floor scripts/check_floor.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3.10}
venv=${VENV:-.floor-venv}

python3 - > .floor-constraints.txt <<'PY'
import re, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
requirements = project["dependencies"] + project["optional-dependencies"]["test"]
for requirement in requirements:
    match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^]]*\])?\s*>=\s*([^,;\s]+)", requirement)
    if match:
        print(f"{match.group(1)}=={match.group(3)}")
PY
echo "floor versions:"; sed 's/^/  /' .floor-constraints.txt

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/pip" install --quiet -c .floor-constraints.txt -e '.[test]'
"$venv/bin/python" --version
"$venv/bin/python" -m pytest -m "not slow" -q -p no:cacheprovider
