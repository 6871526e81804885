"""phototag: tag local photo libraries with deep-learning image recognition.

The library API; the command line in :mod:`phototag.cli` is one client of it. Heavy
dependencies (onnxruntime, Pillow) are imported by the modules that use them, so
importing :mod:`phototag` stays cheap.
"""

__version__ = "0.1.0"
