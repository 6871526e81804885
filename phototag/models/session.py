"""How a model runs: onnxruntime sessions and execution providers.

The GPU build of onnxruntime lists CUDA as *available* even where the CUDA libraries or
the driver are missing, then falls back to the CPU with a red error on stderr. So we
look for the driver ourselves before asking for CUDA, and always report the providers
the session really got (:attr:`Session.providers`).
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Device
from ..errors import DeviceError, ModelError

__all__ = ["Device", "Session", "choose_providers", "open_session"]


CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
CPU = "CPUExecutionProvider"


def nvidia_driver_problem() -> str | None:
    """None if an NVIDIA driver library can be loaded, else why not."""
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", "libcuda.so"]
    for name in names:
        try:
            ctypes.CDLL(name)
            return None
        except OSError:
            continue
    return "no NVIDIA driver found (libcuda could not be loaded)"


def choose_providers(device: Device, available: list[str]) -> list[str]:
    """The ordered provider list to ask for. Raises DeviceError if ``cuda`` cannot be had."""
    if device is Device.CPU:
        return [CPU]
    gpu = [p for p in (TENSORRT, CUDA) if p in available]
    problem = (
        None if gpu else "this onnxruntime build has no CUDA provider (install onnxruntime-gpu)"
    )
    if gpu and problem is None:
        problem = nvidia_driver_problem()
    if problem:
        if device is Device.CUDA:
            raise DeviceError(f"--device cuda: {problem}")
        return [CPU]
    # TensorRT only when its libraries load; it needs far more setup than CUDA.
    return [*gpu, CPU] if TENSORRT in gpu and _tensorrt_loads() else [CUDA, CPU]


def _tensorrt_loads() -> bool:
    for name in ("libnvinfer.so.10", "libnvinfer.so.8", "nvinfer_10.dll"):
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


@dataclass
class Session:
    """A loaded ONNX model. ``run`` takes and returns numpy arrays."""

    path: Path
    providers: list[str]
    _session: Any = field(repr=False)

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return list(self._session.run(outputs, feeds))

    def input_names(self) -> list[str]:
        return [i.name for i in self._session.get_inputs()]

    def output_names(self) -> list[str]:
        return [o.name for o in self._session.get_outputs()]


def open_session(path: Path, device: Device = Device.AUTO, threads: int | None = None) -> Session:
    """Load ``path`` on the best provider ``device`` allows; the CPU is the fallback."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # errors only; we report fallbacks ourselves
    wanted = choose_providers(device, ort.get_available_providers())
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    # Idle inference threads must not spin: in a scan they share the cores with the
    # decode threads, and spinning starves them (measured in bench/scan_speed.py).
    if os.environ.get("PHOTOTAG_ORT_SPIN", "0") != "1":
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    provider_options: list[dict[str, str]] = []
    for p in wanted:
        if p == CUDA:
            # Measure-driven settings belong to the GPU work (issue 7); these are safe ones.
            provider_options.append({"cudnn_conv_algo_search": "HEURISTIC"})
        elif p == TENSORRT:
            cache = Path(os.environ.get("PHOTOTAG_TRT_CACHE", path.parent / ".trt-cache"))
            provider_options.append(
                {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache)}
            )
        else:
            provider_options.append({})
    try:
        sess = ort.InferenceSession(
            str(path), sess_options=options, providers=wanted, provider_options=provider_options
        )
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot load model {path}: {text}") from None
    got = list(sess.get_providers())
    if device is Device.CUDA and CUDA not in got and TENSORRT not in got:
        raise DeviceError(
            "--device cuda: onnxruntime could not start CUDA (check CUDA 12/13 and cuDNN 9)"
        )
    return Session(path=path, providers=got, _session=sess)
