#!/usr/bin/env bash
# The long fuzz run (20,000 examples per target; minutes to hours). CI runs the same
# targets with 150 examples each as part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PHOTOTAG_FUZZ=long exec .venv/bin/python -m pytest tests/test_fuzz.py -q "$@"
