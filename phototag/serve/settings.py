"""What a server is started with: address, token, limits and batching."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Device, WriteSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8600
#: Uploads above this many bytes are refused with 413 before they are read whole.
DEFAULT_MAX_UPLOAD_BYTES = 50 * 2**20
#: Uploads above this many pixels are refused before decoding (decompression bombs): 100 MP
#: admits every phone and most cameras; a server decodes for strangers, a scan for its owner.
DEFAULT_MAX_UPLOAD_PIXELS = 100_000_000


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    """A random bearer token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ServeSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # Required on every request when set; a server bound to a non-loopback address
    # refuses to start without one (the CLI generates one).
    token: str | None = None
    index_path: Path | None = None  # None: config.default_index_path()
    catalogs_dir: Path | None = None  # None: catalogs.catalogs_dir()
    recognizers: tuple[str, ...] = ()  # the default models of /v1/recognize; () = scan's
    device: Device = Device.AUTO
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_UPLOAD_PIXELS
    batch_wait: float = 0.005  # seconds the first request of a batch waits for company
    max_batch: int = 32
    write: WriteSettings = field(default_factory=WriteSettings)  # how corrections are written
