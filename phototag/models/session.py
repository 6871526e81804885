"""How a model runs: onnxruntime sessions and execution providers.

The GPU build of onnxruntime lists CUDA as *available* even where the CUDA libraries or
the driver are missing, then falls back to the CPU with a red error on stderr. So we
look for the driver ourselves before asking for CUDA, and always report the providers
the session really got (:attr:`Session.providers`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from collections.abc import Callable
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


#: What onnxruntime-gpu's CUDA provider loads (CUDA 13 builds; the cuda extra brings them).
CUDA_LIBRARIES = ("libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcufft.so.12",
                  "libcurand.so.10", "libcudnn.so.9")  # fmt: skip


def cuda_problems() -> list[str]:
    """Why the CUDA provider cannot be used here, or [] if nothing is known to be missing."""
    problem = nvidia_driver_problem()
    if problem:
        return [problem]
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        return ["this onnxruntime build has no CUDA provider (install onnxruntime-gpu)"]
    if hasattr(ort, "preload_dlls"):
        with contextlib.suppress(Exception):
            ort.preload_dlls()
    missing = []
    for name in CUDA_LIBRARIES if sys.platform != "win32" else ():
        try:
            ctypes.CDLL(name)
        except OSError:
            missing.append(name)
    if missing:
        return [f"missing CUDA libraries: {', '.join(missing)} (pip install 'phototag[cuda]')"]
    return []


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
            raise DeviceError(f"CUDA was asked for and cannot be used: {problem}")
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


def provider_settings(provider: str) -> dict[str, str]:
    """Options for each execution provider, in one place.

    CUDA: cuDNN's exhaustive algorithm search (onnxruntime's default; it pays off because
    phototag keeps batch shapes fixed, padding the last batch), copies in the default
    stream, and an arena that grows by what is asked rather than doubling. TensorRT: fp16
    kernels and an engine and timing cache on disk, so the minutes of engine building are
    paid once. These are the documented settings, not yet tuned by measurement on a GPU
    (no GPU was available to this work; docs/performance.md).
    """
    if provider == CUDA:
        return {
            "device_id": os.environ.get("PHOTOTAG_CUDA_DEVICE", "0"),
            "cudnn_conv_algo_search": "EXHAUSTIVE",
            "do_copy_in_default_stream": "1",
            "arena_extend_strategy": "kSameAsRequested",
        }
    if provider == TENSORRT:
        from ..config import cache_dir

        cache = str(cache_dir() / "tensorrt")
        return {
            "trt_fp16_enable": "True",
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": cache,
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": cache,
        }
    return {}


def on_gpu(providers: list[str]) -> bool:
    return CUDA in providers or TENSORRT in providers


@dataclass
class Session:
    """A loaded ONNX model. ``run`` takes and returns numpy arrays."""

    path: Path
    providers: list[str]
    _session: Any = field(repr=False)

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if on_gpu(self.providers):
            return self.run_bound(outputs, feeds)
        return list(self._session.run(outputs, feeds))

    def run_bound(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run with I/O binding: each input is copied to the device once, outputs come back once.

        On the CPU provider this is the same computation as :meth:`run` (tested); on CUDA it
        avoids onnxruntime's per-call staging copies.
        """
        import onnxruntime as ort

        device = "cuda" if on_gpu(self.providers) else "cpu"
        binding = self._session.io_binding()
        for name, array in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), device, 0)
            binding.bind_ortvalue_input(name, value)
        for name in outputs:
            binding.bind_output(name, "cpu")
        self._session.run_with_iobinding(binding)
        return list(binding.copy_outputs_to_cpu())

    def input_names(self) -> list[str]:
        return [i.name for i in self._session.get_inputs()]

    def output_names(self) -> list[str]:
        return [o.name for o in self._session.get_outputs()]


def open_session(
    path: Path,
    device: Device = Device.AUTO,
    threads: int | None = None,
    *,
    gpu_path: Callable[[], Path] | None = None,
) -> Session:
    """Load ``path`` on the best provider ``device`` allows; the CPU is the fallback.

    ``gpu_path`` gives the model to load instead when a GPU provider is chosen (the float16
    variant); it is only asked for then.
    """
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # errors only; we report fallbacks ourselves
    wanted = choose_providers(device, ort.get_available_providers())
    if CUDA in wanted and hasattr(ort, "preload_dlls"):
        # Load the CUDA and cuDNN libraries from the nvidia-* wheels of the cuda extra, if any.
        # If it fails, the system's libraries are used, or CUDA fails and is reported below.
        with contextlib.suppress(Exception):
            ort.preload_dlls()
    if on_gpu(wanted) and gpu_path is not None:
        path = gpu_path()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    # Idle inference threads must not spin: in a scan they share the cores with the
    # decode threads, and spinning starves them (measured in bench/scan_speed.py).
    if os.environ.get("PHOTOTAG_ORT_SPIN", "0") != "1":
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    provider_options = [provider_settings(p) for p in wanted]
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
            "CUDA was asked for and onnxruntime could not start it (check CUDA 12/13 and cuDNN 9)"
        )
    return Session(path=path, providers=got, _session=sess)
