"""The SQLite index: what phototag knows about every photo it has scanned."""

from .store import Index, PhotoView, TagCount

__all__ = ["Index", "PhotoView", "TagCount"]
