"""Embeddings and detections as stored in SQLite (the source of truth; the searchable memory-mapped copy is vectors.py).

A mixin of :class:`~phototag.index.store.Index`: methods over its connection."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .paths import chunks, encode_path, under_clause
from .tables import Tables


class EmbeddingTables(Tables):
    def set_embedding(
        self, photo_id: int, backbone: str, fingerprint: str, vector: np.ndarray
    ) -> None:
        blob = np.asarray(vector, dtype="<f2").tobytes()
        self.conn.execute(
            "INSERT OR REPLACE INTO embeddings (photo_id, backbone, fingerprint, vector) VALUES (?, ?, ?, ?)",
            (photo_id, backbone, fingerprint, blob),
        )

    def embedding_chunks(
        self, backbone: str, chunk: int = 8192, under: Sequence[Path] = ()
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(photo ids, float16 embeddings) in chunks of at most ``chunk`` rows, by photo id:
        memory stays bounded. ``under``: only photos at or under these folders (in SQL)."""
        if under:
            where, args = under_clause(under, "p.path")
            cur = self.conn.execute(
                "SELECT e.photo_id, e.vector FROM embeddings e JOIN photos p ON p.id = e.photo_id"
                f" WHERE e.backbone = ? AND {where} ORDER BY e.photo_id",
                [backbone, *args],
            )
        else:
            cur = self.conn.execute(
                "SELECT photo_id, vector FROM embeddings WHERE backbone = ? ORDER BY photo_id",
                (backbone,),
            )
        while rows := cur.fetchmany(chunk):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            dim = len(rows[0][1]) // 2  # 0 for a detector: the row only says it ran
            vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f2").reshape(len(rows), dim)
            yield ids, vecs

    def count_embeddings(self, backbone: str) -> int:
        return int(
            self.conn.execute(
                "SELECT COUNT(*) FROM embeddings WHERE backbone = ?", (backbone,)
            ).fetchone()[0]
        )

    def vectors_of(self, ids: Sequence[int], backbone: str) -> np.ndarray:
        """The embeddings of these photos (float32), in the order given; photos without one are left out."""
        found: dict[int, bytes] = {}
        for part in chunks([int(i) for i in ids]):
            marks = ",".join("?" * len(part))
            found.update(
                self.conn.execute(
                    f"SELECT photo_id, vector FROM embeddings WHERE backbone = ? AND photo_id IN ({marks})",
                    [backbone, *part],
                ).fetchall()
            )
        rows = [np.frombuffer(found[int(pid)], dtype="<f2") for pid in ids if int(pid) in found]
        return np.stack(rows).astype(np.float32) if rows else np.empty((0, 0), np.float32)

    def embedding(self, path: Path, backbone: str) -> np.ndarray | None:
        row = self.conn.execute(
            """SELECT e.vector FROM embeddings e JOIN photos p ON p.id = e.photo_id
               WHERE p.path = ? AND e.backbone = ?""",
            (encode_path(path), backbone),
        ).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype="<f2").astype(np.float32)

    def set_detections(
        self,
        photo_id: int,
        backbone: str,
        detections: np.ndarray,
        labels: Sequence[str],
        min_score: float = 0.1,
    ) -> None:
        """Replace a photo's boxes from ``backbone`` ((K, 6): x1, y1, x2, y2, score, class)."""
        self.conn.execute(
            "DELETE FROM detections WHERE photo_id = ? AND backbone = ?", (photo_id, backbone)
        )
        rows = [
            (photo_id, backbone, labels[int(c)] if 0 <= int(c) < len(labels) else str(int(c)), float(s),
             float(x1), float(y1), float(x2), float(y2))
            for x1, y1, x2, y2, s, c in np.asarray(detections).tolist() if s >= min_score
        ]  # fmt: skip
        self.conn.executemany("INSERT INTO detections VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)

    def detections_of(
        self, photo_id: int
    ) -> list[tuple[str, str, float, tuple[float, float, float, float]]]:
        """(backbone, label, score, box) of a photo, best first."""
        rows = self.conn.execute(
            "SELECT backbone, label, score, x1, y1, x2, y2 FROM detections WHERE photo_id = ? ORDER BY score DESC",
            (photo_id,),
        )
        return [(b, label, s, (x1, y1, x2, y2)) for b, label, s, x1, y1, x2, y2 in rows]

    def stored_detections(
        self, ids: Sequence[int], backbone: str, labels: Sequence[str]
    ) -> np.ndarray:
        """The stored boxes of these photos as a (N, K, 6) array (zero rows pad), classes by ``labels``."""
        index = {label: i for i, label in enumerate(labels)}
        boxes: dict[int, list[list[float]]] = {}
        for part in chunks([int(i) for i in ids]):
            marks = ",".join("?" * len(part))
            for pid, x1, y1, x2, y2, s, label in self.conn.execute(
                "SELECT photo_id, x1, y1, x2, y2, score, label FROM detections"
                f" WHERE backbone = ? AND photo_id IN ({marks}) ORDER BY photo_id, score DESC",
                [backbone, *part],
            ):
                boxes.setdefault(pid, []).append([x1, y1, x2, y2, s, float(index.get(label, -1))])
        per = [boxes.get(int(pid), []) for pid in ids]
        out = np.zeros((len(per), max((len(p) for p in per), default=0) or 1, 6), np.float32)
        for i, p in enumerate(per):
            if p:
                out[i, : len(p)] = p
        return out

    def detection_counts(self, min_score: float) -> dict[int, dict[str, int]]:
        """photo id -> label -> how many boxes score at least ``min_score``."""
        out: dict[int, dict[str, int]] = {}
        for pid, label, n in self.conn.execute(
            "SELECT photo_id, label, COUNT(*) FROM detections WHERE score >= ? GROUP BY photo_id, label",
            (min_score,),
        ):
            out.setdefault(pid, {})[label] = n
        return out
