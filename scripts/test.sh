#!/usr/bin/env bash
# Install what the tests need and run them: the README's test command, and what .ci/run calls.
# Works on a fresh clone: creates .venv, installs phototag with its test extra, runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"
