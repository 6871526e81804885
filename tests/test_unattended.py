"""Unattended operation: the documented crontab line and systemd units really run, --quiet
is silent, --log-file gets one JSON object per event, doctor checks what cron needs."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phototag.cli.app import app
from phototag.lock import IndexLock

# End to end: the CLI as cron runs it, real models in subprocesses.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CRON = (ROOT / "docs" / "cron.md").read_text()


def fenced_after(marker: str) -> str:
    m = re.search(re.escape(marker) + r".*?\n```\w*\n(.*?)```", CRON, re.S)
    assert m, marker
    return m.group(1)


def home_with_phototag(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> tuple[Path, dict[str, str]]:
    home = tmp_path / "home"
    (home / ".phototag" / "bin").mkdir(parents=True)
    (home / ".phototag" / "bin" / "phototag").symlink_to(Path(sys.executable).with_name("phototag"))
    make_photo("home/Pictures/2024/coffee.jpg", "coffee")
    make_photo("home/Pictures/2024/cat.png", "chelsea")
    (home / "Pictures" / "broken.jpg").write_bytes(b"not a photo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOTOTAG_", "XDG_"))}
    env["HOME"] = str(home)
    return home, env


def test_the_documented_crontab_line_runs_the_nightly_job(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    home, env = home_with_phototag(tmp_path, make_photo)
    line = fenced_after("<!-- crontab:").strip()
    fields = line.split(None, 5)
    assert fields[:5] == ["30", "3", "*", "*", "*"]
    phototag = str(home / ".phototag" / "bin" / "phototag")
    subprocess.run([phototag, "scan", str(home / "Pictures"), "-q", "--write", "none"], env=env)
    subprocess.run([phototag, "album", "--tag", "cat", "-q"], env=env, check=True)
    (home / "Pictures" / "2024" / "cat2.png").write_bytes(
        (home / "Pictures" / "2024" / "cat.png").read_bytes()
    )
    result = subprocess.run(["/bin/sh", "-c", fields[5]], env=env, capture_output=True, text=True)
    assert result.returncode == 0  # the album refresh ran last and succeeded
    # Quiet: broken.jpg failed in the first scan and is unchanged, so the nightly mail is
    # empty (issue 14); 'phototag failures' lists it, and the log counts it.
    assert (result.stdout, result.stderr) == ("", "")
    assert (home / "Pictures" / "2024" / "cat.png.xmp").exists()  # the scan wrote sidecars
    album = home / ".local" / "share" / "phototag" / "albums" / "cat"
    assert (
        len([p for p in album.iterdir() if not p.name.startswith(".")]) == 2
    )  # the refresh added cat2
    events = [
        json.loads(x)
        for x in (home / ".local" / "state" / "phototag" / "nightly.log").read_text().splitlines()
    ]
    summaries = [e for e in events if e["event"] == "summary"]
    assert summaries and summaries[0]["command"] == "scan" and summaries[0]["failed"] == 1
    assert summaries[0]["known_failed"] == 1
    assert any(e["event"] == "album" for e in events) and all(
        "time" in e and "pid" in e for e in events
    )


def test_the_documented_systemd_service_commands_run(
    tmp_path: Path, make_photo: Callable[..., Path]
) -> None:
    home, env = home_with_phototag(tmp_path, make_photo)
    unit = fenced_after("<!-- systemd-service:")
    execs = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert len(execs) == 2
    for cmd in execs:
        ignore_failure = cmd.startswith("-")
        argv = shlex.split(cmd.lstrip("-").replace("%h", str(home)))
        code = subprocess.run(argv, env=env, capture_output=True).returncode
        assert code == 0 or (ignore_failure and code == 1)
    assert (home / ".local" / "share" / "phototag" / "index.sqlite").exists()


def test_quiet_is_silent_on_success_and_the_log_rotates(tmp_path: Path, library: Path) -> None:
    runner = CliRunner()
    log = tmp_path / "logs" / "phototag.log"
    index = ["--index", str(tmp_path / "i.sqlite")]
    r = runner.invoke(
        app,
        ["scan", str(library / "2024"), "-q", "--device", "cpu", "--log-file", str(log), *index],
    )
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
    events = [json.loads(x) for x in log.read_text().splitlines()]
    assert [e["event"] for e in events].count("tagged") == 4
    (summary,) = [e for e in events if e["event"] == "summary" and e["command"] == "scan"]
    assert summary["tagged"] == 4 and summary["failed"] == 0
    assert events[-1] == {**events[-1], "event": "summary", "command": "write", "changed": 4}
    from phototag.cli import console

    log.write_bytes(b"x" * (console.LOG_MAX_BYTES + 1))
    runner.invoke(app, ["scan", str(library / "2024"), "-q", "--log-file", str(log), *index])
    assert (log.parent / "phototag.log.1").exists() and log.stat().st_size < 10_000


def test_doctor_checks_the_lock_and_writable_paths(tmp_path: Path) -> None:
    index = tmp_path / "i.sqlite"
    runner = CliRunner()
    runner.invoke(app, ["forget", str(tmp_path), "--index", str(index)])
    lock = IndexLock(index, "scan").acquire()
    try:
        r = runner.invoke(app, ["doctor", "--index", str(index), "--json"])
    finally:
        lock.release()
    report = json.loads(r.stdout)
    assert report["sections"]["index"]["lock"].startswith("held by phototag scan")
    assert report["sections"]["paths"]["index folder"].endswith("writable")
