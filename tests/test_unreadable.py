"""A file phototag may not read (mode 000, another user's): a failure recorded like a broken
file, so the nightly scan that meets it unchanged says "known" and exits 0 (docs/cli.md)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import invoke

from phototag.cli.console import ExitCode
from phototag.index import Index


def make_unreadable(path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Make ``path`` unreadable to this process; returns what makes it readable again.

    chmod 000 where that denies reading (not as root); as root, opening and access checks of
    that one path are refused as they would be for another user's file."""
    if os.geteuid() != 0:
        path.chmod(0)
        return lambda: path.chmod(0o644)
    denied = {os.fsencode(path), str(path)}
    real_open, real_access = os.open, os.access
    blocked = [True]

    def guarded_open(p: object, *a: object, **kw: object) -> int:
        if blocked[0] and (os.fsencode(p) if isinstance(p, str | Path) else p) in denied:  # type: ignore[operator]
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, *a, **kw)  # type: ignore[arg-type]

    def guarded_access(p: object, mode: int, *a: object, **kw: object) -> bool:
        if blocked[0] and (os.fsencode(p) if isinstance(p, str | Path) else p) in denied:  # type: ignore[operator]
            return False
        return real_access(p, mode, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", guarded_open)
    monkeypatch.setattr(os, "access", guarded_access)

    def unblock() -> None:
        blocked[0] = False

    return unblock


@pytest.mark.usefixtures("fake_onnx")
def test_an_unreadable_file_fails_once_then_is_a_known_failure(
    tmp_path: Path, make_photo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "idx.sqlite"
    lib = tmp_path / "lib"
    make_photo("lib/a.jpg", "coffee")
    locked = make_photo("lib/locked.jpg", "chelsea")
    readable_again = make_unreadable(locked, monkeypatch)

    code, _, err = invoke("scan", lib, "--index", index, "--device", "cpu")
    assert code == ExitCode.FILES_FAILED and "locked.jpg" in err and "permission denied" in err
    with Index.open(index) as idx:
        assert idx.count_photos() == 1
        assert encode(locked) in idx.known_failures()

    # The nightly scan: the file is unchanged and still unreadable, a known failure.
    code, _, err = invoke("scan", lib, "--index", index, "--device", "cpu")
    assert code == ExitCode.OK, err
    assert "1 files that failed before are unchanged" in err, err

    # Readable again (chmod changes no mtime): read and tagged by the next scan.
    readable_again()
    code, _, err = invoke("scan", lib, "--index", index, "--device", "cpu")
    assert code == ExitCode.OK, err
    with Index.open(index) as idx:
        assert idx.count_photos() == 2 and idx.photo(locked) is not None
        assert encode(locked) not in idx.known_failures()


def encode(path: Path) -> bytes:
    from phototag.index.store import encode_path

    return encode_path(path)
