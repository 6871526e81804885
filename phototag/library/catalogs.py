"""Item catalogues: images with fields (a shop's products), found by similarity to a photo.

The source service's similarity search let a shop register catalogue images with their tags
and find the items most like a customer's photo. A catalogue is its own SQLite file under
:func:`catalogs_dir`, apart from the photo library's index: registering products never adds
photos to a user's library, and forgetting a catalogue is deleting one file.

Ranking combines the two signals the service used, each in [0, 1]::

    score = weight * max(cosine(embedding), 0) + (1 - weight) * tag_similarity(tags)

``cosine`` is between the backbone's embeddings (what the item *looks* like) and
``tag_similarity`` the weighted Jaccard overlap of the recognizers' tags (what it *is*:
two red dresses photographed differently share tags). ``weight`` defaults to 0.7: the
embedding decides among items of the same kind, the tags keep an item of another kind that
happens to look alike (same colours, same background) from ranking first.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, IndexFileError

SCHEMA_VERSION = 1
DEFAULT_WEIGHT = 0.7
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def catalogs_dir() -> Path:
    """``$PHOTOTAG_CATALOGS`` if set, else ``catalogs`` in the user's data directory."""
    env = os.environ.get("PHOTOTAG_CATALOGS")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path("phototag", appauthor=False) / "catalogs"


def check_name(name: str) -> str:
    """A catalogue name is a file name: letters, digits, '.', '_', '-' (64 at most)."""
    if not _NAME.match(name) or name.endswith(".sqlite"):
        raise ConfigError(
            f"{name!r} is not a catalogue name: use letters, digits, '.', '_' and '-' (64 at most)"
        )
    return name


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """One registered item: its key (unique in the catalogue), image file name and fields."""

    key: str
    image: str
    fields: dict[str, str]
    tags: dict[str, float]  # tag path -> score, as the recognizers gave them

    def as_json(self) -> dict[str, object]:
        return {"key": self.key, "image": self.image, "fields": self.fields,
                "tags": {k: round(v, 4) for k, v in self.tags.items()}}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CatalogMatch:
    item: CatalogItem
    score: float  # the combined score (module docstring)
    embedding_score: float  # cosine similarity of the embeddings
    tag_score: float  # tag_similarity of the tags

    def as_json(self) -> dict[str, object]:
        return {**self.item.as_json(), "score": round(self.score, 4),
                "embedding_score": round(self.embedding_score, 4),
                "tag_score": round(self.tag_score, 4)}  # fmt: skip


def read_fields(csv_path: Path) -> dict[str, dict[str, str]]:
    """Item fields from a CSV file with a header: the column ``image`` (the image's file
    name, as given to ``catalog add``) or ``key`` names the item, the other columns are its
    fields (a URL, a price, ...). Raises ConfigError for an unreadable or headless file."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            keycol = "image" if "image" in header else "key" if "key" in header else None
            if keycol is None:
                raise ConfigError(f"{csv_path}: needs a header with an 'image' or 'key' column")
            out: dict[str, dict[str, str]] = {}
            for row in reader:
                k = (row.get(keycol) or "").strip()
                if k:
                    out[k] = {c: (v or "") for c, v in row.items() if c and c != keycol}
            return out
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"cannot read {csv_path}: {e}") from None


class ItemCatalog:
    """A catalogue file. Use as a context manager."""

    def __init__(self, conn: sqlite3.Connection, name: str, path: Path) -> None:
        self.conn = conn
        self.name = name
        self.path = path

    @classmethod
    def open(cls, name: str, *, create: bool = False, folder: Path | None = None) -> ItemCatalog:
        """Open catalogue ``name`` (raises ConfigError if it does not exist and not ``create``)."""
        check_name(name)
        folder = folder or catalogs_dir()
        path = folder / f"{name}.sqlite"
        if not create and not path.exists():
            raise ConfigError(
                f"no catalogue named {name!r}: 'phototag catalog add {name} ...' makes one"
            )
        try:
            folder.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.executescript(
                """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                   CREATE TABLE IF NOT EXISTS items (
                     id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, image TEXT NOT NULL,
                     fields TEXT NOT NULL, tags TEXT NOT NULL,
                     backbone TEXT NOT NULL, embedding BLOB NOT NULL);"""
            )
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
            elif int(row[0]) > SCHEMA_VERSION:
                conn.close()
                raise IndexFileError(f"{path} was made by a newer phototag (schema {row[0]})")
        except (sqlite3.Error, OSError, ValueError) as e:
            raise IndexFileError(f"{path} is not a usable catalogue: {e}") from None
        return cls(conn, name, path)

    def __enter__(self) -> ItemCatalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def add(
        self, key: str, image: str, fields: Mapping[str, str], tags: Mapping[str, float],
        backbone: str, embedding: np.ndarray,
    ) -> bool:  # fmt: skip
        """Register or replace the item ``key``. Returns True when it was new."""
        new = self.conn.execute("SELECT 1 FROM items WHERE key = ?", (key,)).fetchone() is None
        self.conn.execute(
            """INSERT INTO items (key, image, fields, tags, backbone, embedding)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT(key) DO UPDATE SET image = excluded.image, fields = excluded.fields,
                 tags = excluded.tags, backbone = excluded.backbone, embedding = excluded.embedding""",
            (key, image, json.dumps(dict(fields), ensure_ascii=False),
             json.dumps(dict(tags), ensure_ascii=False), backbone,
             np.asarray(embedding, dtype="<f4").tobytes()),
        )  # fmt: skip
        return new

    def remove(self, keys: Iterable[str]) -> int:
        return sum(
            self.conn.execute("DELETE FROM items WHERE key = ?", (k,)).rowcount for k in keys
        )

    def items(self) -> list[CatalogItem]:
        return [
            CatalogItem(k, img, json.loads(f), json.loads(t))
            for k, img, f, t in self.conn.execute(
                "SELECT key, image, fields, tags FROM items ORDER BY key"
            )
        ]

    def recognizers(self) -> list[str]:
        """The recognizers the items were tagged with (queries must use the same)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'recognizers'").fetchone()
        return list(json.loads(row[0])) if row else []

    def set_recognizers(self, names: Sequence[str]) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('recognizers', ?)", (json.dumps(list(names)),)
        )

    def backbones(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT backbone FROM items ORDER BY 1")]

    def similar(
        self,
        embedding: np.ndarray,
        tags: Mapping[str, float],
        backbone: str,
        *,
        n: int = 10,
        weight: float = DEFAULT_WEIGHT,
    ) -> list[CatalogMatch]:
        """The ``n`` items ranked by the combined score (module docstring), best first."""
        from .search import tag_similarity

        if not 0.0 <= weight <= 1.0:
            raise ConfigError("the embedding weight is between 0 and 1")
        rows = self.conn.execute(
            "SELECT key, image, fields, tags, embedding FROM items WHERE backbone = ?",
            (backbone,),
        ).fetchall()
        if not rows:
            return []
        vecs = np.stack([np.frombuffer(r[4], dtype="<f4") for r in rows])
        q = np.asarray(embedding, dtype=np.float32).reshape(-1)
        if vecs.shape[1] != q.shape[0]:
            raise ConfigError(
                f"catalogue {self.name} holds {vecs.shape[1]}-d embeddings, not {q.shape[0]}-d"
            )
        cos = (vecs @ q) / np.maximum(np.linalg.norm(vecs, axis=1) * np.linalg.norm(q), 1e-12)
        matches = []
        for (key, image, f, t, _), c in zip(rows, cos.tolist(), strict=True):
            item_tags = json.loads(t)
            ts = tag_similarity(tags, item_tags)
            score = weight * max(c, 0.0) + (1.0 - weight) * ts
            matches.append(
                CatalogMatch(CatalogItem(key, image, json.loads(f), item_tags), score, c, ts)
            )
        matches.sort(key=lambda m: (-m.score, m.item.key))
        return matches[:n]


def list_catalogs(folder: Path | None = None) -> list[str]:
    folder = folder or catalogs_dir()
    try:
        return sorted(p.stem for p in folder.glob("*.sqlite") if _NAME.match(p.stem))
    except OSError:
        return []


@dataclass(frozen=True, slots=True)
class Registered:
    image: Path
    key: str
    new: bool


@dataclass(frozen=True, slots=True)
class NotRegistered:
    image: Path
    reason: str


def register(
    catalog: ItemCatalog,
    images: Sequence[Path],
    *,
    fields: Mapping[str, Mapping[str, str]] | None = None,
    recognizers: Sequence[str] | None = None,
) -> Iterator[Registered | NotRegistered]:
    """Tag and embed ``images`` and register each as an item keyed by its file name, with
    its row of ``fields`` (keyed by file name, as :func:`read_fields` gives). A catalogue
    keeps the recognizers it was first filled with, so every item is comparable."""
    from ..tagging.classify import Classification, classify
    from .search import default_backbone

    fields = fields or {}
    names = catalog.recognizers() or (list(recognizers) if recognizers else None)
    results = classify(list(images), recognizers=names)
    first = True
    for res in results:
        if not isinstance(res, Classification):
            yield NotRegistered(res.path, res.reason)
            continue
        if first and not catalog.recognizers():
            catalog.set_recognizers(list(res.candidates))
        first = False
        embeddings = {b: e for b, e in res.embeddings.items() if e.size}
        if not embeddings:
            yield NotRegistered(res.path, "the models gave no embedding for it")
            continue
        backbone = default_backbone(embeddings)
        key = res.path.name
        tags = {c.path: c.score for cands in res.candidates.values() for c in cands}
        new = catalog.add(key, key, fields.get(key, {}), tags, backbone, embeddings[backbone])
        yield Registered(res.path, key, new)


def similar_items(
    catalog: ItemCatalog, image: Path, *, n: int = 10, weight: float = DEFAULT_WEIGHT
) -> list[CatalogMatch]:
    """The catalogue's items most like the photo ``image`` (run through the catalogue's
    recognizers now). Raises ImageError when the photo cannot be read."""
    from ..errors import ImageError
    from ..tagging.classify import Classification, classify

    backbones = catalog.backbones()
    if not backbones:
        return []
    (res,) = list(classify([image], recognizers=catalog.recognizers() or None))
    if not isinstance(res, Classification):
        raise ImageError(f"{image}: {res.reason}")
    tags = {c.path: c.score for cands in res.candidates.values() for c in cands}
    return catalog.similar(res.embeddings[backbones[0]], tags, backbones[0], n=n, weight=weight)
