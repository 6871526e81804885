"""Installing, removing and verifying backbones in the user's weights folder.

A backbone arrives as a folder, an archive (.tar.gz, .tgz, .tar, .zip) or an https URL to
an archive. Whatever the source, it is checked file by file against its own manifest's
sha256 (and, given ``sha256``, the archive against that), copied into a hidden staging
folder beside the target, checked again there, and only then renamed into place: a kill
at any moment leaves the old backbone or the new one, never half of one. Downloads go to
``<cache>/downloads`` as ``.part`` files and resume where they stopped.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..config import cache_dir, user_weights_dir
from ..errors import ModelError
from .manifest import load_backbone_manifest, read_toml, sha256_file, verify_files

Progress = Callable[[int, int | None], None]  # bytes so far, total (None: unknown)

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Installed:
    name: str
    folder: Path
    replaced: bool  # an older copy of the same backbone was there


@dataclass(frozen=True, slots=True)
class KnownBackbone:
    """A backbone phototag knows how to get (``weights/known.toml``)."""

    name: str
    description: str
    arch: str
    pretrained: str
    url: str | None  # an archive to download; None: built here by 'models export clip'
    sha256: str | None
    downloads: str  # where OpenCLIP fetches the weights from, for the listing


def known_backbones(path: Path | None = None) -> dict[str, KnownBackbone]:
    from ..config import weights_dirs

    files = [path] if path else [d / "known.toml" for d in weights_dirs()]
    out: dict[str, KnownBackbone] = {}
    for f in files:
        if not f.is_file():
            continue
        for name, t in read_toml(f).items():
            if isinstance(t, dict) and name not in out:
                out[name] = KnownBackbone(
                    name, str(t.get("description", "")), str(t.get("arch", "")),
                    str(t.get("pretrained", "")), t.get("url"), t.get("sha256"),
                    str(t.get("downloads", "")),
                )  # fmt: skip
    return out


# -- download ----------------------------------------------------------------------------


def download(url: str, *, sha256: str | None = None, progress: Progress | None = None) -> Path:
    """Fetch ``url`` (https only) into the download cache, resuming a partial download."""
    import http.client
    import ssl
    import urllib.error
    import urllib.request

    parts = urlsplit(url)
    if parts.scheme != "https":
        raise ModelError(
            f"refusing {parts.scheme or 'a'} URL: models are downloaded over https only"
        )
    folder = cache_dir() / "downloads"
    folder.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    suffix = next((s for s in ARCHIVE_SUFFIXES if parts.path.lower().endswith(s)), "")
    final = folder / f"{key}{suffix}"
    part = folder / f"{key}{suffix}.part"
    if final.exists() and (sha256 is None or sha256_file(final) == sha256):
        return final
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "phototag"}
    if have:
        headers["Range"] = f"bytes={have}-"
    host = parts.hostname or url
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=60, context=ssl.create_default_context())
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: the .part is complete
            response = None
        else:
            raise ModelError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ModelError(
            f"cannot reach {host} ({reason}): offline, or blocked by a proxy or firewall? "
            + ("The partial download is kept and resumes next time." if have else "")
        ) from None
    total: int | None = have or None
    if response is not None:
        with response:
            resumed = response.status == 206
            length = response.headers.get("Content-Length")
            total = (have if resumed else 0) + int(length) if length else None
            done = have if resumed else 0
            try:
                with part.open("ab" if resumed else "wb") as f:
                    while chunk := response.read(CHUNK):
                        f.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(done, total)
            except (OSError, http.client.HTTPException) as e:
                raise ModelError(
                    f"download of {url} was interrupted ({type(e).__name__}: {e}); "
                    f"{done} bytes are kept: run the same command again to resume"
                ) from None
    size = part.stat().st_size
    if total is not None and size != total:
        raise ModelError(
            f"download of {url} stopped at {size} of {total} bytes; run again to resume"
        )
    if sha256 is not None and sha256_file(part) != sha256.lower():
        part.unlink()
        raise ModelError(f"{url} does not match the expected sha256: deleted, not installed")
    os.replace(part, final)
    return final


# -- install -----------------------------------------------------------------------------


def _extract(archive: Path, into: Path) -> Path:
    """Unpack safely (no absolute paths, no '..', no links out, no devices); the folder that
    holds ``backbone.toml``."""
    import tarfile
    import zipfile

    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    p = Path(info.filename)
                    if p.is_absolute() or ".." in p.parts:
                        raise ModelError(f"{archive}: unsafe path in archive: {info.filename!r}")
                z.extractall(into)
        else:
            with tarfile.open(archive) as t:
                t.extractall(into, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise ModelError(f"{archive} is not a readable model archive: {e}") from None
    if (into / "backbone.toml").is_file():
        return into
    found = [p.parent for p in into.glob("*/backbone.toml")]
    if len(found) != 1:
        raise ModelError(f"{archive} does not hold exactly one backbone (backbone.toml)")
    return found[0]


def _fsync_tree(folder: Path) -> None:
    for p in folder.iterdir():
        with p.open("rb") as f:
            os.fsync(f.fileno())
    _fsync_dir(folder)


_STALE = (".install-", ".old-", ".remove-", ".export-", ".link-")


def clear_stale(dest: Path, keep: Path | None = None) -> None:
    """Remove what killed installs, exports and removals left behind: staging folders,
    temporary links, and versions no backbone link points to -- except the folder that
    holds ``keep`` (the source being installed)."""
    if not dest.is_dir():
        return
    live = {os.readlink(p) for p in dest.iterdir() if p.is_symlink()}
    for p in dest.iterdir():
        if keep is not None and keep.resolve().is_relative_to(p.resolve()):
            continue
        if p.is_symlink() and p.name.startswith(_STALE):
            p.unlink(missing_ok=True)
        elif (
            p.is_dir()
            and not p.is_symlink()
            and (p.name.startswith(_STALE) or (p.name.startswith(".v-") and p.name not in live))
        ):
            shutil.rmtree(p, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def install_folder(source: Path, dest: Path | None = None) -> Installed:
    """Copy a backbone folder into ``dest`` (the user's weights folder), checked and atomic.

    The files go to a hidden version folder (``.v-NAME-XXXX``); ``dest/NAME`` is a symlink
    to it, replaced by ``rename(2)`` in one step, so every moment shows the old backbone or
    the new one. Where symlinks cannot be made, the old folder is moved aside first (a kill
    between the two renames leaves no backbone, and the next install cleans up).
    """
    import secrets

    dest = dest or user_weights_dir()
    m = load_backbone_manifest(source)
    if not _SAFE_NAME.fullmatch(m.name):
        raise ModelError(f"{source}: backbone name {m.name!r} cannot be a folder name")
    verify_files(m)
    dest.mkdir(parents=True, exist_ok=True)
    clear_stale(dest, keep=source)
    stage = Path(tempfile.mkdtemp(prefix=f".install-{m.name}-", dir=dest))
    try:
        names = [f.name for f in m.files] + ["backbone.toml"]
        license_file = read_toml(source / "backbone.toml").get("license_file")
        ok = isinstance(license_file, str) and _SAFE_NAME.fullmatch(license_file)
        if ok and (source / str(license_file)).is_file():
            names.append(str(license_file))
        for n in names:
            shutil.copyfile(source / n, stage / n)
        verify_files(load_backbone_manifest(stage))  # the copy, not only the source
        _fsync_tree(stage)
        final = dest / m.name
        replaced = final.exists() or final.is_symlink()
        previous = os.readlink(final) if final.is_symlink() else None
        version = dest / f".v-{m.name}-{secrets.token_hex(4)}"
        os.replace(stage, version)
        link = dest / f".link-{m.name}-{secrets.token_hex(4)}"
        try:
            os.symlink(version.name, link)
        except OSError:  # no symlinks here (some Windows setups): two renames
            if replaced:
                aside = Path(tempfile.mkdtemp(prefix=f".old-{m.name}-", dir=dest))
                os.replace(final, aside / "backbone")
            os.replace(version, final)
            _fsync_dir(dest)
            clear_stale(dest)
            return Installed(m.name, final, replaced)
        if final.is_dir() and not final.is_symlink():  # a folder from an older phototag
            aside = Path(tempfile.mkdtemp(prefix=f".old-{m.name}-", dir=dest))
            os.replace(final, aside / "backbone")
        os.replace(link, final)  # the atomic step
        _fsync_dir(dest)
        if previous and "/" not in previous:
            shutil.rmtree(dest / previous, ignore_errors=True)
        clear_stale(dest)
        return Installed(m.name, final, replaced)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


def install(
    source: str,
    dest: Path | None = None,
    *,
    sha256: str | None = None,
    progress: Progress | None = None,
) -> Installed:
    """Install from an https URL, a local archive or a local folder."""
    dest = dest or user_weights_dir()
    if "://" in source:
        archive = download(source, sha256=sha256, progress=progress)
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            return install_folder(path, dest)
        if not path.is_file():
            raise ModelError(f"no such folder or archive: {source}")
        if sha256 is not None and sha256_file(path) != sha256.lower():
            raise ModelError(f"{path} does not match the expected sha256: not installed")
        archive = path
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".install-", dir=dest) as tmp:
        try:
            return install_folder(_extract(archive, Path(tmp)), dest)
        except ModelError:
            if archive.parent == cache_dir() / "downloads":
                archive.unlink(missing_ok=True)  # a bad download is fetched afresh next time
            raise


def remove(name: str, dest: Path | None = None) -> Path:
    """Delete an installed backbone from the user's weights folder (never a shipped one)."""
    dest = dest or user_weights_dir()
    folder = dest / name
    if not _SAFE_NAME.fullmatch(name) or not (folder / "backbone.toml").is_file():
        raise ModelError(f"no backbone {name!r} is installed in {dest}")
    if read_toml(folder / "backbone.toml").get("name") != name:
        raise ModelError(f"{folder} holds another backbone than {name!r}")
    if folder.is_symlink():
        target = os.readlink(folder)
        folder.unlink()
        if "/" not in target:
            shutil.rmtree(dest / target, ignore_errors=True)
        return folder
    trash = Path(tempfile.mkdtemp(prefix=f".remove-{name}-", dir=dest))
    os.replace(folder, trash / "backbone")
    shutil.rmtree(trash, ignore_errors=True)
    return folder
