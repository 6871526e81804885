#!/usr/bin/env bash
# Install what the tests need and run them: the README's test command, and what .ci/run calls.
# Works on a fresh clone: installs the system tools the tests use when they are missing
# (exiftool and exiv2: the metadata round trips read back with both; chromium: the album
# contact sheet is loaded in a real browser), creates .venv,
# installs phototag with its dev extra (tests, ruff, mypy), runs ruff (lint and format) and mypy --strict, then
# the fast test tier and the slow one (PYTEST args, e.g. a file or -k, go to both tiers).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v exiftool >/dev/null || missing+=(libimage-exiftool-perl)
command -v exiv2 >/dev/null || missing+=(exiv2)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "scripts/test.sh: please install ${missing[*]} (exiftool, exiv2, chromium, chromium-driver) with your package manager" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "scripts/test.sh: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'

# Lint and types first: they take seconds and fail fastest.
.venv/bin/ruff check phototag tests bench scripts
.venv/bin/ruff format --check phototag tests bench scripts
.venv/bin/mypy

# The fast tier (fakes at the onnxruntime boundary, under 90 s on 2 cores), then the slow
# tier (end-to-end runs of the real models over generated libraries). Both must pass.
# pytest's 5 ("no tests collected") is not a failure: an argument may select one tier only.
tier() {
  local rc=0
  .venv/bin/python -m pytest -m "$1" "${@:2}" || rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then
    exit "$rc"
  fi
}
# The fast tier on every core (pytest-xdist); the slow tier one test at a time, so that the
# kill tests and the real models' runs do not compete for the CPU.
tier "not slow" -n auto "$@"
tier slow "$@"
