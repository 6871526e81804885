"""The album's ``index.html``: a static contact sheet that opens from the file system.

One page, no external resources: thumbnails live in the album's own ``.thumbs/`` folder
(made once, upright), each with its tags and scores, capture date and a link to the
original. A few lines of inline script mark thumbnails that fail to load (a deleted
original's thumbnail still shows; a missing thumbnail is flagged).
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import os
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..config import DEFAULT_MAX_PIXELS
from ..errors import ImageError
from ..fsutil import atomic_write, atomic_writer
from ..media.imaging import decode
from ..tagpath import leaf
from .albums import printable
from .query import Match

THUMBS = ".thumbs"
THUMB_SIZE = 320
FACE_COLOUR = (255, 214, 0)

CSS = """
body{font:14px system-ui,sans-serif;margin:1.5rem;background:#fafafa;color:#222}
h1{font-size:1.3rem;margin:0 0 .2rem}p.q{color:#666;margin:0 0 1rem}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:1rem}
figure{margin:0;background:#fff;border:1px solid #ddd;border-radius:6px;overflow:hidden}
figure img{display:block;width:100%;height:200px;object-fit:cover;background:#eee}
figure img.broken{outline:3px solid #c00}
figcaption{padding:.5rem .6rem;font-size:12px}
.d{color:#666}.t{display:inline-block;background:#eef4ea;border-radius:3px;padding:0 .3rem;margin:.15rem .2rem 0 0}
"""

SCRIPT = """
addEventListener('load',function(){var n=0;document.querySelectorAll('main img').forEach(function(i){
if(i.complete&&i.naturalWidth>0){i.dataset.state='ok';n++}else{i.dataset.state='broken';i.classList.add('broken')}});
document.body.dataset.loaded=n});
"""


def file_url(path: Path) -> str:
    return "file://" + urllib.parse.quote(os.fsencode(os.path.abspath(path)))


#: A face drawn on a thumbnail: the person's name (None: unnamed) and the box, x1, y1, x2, y2
#: as fractions of the upright photo (phototag.index.faces).
FaceBox = tuple[str | None, tuple[float, float, float, float]]


def make_thumbnail(source: Path, dest: Path, faces: Sequence[FaceBox] = ()) -> None:
    """A JPEG thumbnail of ``source``, upright, long side THUMB_SIZE, with ``faces`` drawn as
    boxes (named ones labelled). A video's thumbnail is one of the frames chosen to tag it, a
    RAW's its embedded preview (or the sensor data). Raises OSError/ImageError."""
    from ..media.kinds import FileKind, classify

    kind = classify(source.name)
    if kind is FileKind.VIDEO:
        from ..media.video import decode_video

        clip = decode_video(source, min_side=THUMB_SIZE, max_pixels=DEFAULT_MAX_PIXELS)
        im = clip.frames[0].convert("RGB")
    elif kind is FileKind.RAW:
        from ..media.raw import decode_raw

        raw = decode_raw(source.read_bytes(), min_side=THUMB_SIZE, max_pixels=DEFAULT_MAX_PIXELS)
        im = raw.image.copy()
    else:
        photo = decode(source.read_bytes(), min_side=THUMB_SIZE, max_pixels=DEFAULT_MAX_PIXELS)
        im = photo.image.copy()
    im.thumbnail((THUMB_SIZE, THUMB_SIZE))
    if faces:
        from PIL import ImageDraw

        draw = ImageDraw.Draw(im)
        w, h = im.size
        for name, (x1, y1, x2, y2) in faces:
            rect = (round(x1 * w), round(y1 * h), round(x2 * w), round(y2 * h))
            draw.rectangle(rect, outline=FACE_COLOUR, width=2)
            if name:
                draw.text((rect[0] + 2, rect[3] + 2), name, fill=FACE_COLOUR)
    with atomic_writer(dest) as f:
        im.save(f, "JPEG", quality=85)


def _thumb_name(entry: str, faces: Sequence[FaceBox]) -> str:
    """The thumbnail's file name: with faces, a digest of them, so a renamed person or a changed
    face makes a new thumbnail rather than showing a stale one."""
    if not faces:
        return f"{entry}.jpg"
    digest = hashlib.sha256(repr(sorted(faces, key=repr)).encode()).hexdigest()[:10]
    return f"{entry}.{digest}.jpg"


def write_contact_sheet(
    folder: Path,
    entries: Sequence[tuple[str, Match]],
    title: str,
    progress: Callable[[int, int], None] | None = None,
    faces: Mapping[int, Sequence[FaceBox]] | None = None,
) -> Path:
    """Write ``folder/index.html`` and the thumbnails it shows; ``progress(done, total)`` is
    told after each thumbnail (made or found); ``faces`` (photo id -> faces) are drawn on the
    thumbnails. Raises OSError if the page cannot be written."""
    faces = faces or {}
    thumbs = folder / THUMBS
    thumbs.mkdir(exist_ok=True)
    names = {entry: _thumb_name(entry, faces.get(m.photo_id, ())) for entry, m in entries}
    wanted = set(names.values())
    for old in thumbs.iterdir():
        if old.name not in wanted:
            old.unlink()
    figures = []
    for done, (entry, m) in enumerate(entries, 1):
        if progress is not None:
            progress(done - 1, len(entries))
        thumb = thumbs / names[entry]
        if not thumb.exists():
            with contextlib.suppress(OSError, ImageError):  # the page flags it; the album is fine
                make_thumbnail(m.path, thumb, faces.get(m.photo_id, ()))
        tags = "".join(
            f'<span class="t">{html.escape(leaf(p))} {s:.2f}</span>' for _, p, s in m.tags
        )
        date = m.when.strftime("%Y-%m-%d %H:%M") + ("" if m.taken_at else " (file time)")
        figures.append(
            f'<figure><a href="{html.escape(file_url(m.path))}" title="{html.escape(printable(os.fsdecode(m.path)))}">'
            f'<img src="{html.escape(urllib.parse.quote(f"{THUMBS}/{names[entry]}"))}" alt="{html.escape(entry)}"></a>'
            f'<figcaption><div class="d">{html.escape(date)}</div><div>{html.escape(printable(m.path.name))}</div>{tags}</figcaption></figure>'
        )
    page = (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>"
        f"<h1>{html.escape(title)}</h1><p class=q>{len(entries)} photos, made by phototag</p>\n"
        "<main>\n" + "\n".join(figures) + "\n</main>\n"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
    if progress is not None:
        progress(len(entries), len(entries))
    out = folder / "index.html"
    atomic_write(out, page.encode("utf-8"))
    return out
