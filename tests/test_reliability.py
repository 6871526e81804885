"""Faults inflicted on purpose: kills, signals, two runs at once, full disks, read-only places,
stalled and changing files. After each, nothing is lost and the next run finishes the job."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from phototag.cli.app import app
from phototag.cli.console import ExitCode
from phototag.config import Device, LinkMode, WriteSettings
from phototag.errors import IndexFileError
from phototag.index import Index
from phototag.library.albums import build_album
from phototag.library.query import TagQuery
from phototag.lock import IndexLock
from phototag.metadata.write import WriteFailed, Wrote, write_tags
from phototag.metadata.xmp import Sidecar
from phototag.tagging import loader
from phototag.tagging.scan import Finished, ScanOptions, scan

# End to end: real models in subprocesses, killed and rerun.
pytestmark = pytest.mark.slow

PY = [sys.executable, "-m", "phototag"]


@pytest.fixture
def many(tmp_path: Path, make_photo: Callable[..., Path]) -> Path:
    """120 small photos (coffees and cats), enough for a scan to be killed in the middle."""
    for i in range(120):
        make_photo(
            f"lib/{i // 40}/p{i:03d}.jpg", "coffee" if i % 2 else "chelsea", size=(96 + i % 50, 72)
        )
    return tmp_path / "lib"


def digest(folder: Path, pattern: str = "*.jpg") -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob(pattern))
    }


def final_state(index: Path) -> dict[bytes, list[tuple[str, str, float]]]:
    conn = sqlite3.connect(index)
    rows = conn.execute(
        "SELECT p.path, t.recognizer, t.path, round(t.score, 4) FROM tags t JOIN photos p ON p.id = t.photo_id"
    ).fetchall()
    conn.close()
    state: dict[bytes, list[tuple[str, str, float]]] = {}
    for path, rec, tpath, score in rows:
        state.setdefault(path, []).append((rec, tpath, score))
    return {k: sorted(v) for k, v in state.items()}


def tagged_so_far(index: Path) -> int:
    """For polling a running scan: how many photos it has committed (0 while it starts)."""
    try:
        return len(final_state(index)) if index.exists() else 0
    except sqlite3.OperationalError:  # the index is being created
        return 0


def rows_so_far(index: Path, sql: str) -> int:
    """For polling a running command: a count it has committed to the index (0 while it starts)."""
    try:
        conn = sqlite3.connect(index, timeout=5)
        try:
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:  # the index or the table is being created
        return 0


def wait_for(proc: subprocess.Popen[bytes], done: Callable[[], bool], timeout: float = 60) -> None:
    """Poll until ``done()`` or the process ends: waits on observable progress, never a fixed
    time. Fails the test if neither happens within ``timeout`` seconds (a kill then would
    test nothing)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not done():
        if time.monotonic() > deadline:
            pytest.fail(f"no progress within {timeout:.0f} s: the command is stuck")
        time.sleep(0.01)


def integrity(index: Path) -> str:
    conn = sqlite3.connect(index)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def env_for(tmp_path: Path, index: Path) -> dict[str, str]:
    return {**os.environ, "PHOTOTAG_INDEX": str(index), "PHOTOTAG_ALBUMS": str(tmp_path / "albums")}


def test_scans_killed_at_random_moments_lose_nothing_and_finish_like_an_uninterrupted_one(
    tmp_path: Path, many: Path
) -> None:
    photos_before = digest(many)
    reference = tmp_path / "reference.sqlite"
    scan_cmd = [*PY, "scan", str(many), "--device", "cpu", "--batch-size", "4", "-q"]
    subprocess.run(scan_cmd, env=env_for(tmp_path, reference), check=True)
    for sidecar in many.rglob("*.xmp"):
        sidecar.unlink()
    index = tmp_path / "killed.sqlite"
    env = env_for(tmp_path, index)
    rng = np.random.default_rng(7)
    progress = []
    # Kill when the index holds a random number of photos (plus a random extra delay), so
    # every kill lands somewhere inside the scan rather than after it.
    for low in (2, 20, 40, 60, 80, 100):
        target = int(rng.integers(low, low + 18))
        proc = subprocess.Popen(scan_cmd, env=env)
        wait_for(proc, lambda t=target: tagged_so_far(index) >= t)
        time.sleep(float(rng.uniform(0, 0.05)))  # jitter after the progress seen, not a wait
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert digest(many) == photos_before  # every photo byte for byte as it was
        for sidecar in many.rglob("*.xmp"):
            Sidecar.read(sidecar)  # every sidecar parses
        if index.exists():
            assert integrity(index) == "ok"
            progress.append(len(final_state(index)))
    subprocess.run(scan_cmd, env=env, check=True)
    assert final_state(index) == final_state(reference)
    assert any(0 < n < 120 for n in progress), progress  # some kill landed mid-scan
    assert not list(many.rglob(".*.tmp"))


def test_sigterm_and_sigint_stop_cleanly_with_a_summary(tmp_path: Path, many: Path) -> None:
    index = tmp_path / "i.sqlite"
    env = env_for(tmp_path, index)
    for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        # What earlier runs left, counted before this one starts (counted at the signal, it
        # missed the batches the previous run committed after it: this run's wait then ended
        # at once and the signal could land before phototag's handlers were set).
        before = tagged_so_far(index)
        # Ctrl-C at a terminal: SIGINT as the default action. A test command started in the
        # background (nohup, '&') inherits SIGINT ignored, which Python and phototag respect.
        proc = subprocess.Popen([*PY, "scan", str(many), "--device", "cpu", "--batch-size", "4", "--write", "none"],
                                env=env, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
        wait_for(proc, lambda b=before: tagged_so_far(index) >= b + 4)  # a batch of this run
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == code, err
        assert (
            "stopped after" in err and "rolled back" in err and "run the same command again" in err
        )
        assert integrity(index) == "ok"
    assert (
        subprocess.run(
            [*PY, "scan", str(many), "--device", "cpu", "-q", "--write", "none"], env=env
        ).returncode
        == 0
    )
    assert len(final_state(index)) == 120


def test_album_refresh_killed_at_random_moments_finishes_on_the_next_run(
    tmp_path: Path, many: Path
) -> None:
    index = tmp_path / "i.sqlite"
    env = env_for(tmp_path, index)
    subprocess.run(
        [*PY, "scan", str(many), "--device", "cpu", "-q", "--write", "none"], env=env, check=True
    )
    album = [
        *PY,
        "album",
        "--tag",
        "animal",
        "--tag",
        "food",
        "--any",
        "--link",
        "copy",
        "--html",
        "-q",
    ]
    rng = np.random.default_rng(3)
    entries_sql = "SELECT COUNT(*) FROM album_entries"
    for _ in range(5):
        # Kill when a random number of entries more than before is recorded.
        target = rows_so_far(index, entries_sql) + int(rng.integers(1, 25))
        proc = subprocess.Popen(album, env=env)
        wait_for(proc, lambda t=target: rows_so_far(index, entries_sql) >= t)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert integrity(index) == "ok"
    subprocess.run(album, env=env, check=True)
    folder = tmp_path / "albums" / "animal or food"
    entries = [p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "index.html"]
    assert len(entries) == 120
    sources = {hashlib.sha256(p.read_bytes()).hexdigest() for p in many.rglob("*.jpg")}
    assert {
        hashlib.sha256(p.read_bytes()).hexdigest() for p in entries
    } == sources  # whole copies only
    assert not list(folder.glob(".phototag-tmp-*"))


def test_two_writers_at_once_the_second_exits_75_or_waits(tmp_path: Path, library: Path) -> None:
    index = tmp_path / "i.sqlite"
    runner = CliRunner()
    lock = IndexLock(index, "scan").acquire()
    r = runner.invoke(
        app, ["scan", str(library / "2024"), "--index", str(index), "--device", "cpu"]
    )
    assert (
        r.exit_code == ExitCode.LOCKED and "phototag scan (pid" in r.stderr and "--wait" in r.stderr
    )
    writers = (["write", str(library)], ["clean", str(library)], ["album", "--tag", "cat"], ["retag"],
               ["forget", str(library)], ["tag", "add", str(library / "2024" / "cat.png"), "x"])  # fmt: skip
    for command in writers:
        r = runner.invoke(app, [*command, "--index", str(index)])
        assert r.exit_code == ExitCode.LOCKED, (command, r.stderr)  # every writer takes the lock
    threading.Timer(1.0, lock.release).start()
    r = runner.invoke(
        app,
        ["scan", str(library / "2024"), "--index", str(index), "--device", "cpu", "--wait", "-q"],
    )
    assert r.exit_code == 0
    # The lock of a process killed with SIGKILL is released by the kernel.
    holder = subprocess.Popen([sys.executable, "-c", f"from phototag.lock import IndexLock; import time; "
                               f"IndexLock({str(index)!r}, 'scan').acquire(); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    holder.stdout.close()
    IndexLock(index, "test").acquire().release()


def test_a_scan_and_an_album_refresh_at_once_both_finish(tmp_path: Path, many: Path) -> None:
    index = tmp_path / "i.sqlite"
    env = env_for(tmp_path, index)
    subprocess.run(
        [*PY, "scan", str(many / "0"), "--device", "cpu", "-q", "--write", "none"],
        env=env,
        check=True,
    )
    subprocess.run([*PY, "album", "--tag", "cat", "-q"], env=env, check=True)
    a = subprocess.Popen(
        [*PY, "scan", str(many), "--device", "cpu", "-q", "--wait", "--write", "none"], env=env
    )
    b = subprocess.Popen([*PY, "album", "--refresh", "-q", "--wait"], env=env)
    assert a.wait(timeout=120) == 0 and b.wait(timeout=120) == 0
    assert integrity(index) == "ok"


def test_a_full_disk_under_the_index_stops_cleanly_and_the_next_run_resumes(
    tmp_path: Path, many: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = Index.open.__func__  # type: ignore[attr-defined]

    def small_disk(cls: type[Index], path: Path, **kw: object) -> Index:
        idx = real_open(cls, path, **kw)
        pages = idx.conn.execute("PRAGMA page_count").fetchone()[0]
        idx.conn.execute(f"PRAGMA max_page_count = {pages + 12}")  # SQLite's own "disk full"
        return idx

    monkeypatch.setattr(Index, "open", classmethod(small_disk))
    index = tmp_path / "i.sqlite"
    with (
        pytest.raises(IndexFileError, match=r"disk holding the index .* is full"),
        Index.open(index) as idx,
    ):
        list(scan([many], idx, ScanOptions(device=Device.CPU, batch_size=4)))
    monkeypatch.undo()
    assert integrity(index) == "ok"
    partial = len(final_state(index))
    assert 0 < partial < 120
    with Index.open(index) as idx:
        report = next(
            e.report
            for e in scan([many], idx, ScanOptions(device=Device.CPU))
            if isinstance(e, Finished)
        )
    assert report.unchanged == partial and len(final_state(index)) == 120


def test_a_full_disk_while_writing_sidecars_keeps_the_old_sidecar(
    tmp_path: Path, library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a real 64 KiB tmpfs when root may mount one, else with ENOSPC injected."""
    lib = library / "2024"
    with Index.open(tmp_path / "i.sqlite") as idx:
        list(scan([lib], idx, ScanOptions(device=Device.CPU)))
        list(write_tags(idx, [lib], WriteSettings()))
        before = {p: p.read_bytes() for p in lib.glob("*.xmp")}
        list(scan([lib], idx, ScanOptions(device=Device.CPU, threshold=0.05)))  # more tags to write
        mount = tmp_path / "small"
        mount.mkdir()
        mounted = (
            os.geteuid() == 0
            and subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
            ).returncode
            == 0
        )
        try:
            if mounted:  # a real full disk: the folder holding the sidecars is a tiny tmpfs
                import shutil

                small_lib = mount / "lib"
                small_lib.mkdir()
                for p in before:
                    shutil.copy(p, small_lib / p.name)
                fd = os.open(mount / "fill", os.O_WRONLY | os.O_CREAT)
                try:  # fill the disk to the last byte
                    while True:
                        os.write(fd, b"\0" * 512)
                except OSError as e:
                    assert e.errno == errno.ENOSPC
                finally:
                    os.close(fd)
                from phototag.metadata.sidecars import Convention, Resolution

                monkeypatch.setattr(
                    "phototag.metadata.write.SidecarResolver.resolve",
                    lambda self, photo, naming: Resolution(
                        photo, small_lib / (photo.name + ".xmp"), Convention.FULL, True
                    ),
                )
                watched = {small_lib / p.name: b for p, b in before.items()}
            else:
                import phototag.metadata.xmp as xmp

                def no_space(*a: object, **kw: object) -> tuple[int, str]:
                    raise OSError(errno.ENOSPC, "No space left on device")

                monkeypatch.setattr(xmp.tempfile, "mkstemp", no_space)
                watched = before
            events = list(write_tags(idx, [lib], WriteSettings()))
            failed = [e for e in events if isinstance(e, WriteFailed)]
            assert failed and all("No space left on device" in e.reason for e in failed)
            for p, data in watched.items():  # every old sidecar is whole: the old one or a new one
                assert p.read_bytes() == data or Sidecar.read(p) is not None
            assert not [
                p
                for p in (watched and next(iter(watched)).parent).iterdir()
                if p.name.endswith(".tmp")
            ]
        finally:
            if mounted:
                subprocess.run(["umount", str(mount)], check=True)


def run_as_nobody(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """Root ignores file permissions, so read-only cases run as 'nobody' when we are root."""
    prefix = []
    if os.geteuid() == 0:
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        for parent in [tmp_path, *tmp_path.parents]:  # let nobody reach the test's folder
            if parent == Path("/"):
                break
            os.chmod(parent, os.stat(parent).st_mode | 0o005)
    return subprocess.run([*prefix, *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_read_only_index_location_is_refused_clearly(tmp_path: Path, library: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    os.chmod(tmp_path, 0o755)
    env = {**os.environ, "PHOTOTAG_INDEX": str(ro / "index.sqlite"), "HOME": str(tmp_path)}
    r = run_as_nobody(
        [*PY, "scan", str(library / "2024"), "--device", "cpu", "--write", "none"], env, tmp_path
    )
    assert r.returncode == ExitCode.ERROR, r.stderr
    assert "index" in r.stderr and (
        "read-only" in r.stderr or "cannot" in r.stderr or "denied" in r.stderr
    )
    assert "Traceback" not in r.stderr


def test_read_only_photos_and_folders_are_reported_and_nothing_else_is_lost(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    for i in range(3):
        make_photo(f"pub/ok/p{i}.jpg", "coffee")
        make_photo(f"pub/locked/q{i}.jpg", "chelsea")
    for p in (tmp_path, tmp_path / "pub", tmp_path / "pub" / "ok"):
        os.chmod(p, 0o777)
    os.chmod(tmp_path / "pub" / "locked", 0o555)
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o777)
    env = {**os.environ, "PHOTOTAG_INDEX": str(home / "i.sqlite"), "HOME": str(home)}
    r = run_as_nobody([*PY, "scan", str(tmp_path / "pub"), "--device", "cpu"], env, tmp_path)
    assert r.returncode == ExitCode.FILES_FAILED, r.stderr
    assert r.stderr.count("Permission denied") == 3 and "locked/q0.jpg" in r.stderr
    assert len(list((tmp_path / "pub" / "ok").glob("*.xmp"))) == 3
    assert len(final_state(home / "i.sqlite")) == 6  # all six tagged in the index


def test_a_stalled_read_is_skipped_after_the_timeout_and_the_run_finishes(
    library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_read = loader.read_file
    victim = library / "2024" / "cat.png"

    def stalling(entry: loader.FileEntry, *a: object) -> tuple[bytes, int, int]:
        if entry.path == victim:
            release.wait(60)  # a read on a dead network mount
        return real_read(entry)

    monkeypatch.setattr(loader, "read_file", stalling)
    try:
        with Index.open(tmp_path / "i.sqlite") as idx:
            t = time.monotonic()
            events = list(
                scan([library / "2024"], idx, ScanOptions(device=Device.CPU, read_timeout=1.0))
            )
            assert time.monotonic() - t < 30
        report = events[-1].report  # type: ignore[union-attr]
        assert report.tagged == 3
        assert [(f.path.name, "stalled storage" in f.reason) for f in report.failures] == [
            ("cat.png", True)
        ]
    finally:
        release.set()


def test_a_file_that_changes_while_read_is_reported_and_retried_next_run(
    library: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fstat = os.fstat
    calls: dict[int, int] = {}
    victim = str(library / "2024" / "coffee.jpg")

    def changing(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return st
        if name == victim:
            calls[fd] = calls.get(fd, 0) + 1
            if calls[fd] == 2:  # the second look, after reading: someone appended to it
                return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid,
                                       st.st_size + 10, st.st_atime, st.st_mtime, st.st_ctime))  # fmt: skip
        return st

    monkeypatch.setattr(loader.os, "fstat", changing)
    with Index.open(tmp_path / "i.sqlite") as idx:
        report = next(
            e.report
            for e in scan([library / "2024"], idx, ScanOptions(device=Device.CPU))
            if isinstance(e, Finished)
        )
        assert [(f.path.name, f.reason) for f in report.failures] == [
            ("coffee.jpg", "changed while being read (it will be read again next run)")
        ]
        monkeypatch.undo()
        report = next(
            e.report
            for e in scan([library / "2024"], idx, ScanOptions(device=Device.CPU))
            if isinstance(e, Finished)
        )
        assert report.tagged == 1 and not report.failures


def test_album_refresh_skips_a_half_copied_entry_left_by_a_kill(
    tmp_path: Path, library: Path
) -> None:
    with Index.open(tmp_path / "i.sqlite") as idx:
        list(scan([library / "2024"], idx, ScanOptions(device=Device.CPU)))
        folder = tmp_path / "albums" / "cats"
        build_album(idx, "cats", folder, TagQuery(tags=("cat",)), LinkMode.COPY)
        (folder / ".phototag-tmp-abc123").write_bytes(b"half a photo")
        report = build_album(idx, "cats", folder, TagQuery(tags=("cat",)), LinkMode.COPY)
        assert report.added == [] and not (folder / ".phototag-tmp-abc123").exists()
        assert (folder / ".phototag-album").exists()
        assert isinstance(report, object) and all(
            p.stat().st_size > 1000 for p in folder.glob("2*")
        )


_ = Wrote


def test_embedded_writes_killed_at_random_moments_leave_every_photo_whole(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    """exiftool writes a temporary file and renames it; phototag is SIGKILLed around that."""
    lib = tmp_path / "lib"
    for i in range(30):
        make_photo(f"lib/p{i:02d}.jpg", "coffee" if i % 2 else "chelsea", size=(400 + i, 300))
    pixels_before = {p.name: np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(p).convert("RGB")).tobytes()
                     for p in lib.glob("*.jpg")}  # fmt: skip
    index = tmp_path / "i.sqlite"
    env = env_for(tmp_path, index)
    subprocess.run(
        [*PY, "scan", str(lib), "--device", "cpu", "-q", "--write", "none"], env=env, check=True
    )
    write = [*PY, "write", str(lib), "--write", "embed", "-q"]
    from PIL import Image

    written_sql = "SELECT COUNT(*) FROM targets WHERE mode = 'embed'"
    for step in (1, 4, 7, 10, 13):
        # Kill once a few more photos are recorded as written (exiftool is mid-way through
        # the next one or between two), as observed in the index, not after a fixed time.
        target = rows_so_far(index, written_sql) + step % 5 + 1
        proc = subprocess.Popen(write, env=env)
        wait_for(proc, lambda t=target: rows_so_far(index, written_sql) >= t)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # An orphaned exiftool finishes the file it was on, then exits on its closed stdin:
        # wait until no temporary file of its is left (or give up after 10 s).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any("exiftool_tmp" in p.name for p in lib.iterdir()):
            time.sleep(0.01)
        for p in lib.glob("*.jpg"):
            with Image.open(p) as im:  # every photo decodes, to the same pixels
                assert np.asarray(im.convert("RGB")).tobytes() == pixels_before[p.name], p
        assert integrity(index) == "ok"
    r = subprocess.run(write, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr  # the next run finishes the job
    from metadata_readers import by_exiftool

    assert all("phototag|food|drink|espresso" in by_exiftool(lib / f"p{i:02d}.jpg").get("lr:hierarchicalSubject", [])
               for i in range(1, 30, 2))  # fmt: skip
    assert not [p for p in lib.iterdir() if "exiftool_tmp" in p.name]


def test_a_damaged_index_is_reported_as_damaged_not_as_a_bug(tmp_path: Path) -> None:
    """A page-corrupted index (a bad disk, a copy taken mid-write): every command says the
    index cannot be read and what to do, exit 3; doctor reports it as a problem, exit 3."""
    from phototag.index.store import PhotoRecord
    from phototag.models.recognizers import Candidate

    path = tmp_path / "index.sqlite"
    with Index.open(path) as idx, idx.transaction():
        for i in range(400):
            pid = idx.upsert_photo(
                PhotoRecord(tmp_path / f"p{i}.jpg", 10, i, f"{i:032x}", 8, 8, None)
            )
            idx.set_results(
                pid, "scene", "fp", [Candidate(f"tag {i % 40}", 0.5, f"scene/tag {i % 40}")]
            )
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    data[8192:] = rng.integers(0, 256, len(data) - 8192, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    for args in (["tags"], ["show", str(tmp_path / "p1.jpg")], ["album", "--list"]):
        r = CliRunner().invoke(app, [*args, "--index", str(path)])
        assert r.exit_code == ExitCode.ERROR, (args, r.output)
        assert "index" in r.output and "bug" not in r.output and "Traceback" not in r.output, (
            r.output
        )
    r = CliRunner().invoke(app, ["doctor", "--index", str(path)])
    assert r.exit_code == ExitCode.ERROR, r.output
    assert "damaged" in r.output or "cannot be read" in r.output, r.output
