"""Installing backbones: folders, archives, a real HTTPS server on localhost; damaged,
hostile and interrupted sources; kills during an install; remove and verify."""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import conftest
import pytest
from hubfake import FakeHub
from waiting import changed_since, kill, wait_until, written_since

from phototag.cli.console import ExitCode
from phototag.errors import ModelError
from phototag.models.catalog import Catalog
from phototag.models.install import download, install, install_folder, remove
from phototag.models.manifest import load_backbone_manifest, verify_files


def invoke(*args: str | Path) -> tuple[int, str]:
    code, out, err = conftest.invoke(*args)
    return code, out + err


def tar_of(folder: Path, path: Path) -> Path:
    with tarfile.open(path, "w:gz") as t:
        t.add(folder, arcname=folder.name)
    return path


def assert_only_installed(dest: Path, name: str) -> None:
    """``dest`` holds the link ``name`` and the one version it points to, nothing else."""
    link = dest / name
    assert link.is_symlink()
    assert sorted(p.name for p in dest.iterdir()) == sorted([name, os.readlink(link)])


@pytest.fixture
def source(tiny_clip: Path) -> Path:
    return tiny_clip / "clip-tiny"


def test_install_from_a_folder_a_tarball_and_a_zip(source: Path, tmp_path: Path) -> None:
    for i, src in enumerate([str(source), str(tar_of(source, tmp_path / "b.tar.gz"))]):
        dest = tmp_path / f"w{i}"
        done = install(src, dest)
        assert done.name == "clip-tiny" and not done.replaced
        verify_files(load_backbone_manifest(done.folder))
        assert Catalog.discover([dest]).kinds == {"clip-tiny": "zero-shot"}
        assert_only_installed(dest, "clip-tiny")
    z = tmp_path / "b.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in source.iterdir():
            zf.write(f, f"clip-tiny/{f.name}")
    assert install(str(z), tmp_path / "w2").replaced is False
    first = os.readlink(tmp_path / "w2" / "clip-tiny")
    assert install(str(z), tmp_path / "w2").replaced is True  # again: replaced in one step
    assert os.readlink(tmp_path / "w2" / "clip-tiny") != first
    assert_only_installed(tmp_path / "w2", "clip-tiny")  # the old version is gone


def test_a_damaged_source_is_refused_and_the_installed_copy_kept(
    source: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "w"
    install_folder(source, dest)
    bad = tmp_path / "bad" / "clip-tiny"
    shutil.copytree(source, bad)
    data = bytearray((bad / "text.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "text.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match the sha256"):
        install_folder(bad, dest)
    verify_files(load_backbone_manifest(dest / "clip-tiny"))  # the good one is untouched
    with pytest.raises(ModelError, match="expected sha256"):
        install(str(tar_of(source, tmp_path / "x.tar.gz")), dest, sha256="0" * 64)


def test_hostile_archives_are_refused_without_writing_outside(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as t:
        info = tarfile.TarInfo("../../outside.txt")
        info.size = 4
        t.addfile(info, io.BytesIO(b"pwnd"))
        link = tarfile.TarInfo("m/backbone.toml")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(link)
    with pytest.raises(ModelError, match="not a readable model archive"):
        install(str(evil), tmp_path / "w" / "deep")
    assert not list(tmp_path.rglob("outside.txt"))
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../outside.txt", "pwnd")
    with pytest.raises(ModelError, match="unsafe path"):
        install(str(z), tmp_path / "w")
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ModelError, match="not a readable model archive"):
        install(str(junk), tmp_path / "w")
    with pytest.raises(ModelError, match="no such folder or archive"):
        install(str(tmp_path / "missing.tar.gz"), tmp_path / "w")


ARCHIVE = "clip-tiny.tar.gz"


@pytest.fixture
def https(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """The local hub (tests/hubfake.py) serving ``source`` as the plain file ARCHIVE."""
    ca = tmp_path / "ca.pem"
    server = FakeHub({}, ca)
    server.files[ARCHIVE] = tar_of(source, tmp_path / "served.tar.gz").read_bytes()
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # trust the test CA, as a company CA would be
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")
    yield server
    server.close()


def test_https_download_resumes_after_an_interruption_and_installs(
    https: FakeHub, tmp_path: Path
) -> None:
    https.cut.add(ARCHIVE)
    payload, url = https.files[ARCHIVE], https.url(ARCHIVE)
    seen: list[tuple[int, int | None]] = []
    with pytest.raises(ModelError, match=r"interrupted|stopped at"):
        download(url, progress=lambda d, t: seen.append((d, t)))
    partial = list((Path(os.environ["PHOTOTAG_CACHE"]) / "downloads").glob("*.part"))
    kept = partial[0].stat().st_size if len(partial) == 1 else -1
    assert 0 < kept < len(payload)
    sha = hashlib.sha256(payload).hexdigest()
    done = install(url, tmp_path / "w", sha256=sha, progress=lambda d, t: seen.append((d, t)))
    assert https.downloads(ARCHIVE) == [None, f"bytes={kept}-"]  # the second request resumed
    assert seen[-1] == (len(payload), len(payload))
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(seen) if a[1] == b[1])
    verify_files(load_backbone_manifest(done.folder))
    assert not list((Path(os.environ["PHOTOTAG_CACHE"]) / "downloads").glob("*.part"))


def test_a_bad_download_is_not_kept_for_the_next_try(https: FakeHub, tmp_path: Path) -> None:
    good = https.files[ARCHIVE]
    https.files[ARCHIVE] = b"<html>captive portal</html>"
    with pytest.raises(ModelError, match="not a readable model archive"):
        install(https.url(ARCHIVE), tmp_path / "w")
    https.files[ARCHIVE] = good  # the next try downloads again instead of reusing the bad file
    assert install(https.url(ARCHIVE), tmp_path / "w").name == "clip-tiny"
    assert https.downloads(ARCHIVE) == [None, None]


def test_download_failures_say_what_happened(https: FakeHub, tmp_path: Path) -> None:
    url = https.url(ARCHIVE)
    with pytest.raises(ModelError, match="https only"):
        download(url.replace("https://", "http://"))
    with pytest.raises(ModelError, match=r"cannot reach 127\.0\.0\.1 .*offline"):
        download("https://127.0.0.1:9/model.tar.gz")  # the discard port: nothing listens
    with pytest.raises(ModelError, match="HTTP 404"):
        download(url.replace("clip-tiny", "missing"))


def test_cli_install_remove_verify(source: Path, tmp_path: Path) -> None:
    code, out = invoke("models", "install", source)
    assert code == ExitCode.OK, out
    assert "installed clip-tiny" in out
    code, out = invoke("models", "verify", "clip-tiny")
    assert code == ExitCode.OK and "clip-tiny: ok" in out
    installed = Catalog.discover().backbones["clip-tiny"]
    (installed / "model.onnx").write_bytes(b"tampered")
    code, out = invoke("models", "verify")
    assert code == ExitCode.ERROR and "clip-tiny" in out and "efficientnet-lite0: ok" in out
    code, out = invoke("models", "remove", "clip-tiny")
    assert code == ExitCode.OK, out
    assert "clip-tiny" not in Catalog.discover().backbones
    code, out = invoke("models", "remove", "efficientnet-lite0")  # shipped: not removable
    assert code == ExitCode.ERROR and "no backbone 'efficientnet-lite0' is installed in" in out
    with pytest.raises(ModelError):
        remove("../escape")


@pytest.mark.slow
def test_a_kill_at_any_moment_of_an_install_leaves_the_old_or_the_new(
    https: FakeHub, source: Path, tmp_path: Path
) -> None:
    """SIGKILL 'install URL' at points of its progress seen from outside: twice in the middle
    of the download (the hub holds the rest back; the partial file on disk has grown), then
    with half the backbone extracted, half of it staged, and the backbone replaced. Afterwards
    the backbone found is always a whole one (the old or the new), the partial download
    resumes, and the next install clears what the kills left."""
    dest = tmp_path / "w"
    old = tmp_path / "old" / "clip-tiny"
    shutil.copytree(source, old)
    toml = (old / "backbone.toml").read_text()
    (old / "backbone.toml").write_text(toml.replace("random weights,", "OLD random weights,"))
    install_folder(old, dest)
    texts = {
        (old / "backbone.toml").read_text(): "old",
        (source / "backbone.toml").read_text(): "new",
    }
    payload = https.files[ARCHIVE]
    size = sum(f.stat().st_size for f in source.iterdir())  # the backbone, extracted or staged
    code = (
        "import sys; from pathlib import Path; from phototag.models.install import install;"
        "install(sys.argv[1], Path(sys.argv[2]), sha256=sys.argv[3])"
    )
    sha = hashlib.sha256(payload).hexdigest()
    cmd = [sys.executable, "-c", code, https.url(ARCHIVE), str(dest), sha]
    downloads = Path(os.environ["PHOTOTAG_CACHE"]) / "downloads"

    def downloaded() -> int:
        """Bytes of the partial download on disk."""
        try:
            return sum(p.stat().st_size for p in downloads.glob("*.part"))
        except FileNotFoundError:
            return 0

    def left() -> str:
        """What a kill left: the backbone found is whole; "old" or "new"."""
        found = Catalog.discover([dest])
        assert list(found.backbones) == ["clip-tiny"]
        verify_files(found.backbone("clip-tiny"))
        return texts[(dest / "clip-tiny" / "backbone.toml").read_text()]

    for share, held in ((0.25, 0.5), (0.6, 0.8)):
        have = downloaded()
        https.hold(int(held * len(payload)) - have)  # the child cannot get past this
        p = subprocess.Popen(cmd)
        wait_until(lambda s=share: https.holding.is_set() and downloaded() >= s * len(payload),
                   f"{share:.0%} of the archive downloaded", p)  # fmt: skip
        kill(p)
        https.drop()
        assert left() == "old"
        assert https.downloads(ARCHIVE)[-1] == (f"bytes={have}-" if have else None)  # resumed
    # With the archive downloaded: by the bytes written into the weights folder (extracted,
    # then staged), then by the backbone's entry (the link) being replaced.
    final = dest / "clip-tiny"
    for what, reached in (("half of the backbone extracted", 0.5 * size),
                          ("half of the backbone staged", 1.5 * size),
                          ("the backbone replaced", math.inf)):  # fmt: skip
        since = time.time_ns()

        def progress(since: int = since) -> float:
            if not os.path.lexists(final) or changed_since(final, since):  # however it is done
                return math.inf
            return written_since(dest, since)

        p = subprocess.Popen(cmd)
        wait_until(lambda r=reached, f=progress: f() >= r, what, p)
        kill(p)
        landed = left()  # whole: old or new (a kill can land after the switch)
        if reached == math.inf:
            assert landed == "new"
    install(https.url(ARCHIVE), dest, sha256=sha)
    assert left() == "new"
    assert_only_installed(dest, "clip-tiny")
    assert not list(downloads.glob("*.part"))


@pytest.mark.slow  # over 10 s
def test_installing_a_known_model_offline_says_why_and_installs_nothing(tmp_path: Path) -> None:
    """The real path of 'models install clip-vit-b-32-openai' with the Hub unreachable
    (HF_HUB_OFFLINE: the Hugging Face client's own switch, so no network is tried)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}  # empty cache
    # A process of its own: huggingface_hub reads HF_HUB_OFFLINE when it is first imported.
    r = subprocess.run([sys.executable, "-m", "phototag", "models", "install", "clip-vit-b-32-openai"],
                       env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == ExitCode.ERROR, r.stderr
    text = " ".join(r.stderr.split())
    assert "could not build ViT-B-32" in text and "without internet access" in text
    assert "clip-vit-b-32-openai" not in Catalog.discover().backbones
    weights = Path(os.environ["XDG_DATA_HOME"]) / "phototag" / "weights"
    assert not weights.exists() or not any(weights.iterdir())  # no staging folder left


def test_a_folder_put_there_by_hand_is_replaced_and_symlinkless_systems_still_install(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "w"
    shutil.copytree(source, dest / "clip-tiny")  # a user copied the folder in by hand
    assert install_folder(source, dest).replaced
    assert_only_installed(dest, "clip-tiny")

    def no_symlinks(*args: object, **kwargs: object) -> None:
        raise OSError("symbolic links are not supported here")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    other = tmp_path / "w2"
    assert not install_folder(source, other).replaced
    assert install_folder(source, other).replaced
    assert sorted(p.name for p in other.iterdir()) == ["clip-tiny"]
    assert not (other / "clip-tiny").is_symlink()
    verify_files(load_backbone_manifest(other / "clip-tiny"))
    remove("clip-tiny", other)
    assert not list(other.iterdir())
