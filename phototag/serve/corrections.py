"""Corrections made on the page: the same as ``phototag tag add|remove``, written at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import WriteSettings
from ..errors import ConfigError, LockedError
from ..index import Index
from ..library import corrections
from ..lock import IndexLock
from ..metadata.write import WriteFailed, Wrote, write_tags

#: How long a correction waits for a nightly scan that holds the index before giving up.
LOCK_WAIT = 10.0


def apply_correction(
    index_path: Path, photo: Path, action: str, tag: str, write: WriteSettings
) -> dict[str, Any]:
    """Add or remove ``tag`` on the indexed ``photo`` and rewrite its files, in the mode the
    photo was written with (else ``write``'s), by :mod:`phototag.library.corrections`' rules.

    Returns ``{"action", "path", "changed", "written"}``. Raises ConfigError for a bad
    action or tag (``NothingToRemove`` for a tag the photo lacks), LockedError when a scan
    keeps the index longer than :data:`LOCK_WAIT` seconds.
    """
    if action not in ("add", "remove"):
        raise ConfigError("the action is 'add' or 'remove'")
    lock = IndexLock(index_path, "serve")
    try:
        lock.acquire(wait=True, timeout=LOCK_WAIT)
    except LockedError as e:
        raise LockedError(f"{e}; try again when it has finished") from None
    try:
        with Index.open(index_path, create=False) as idx:
            done = (corrections.add if action == "add" else corrections.remove)(idx, photo, tag)
            events = list(write_tags(idx, [], write, photo_ids=[done.photo_id], keep_modes=True))
    finally:
        lock.release()
    failed = [e.reason for e in events if isinstance(e, WriteFailed)]
    if failed:
        raise ConfigError(
            f"the correction is recorded but the files could not be written: {failed[0]}"
        )
    return {"action": action, "path": done.path, "changed": done.changed,
            "written": sum(isinstance(e, Wrote) for e in events)}  # fmt: skip
