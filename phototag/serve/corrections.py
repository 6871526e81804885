"""Corrections made on the page: recorded as ``phototag tag`` records them, written at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import WriteSettings
from ..errors import ConfigError, LockedError
from ..index import Index
from ..lock import IndexLock
from ..write import WriteFailed, Wrote, write_tags

#: How long a correction waits for a nightly scan that holds the index before giving up.
LOCK_WAIT = 10.0


def apply_correction(
    index_path: Path, photo: Path, action: str, tag: str, write: WriteSettings
) -> dict[str, Any]:
    """Add or remove ``tag`` on the indexed ``photo`` and rewrite its files.

    Returns ``{"action", "path", "written"}``. Raises ConfigError for a bad action or tag,
    LockedError when a scan keeps the index longer than :data:`LOCK_WAIT` seconds.
    """
    if action not in ("add", "remove"):
        raise ConfigError("the action is 'add' or 'remove'")
    path = tag.strip().strip("/")
    if not path or "|" in path:
        raise ConfigError("a tag may not be empty or contain '|'")
    if "/" not in path and action == "add":
        path = f"user/{path}"
    lock = IndexLock(index_path, "serve")
    try:
        lock.acquire(wait=True, timeout=LOCK_WAIT)
    except LockedError as e:
        raise LockedError(f"{e}; try again when it has finished") from None
    try:
        with Index.open(index_path, create=False) as idx:
            pid = idx.photo_id(photo)
            if pid is None:
                raise ConfigError(f"{photo} is no longer in the index")
            with idx.transaction():
                idx.correct(pid, path, action)
            events = list(write_tags(idx, [], write, photo_ids=[pid]))
    finally:
        lock.release()
    failed = [e.reason for e in events if isinstance(e, WriteFailed)]
    if failed:
        raise ConfigError(
            f"the correction is recorded but the files could not be written: {failed[0]}"
        )
    return {"action": action, "path": path, "written": sum(isinstance(e, Wrote) for e in events)}
