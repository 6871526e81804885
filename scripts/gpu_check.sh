#!/usr/bin/env bash
# The GPU check, prepared for a session that is lent a GPU machine (the device tool): run it
# there ONCE, from the repository root, with the wheels carried in .whl/ (see below) and
# $OUT set by the tool. It installs phototag with the cuda extra, runs the GPU-path tests
# and the benchmark on CUDA with 16 decode threads, and writes everything to $OUT.
#
# Prepare here first (x86-64 wheels for the device's Python; the device README explains):
#   python3 -m pip download --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#       -d .whl 'onnxruntime-gpu[cuda,cudnn]==1.31.1' onnx pillow pillow-heif numpy typer rich \
#       platformdirs lxml defusedxml pyexiftool ftfy regex scikit-image pytest hypothesis scikit-learn
# (not the whole test extra: it brings PyTorch for the zero-shot export tests, ~5 GB, more than
# a device call can carry; for the same reason a CLIP backbone, 580 MB, cannot be measured there)
# then call the device tool with carry [".whl"] and: bash scripts/gpu_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
{
  nvidia-smi || true
  python3 -m pip install -q --no-index --find-links .whl '.[cuda]' scikit-image pytest hypothesis \
    scikit-learn 2>&1 | tail -3
  python3 -m phototag doctor --device cuda
  PYTHONUNBUFFERED=1 python3 -m pytest -q tests/test_gpu_paths.py tests/test_models.py -p no:cacheprovider
  PYTHONUNBUFFERED=1 python3 bench/scan_speed.py --device cuda --workers 16 --n 400
} 2>&1 | tee "$OUT/gpu-check.log"
