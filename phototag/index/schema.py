"""The index schema and its forward migrations.

``PRAGMA user_version`` holds the schema version. :func:`ensure_schema` applies every
migration above it in one transaction, and refuses an index written by a newer phototag
rather than guessing at it.
"""

from __future__ import annotations

import sqlite3

from ..errors import IndexFileError

# Each entry upgrades the schema from version i to i + 1. Never edit a released entry:
# append a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    -- One row per photo file. path is os.fsencode() of the absolute path, so names that
    -- are not valid UTF-8 survive; hash is SHA-256 (first 128 bits) of the content, which lets a moved
    -- or copied photo keep its results without being decoded again.
    CREATE TABLE photos (
        id INTEGER PRIMARY KEY,
        path BLOB NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        hash TEXT NOT NULL,
        width INTEGER,
        height INTEGER,
        taken_at TEXT,
        scanned_at REAL NOT NULL
    );
    CREATE INDEX photos_hash ON photos(hash);

    -- Which recognizer ran on which photo. fingerprint = backbone file, recognizer file,
    -- threshold and top-k: when any of them changes, the photo is tagged again.
    CREATE TABLE results (
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        recognizer TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        PRIMARY KEY (photo_id, recognizer)
    ) WITHOUT ROWID;

    -- The candidates kept as tags. path is the hierarchy (animal/dog/Golden Retriever).
    CREATE TABLE tags (
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        recognizer TEXT NOT NULL,
        path TEXT NOT NULL,
        tag TEXT NOT NULL,
        score REAL NOT NULL,
        PRIMARY KEY (photo_id, recognizer, path)
    ) WITHOUT ROWID;
    CREATE INDEX tags_tag ON tags(tag COLLATE NOCASE);
    CREATE INDEX tags_path ON tags(path);

    -- The backbone's embedding of each photo, float16 little-endian: what similarity
    -- search and user-trained recognizers work from.
    CREATE TABLE embeddings (
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        backbone TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (photo_id, backbone)
    ) WITHOUT ROWID;

    -- Files that could not be read, so an unchanged bad file is reported, not re-read.
    CREATE TABLE failures (
        path BLOB PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        reason TEXT NOT NULL,
        seen_at REAL NOT NULL
    );
    """,
    """
    -- Every file phototag has written keywords into: a sidecar, or the photo itself.
    -- size/mtime_ns: the file as phototag left it; wanted: a digest of the values it wanted.
    -- Both unchanged means the next write has nothing to do and need not open the file.
    CREATE TABLE targets (
        target BLOB PRIMARY KEY,
        photo_id INTEGER REFERENCES photos(id) ON DELETE SET NULL,
        mode TEXT NOT NULL,
        created INTEGER NOT NULL,
        size INTEGER,
        mtime_ns INTEGER,
        wanted TEXT
    );
    CREATE INDEX targets_photo ON targets(photo_id);

    -- The keyword values phototag itself added, per file and field: what a later write may
    -- replace and what clean takes back. A user's own values are never listed here.
    CREATE TABLE written (
        target BLOB NOT NULL REFERENCES targets(target) ON DELETE CASCADE,
        field TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (target, field, value)
    );
    """,
    """
    -- Albums phototag manages: a folder and the query that fills it.
    CREATE TABLE albums (
        name TEXT PRIMARY KEY,
        folder BLOB NOT NULL UNIQUE,
        query TEXT NOT NULL,
        link TEXT NOT NULL,
        html INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    -- The entries phototag created in an album folder: the only files it may remove there.
    CREATE TABLE album_entries (
        album TEXT NOT NULL REFERENCES albums(name) ON DELETE CASCADE ON UPDATE CASCADE,
        entry TEXT NOT NULL,
        source BLOB NOT NULL,
        PRIMARY KEY (album, entry)
    );
    CREATE INDEX album_entries_source ON album_entries(album, source);
    """,
    """
    -- A user's corrections: tags added to or removed from a photo by hand. They win over
    -- the models' output when tags are written, and are examples for training.
    CREATE TABLE corrections (
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('add', 'remove')),
        at REAL NOT NULL,
        PRIMARY KEY (photo_id, path)
    );
    """,
    """
    -- A detector's boxes (score >= 0.1), kept so that counts, crops and later features need
    -- no re-run. Box corners are fractions of the photo's width and height.
    CREATE TABLE detections (
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        backbone TEXT NOT NULL,
        label TEXT NOT NULL,
        score REAL NOT NULL,
        x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL
    );
    CREATE INDEX detections_photo ON detections(photo_id, backbone);
    CREATE INDEX detections_label ON detections(label, score);
    """,
    """
    -- What each item is (photo, raw, video) and a video's length in seconds.
    ALTER TABLE photos ADD COLUMN kind TEXT NOT NULL DEFAULT 'photo';
    ALTER TABLE photos ADD COLUMN duration REAL;
    -- Files that belong to an item and are not tagged themselves (docs/formats.md): the RAW
    -- of a RAW+JPEG pair (role 'raw': same tags in its own sidecar) and the MOV of a Live
    -- Photo (role 'motion'). Both follow their item into albums.
    CREATE TABLE companions (
        path BLOB PRIMARY KEY,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        role TEXT NOT NULL
    );
    CREATE INDEX companions_photo ON companions(photo_id);
    """,
    """
    -- Issue 13: what phototag knows follows the photo's content, not its path.
    -- offline_since: a photo under a folder that was missing or empty at the last scan (an
    -- offline share inside the library). It is kept, with its results, albums and
    -- ownership, until the folder is back or 'phototag forget' drops it.
    ALTER TABLE photos ADD COLUMN offline_since REAL;
    -- hash: the content hash of the photo a target belongs to, so ownership is found again
    -- when the photo comes back under another path; written_at: which mode a photo was
    -- written with last (retag and 'tag' keep it).
    ALTER TABLE targets ADD COLUMN hash TEXT;
    ALTER TABLE targets ADD COLUMN written_at REAL;
    UPDATE targets SET hash = (SELECT hash FROM photos WHERE photos.id = targets.photo_id);
    CREATE INDEX targets_hash ON targets(hash);
    -- Corrections keyed by content: they survive moves, a folder taken away and brought
    -- back, and re-indexing. source: 'user' (phototag tag) or 'file' (a keyword phototag
    -- wrote that the user deleted in another program).
    CREATE TABLE corrections_by_content (
        hash TEXT NOT NULL,
        path TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('add', 'remove')),
        source TEXT NOT NULL DEFAULT 'user',
        at REAL NOT NULL,
        PRIMARY KEY (hash, path)
    );
    INSERT OR REPLACE INTO corrections_by_content (hash, path, action, at)
        SELECT p.hash, c.path, c.action, c.at FROM corrections c JOIN photos p ON p.id = c.photo_id
        ORDER BY c.at;
    DROP TABLE corrections;
    ALTER TABLE corrections_by_content RENAME TO corrections;
    """,
    """
    -- People: groups of faces of one person. name NULL: not named yet; ignored: strangers
    -- the user does not want listed or tagged. Named people are never regrouped.
    CREATE TABLE people (
        id INTEGER PRIMARY KEY,
        name TEXT,
        ignored INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    CREATE UNIQUE INDEX people_name ON people(name COLLATE NOCASE) WHERE name IS NOT NULL;
    -- Faces found in photos. Box corners and landmarks are fractions of the photo's width and
    -- height in its displayed (EXIF-oriented) orientation. descriptor: the face descriptor,
    -- float16 little-endian, unit length; NULL for faces too small to recognise. assigned: how
    -- the face got its person: 'auto' (grouping), 'user' (named, merged or moved by hand),
    -- 'region' (a name from another program's MWG face region).
    CREATE TABLE faces (
        id INTEGER PRIMARY KEY,
        photo_id INTEGER NOT NULL REFERENCES photos(id) ON DELETE CASCADE,
        x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
        score REAL NOT NULL,
        quality REAL NOT NULL,
        landmarks BLOB,
        descriptor BLOB,
        person_id INTEGER REFERENCES people(id) ON DELETE SET NULL,
        assigned TEXT NOT NULL DEFAULT 'auto',
        region_name TEXT
    );
    CREATE INDEX faces_photo ON faces(photo_id);
    CREATE INDEX faces_person ON faces(person_id);
    """,
    """
    -- What a rescan asks of every photo ("has this backbone's embedding, as of this
    -- fingerprint?"), answered from this index instead of the table's 2.5 KB rows.
    CREATE INDEX embeddings_fingerprint ON embeddings(backbone, fingerprint);

    -- A counter per backbone that every change to its embeddings bumps (kept by triggers,
    -- so no writer can forget it): the memory-mapped copy of the embeddings that search
    -- uses (phototag/index/vectors.py) is valid while the counter matches the one it was
    -- built at. Foreign-key cascades fire these triggers too.
    CREATE TABLE embedding_versions (
        backbone TEXT PRIMARY KEY,
        version INTEGER NOT NULL
    );
    CREATE TRIGGER embeddings_inserted AFTER INSERT ON embeddings BEGIN
        INSERT INTO embedding_versions (backbone, version) VALUES (NEW.backbone, 1)
            ON CONFLICT (backbone) DO UPDATE SET version = version + 1;
    END;
    CREATE TRIGGER embeddings_deleted AFTER DELETE ON embeddings BEGIN
        INSERT INTO embedding_versions (backbone, version) VALUES (OLD.backbone, 1)
            ON CONFLICT (backbone) DO UPDATE SET version = version + 1;
    END;
    CREATE TRIGGER embeddings_updated AFTER UPDATE ON embeddings BEGIN
        INSERT INTO embedding_versions (backbone, version) VALUES (NEW.backbone, 1)
            ON CONFLICT (backbone) DO UPDATE SET version = version + 1;
        INSERT INTO embedding_versions (backbone, version) VALUES (OLD.backbone, 1)
            ON CONFLICT (backbone) DO UPDATE SET version = version + 1;
    END;
    """,
    """
    -- complete_for: the digest of the recognizer and backbone fingerprints a scan last found
    -- (or made) complete for this photo, so a nightly rescan answers "anything to do?" from
    -- the photo's own row instead of one lookup per recognizer. Any change to the photo's
    -- results or embeddings clears it (these triggers, so no writer can forget), and a scan
    -- sets it again only after checking or writing all of them.
    ALTER TABLE photos ADD COLUMN complete_for TEXT;
    CREATE TRIGGER results_inserted_clear AFTER INSERT ON results BEGIN
        UPDATE photos SET complete_for = NULL WHERE id = NEW.photo_id AND complete_for IS NOT NULL;
    END;
    CREATE TRIGGER results_updated_clear AFTER UPDATE ON results BEGIN
        UPDATE photos SET complete_for = NULL WHERE id IN (OLD.photo_id, NEW.photo_id) AND complete_for IS NOT NULL;
    END;
    CREATE TRIGGER results_deleted_clear AFTER DELETE ON results BEGIN
        UPDATE photos SET complete_for = NULL WHERE id = OLD.photo_id AND complete_for IS NOT NULL;
    END;
    CREATE TRIGGER embeddings_inserted_clear AFTER INSERT ON embeddings BEGIN
        UPDATE photos SET complete_for = NULL WHERE id = NEW.photo_id AND complete_for IS NOT NULL;
    END;
    CREATE TRIGGER embeddings_updated_clear AFTER UPDATE ON embeddings BEGIN
        UPDATE photos SET complete_for = NULL WHERE id IN (OLD.photo_id, NEW.photo_id) AND complete_for IS NOT NULL;
    END;
    CREATE TRIGGER embeddings_deleted_clear AFTER DELETE ON embeddings BEGIN
        UPDATE photos SET complete_for = NULL WHERE id = OLD.photo_id AND complete_for IS NOT NULL;
    END;
    """,
    """
    -- How many photos carry each tag, kept by triggers: 'phototag tags' reads a few
    -- thousand rows instead of counting millions of tag rows (seconds at a million photos).
    CREATE TABLE tag_counts (
        recognizer TEXT NOT NULL,
        path TEXT NOT NULL,
        tag TEXT NOT NULL,
        photos INTEGER NOT NULL,
        PRIMARY KEY (recognizer, path)
    ) WITHOUT ROWID;
    INSERT INTO tag_counts (recognizer, path, tag, photos)
        SELECT recognizer, path, MIN(tag), COUNT(*) FROM tags GROUP BY recognizer, path;
    CREATE TRIGGER tags_counted AFTER INSERT ON tags BEGIN
        INSERT INTO tag_counts (recognizer, path, tag, photos) VALUES (NEW.recognizer, NEW.path, NEW.tag, 1)
            ON CONFLICT (recognizer, path) DO UPDATE SET photos = photos + 1;
    END;
    CREATE TRIGGER tags_uncounted AFTER DELETE ON tags BEGIN
        UPDATE tag_counts SET photos = photos - 1 WHERE recognizer = OLD.recognizer AND path = OLD.path;
    END;
    CREATE TRIGGER tags_recounted AFTER UPDATE OF recognizer, path ON tags BEGIN
        UPDATE tag_counts SET photos = photos - 1 WHERE recognizer = OLD.recognizer AND path = OLD.path;
        INSERT INTO tag_counts (recognizer, path, tag, photos) VALUES (NEW.recognizer, NEW.path, NEW.tag, 1)
            ON CONFLICT (recognizer, path) DO UPDATE SET photos = photos + 1;
    END;
    """,
]

LATEST = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def ensure_schema(conn: sqlite3.Connection, migrations: list[str] | None = None) -> int:
    """Bring the schema up to date; returns the version. Idempotent."""
    steps = MIGRATIONS if migrations is None else migrations
    version = schema_version(conn)
    if version > len(steps):
        raise IndexFileError(
            f"the index has schema version {version}, newer than this phototag understands "
            f"({len(steps)}): it was written by a newer phototag; upgrade phototag"
        )
    if version == len(steps):
        return version
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated while we waited for the lock.
        version = schema_version(conn)
        for i in range(version, len(steps)):
            for statement in _statements(steps[i]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {i + 1}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(steps)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
