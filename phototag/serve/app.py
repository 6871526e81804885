"""The HTTP API and the page, on FastAPI (Starlette + uvicorn).

FastAPI rather than bare Starlette: the OpenAPI description at ``/docs`` comes from the
handlers' signatures, so it cannot drift from the code. Every handler calls the library
once; :mod:`phototag.errors` become JSON ``{"error": "..."}`` with a 4xx/5xx status.

Security (docs/serve.md): a token on every request when one is set (always when bound to a
non-loopback address); the Host header must name a loopback host when bound to loopback
(DNS rebinding); uploads limited in bytes (before they are read whole) and pixels (before
decoding); only indexed photos are ever served, by id: no path from a request reaches the
filesystem.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..config import DEFAULT_THRESHOLD, DEFAULT_TOP_K, SimilarBy, default_index_path
from ..errors import (
    ConfigError,
    ImageError,
    IndexFileError,
    LockedError,
    ModelError,
    PhototagError,
    UnknownModelError,
)
from ..index import Index
from .recognition import Batcher, Job, Recognition, Recognized
from .settings import ServeSettings, is_loopback

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

STATIC = Path(__file__).parent / "static"
TOKEN_COOKIE = "phototag_token"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def status_of(e: PhototagError) -> int:
    """The HTTP status a library error maps to."""
    if isinstance(e, ImageError):
        return 413 if "too large" in str(e) else 422
    if isinstance(e, UnknownModelError):
        return 404
    if isinstance(e, ConfigError):
        return 400
    if isinstance(e, LockedError):
        return 503
    if isinstance(e, IndexFileError | ModelError):
        return 503
    return 500


async def _json_error(send: Send, status: int, message: str) -> None:
    body = JSONResponse({"error": message}, status_code=status).body
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Pure ASGI middleware: token, Host header, body size, and a count of requests in flight.

    The body limit is enforced on the stream (a client may lie in Content-Length, or send
    none), so no handler ever holds more than ``max_bytes`` of a request.
    """

    def __init__(self, app: ASGIApp, settings: ServeSettings, stats: Stats) -> None:
        self.app = app
        self.settings = settings
        self.stats = stats
        self.loopback = is_loopback(settings.host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.loopback:
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
            if not is_loopback(name):
                await _json_error(send, 421, f"this server answers to localhost only, not {host!r}")
                return
        token = self.settings.token
        if token is not None and not self._authorized(scope, headers, token):
            await _json_error(send, 401, "a token is required: 'Authorization: Bearer TOKEN'")
            return
        limit = self.settings.max_upload_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _json_error(send, 413, f"request body over the {limit} byte limit")
            return
        seen = 0
        too_big = False

        async def limited() -> Message:
            nonlocal seen, too_big
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    too_big = True
                    raise ApiError(413, f"request body over the {limit} byte limit")
            return message

        counted = scope["path"] != "/v1/health"
        self.stats.in_flight += counted
        try:
            await self.app(scope, limited, send)
        except ApiError as e:
            if not too_big:
                raise
            await _json_error(send, e.status, e.message)
        finally:
            self.stats.in_flight -= counted
            self.stats.requests += counted

    @staticmethod
    def _authorized(scope: Scope, headers: dict[str, str], token: str) -> bool:
        given = []
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given.append(auth[7:].strip())
        for part in headers.get("cookie", "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == TOKEN_COOKIE:
                given.append(v)
        from urllib.parse import parse_qs

        given += parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
        return any(hmac.compare_digest(g.encode(), token.encode()) for g in given)


@dataclass
class Stats:
    in_flight: int = 0
    requests: int = 0


class Correction(BaseModel):
    action: str  # "add" or "remove"
    tag: str  # a tag ("beach") or a path ("scene/nature/seashore")


async def _image_bytes(request: Request) -> bytes:
    """The upload: the body itself, or the first file of a multipart form (field ``image``
    preferred). Never written anywhere: it is decoded in memory."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=16)
        part = form.get("image")
        if part is None:
            part = next((v for v in form.values() if not isinstance(v, str)), None)
        if part is None or isinstance(part, str):
            raise ApiError(400, "the form has no file: send the image as the field 'image'")
        data = await part.read()
    else:
        data = await request.body()
    if not data:
        raise ApiError(
            400, "empty upload: send the image as the request body or a form field 'image'"
        )
    return data


def create_app(settings: ServeSettings, recognition: Recognition | None = None) -> FastAPI:
    """The ASGI application. ``recognition`` may be given (tests share one across apps).

    Raises ConfigError for a non-loopback address without a token."""
    if not is_loopback(settings.host) and not settings.token:
        raise ConfigError(
            f"serving on {settings.host} (not loopback) needs a token: anyone on the network could use it"
        )
    index_path = settings.index_path or default_index_path()
    engine = recognition or Recognition(device=settings.device, max_pixels=settings.max_pixels)
    batcher: Batcher[Job, Recognized] = Batcher(
        engine.run, max_batch=settings.max_batch, max_wait=settings.batch_wait
    )
    stats = Stats()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        yield
        await batcher.close()

    app = FastAPI(
        title="phototag",
        version=__version__,
        description="Image recognition and the photo library's tags, on your own machine.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.stats = stats

    @app.exception_handler(PhototagError)
    async def library_error(request: Request, e: PhototagError) -> JSONResponse:
        return JSONResponse({"error": str(e)}, status_code=status_of(e))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> JSONResponse:
        return JSONResponse({"error": e.message}, status_code=e.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return JSONResponse(
            {"error": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=422
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception) -> JSONResponse:
        # A bug, not the client's fault: one line to the client, the traceback to the log.
        import logging

        logging.getLogger("phototag.serve").exception("%s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error: {type(e).__name__}"}, status_code=500)

    def index() -> Index:
        return Index.open(index_path, create=False)

    async def recognize_upload(
        request: Request,
        models: list[str],
        threshold: float,
        top_k: int,
        embed: tuple[str, ...] = (),
    ) -> Recognized:
        data = await _image_bytes(request)
        names = models or list(settings.recognizers) or list(engine.default_names())
        job = await asyncio.to_thread(
            engine.prepare, data, names, threshold=threshold, top_k=top_k, embed=embed
        )
        del data
        return await batcher.submit(job)

    # -- recognition ----------------------------------------------------------------------

    @app.post("/v1/recognize", tags=["recognition"])
    async def recognize(
        request: Request,
        model: Annotated[
            list[str] | None, Query(description="Recognizer (repeatable); default: scan's.")
        ] = None,
        threshold: float = Query(default=DEFAULT_THRESHOLD, ge=0.0, le=1.0),
        top_k: int = Query(default=DEFAULT_TOP_K, ge=1, le=1000),
    ) -> dict[str, Any]:
        """Recognize the uploaded image (the body, or a multipart field ``image``).

        The source service's shape: ``jobId`` and, per model, ``candidates`` of
        ``{"tag", "score", "path"}`` best first; with one model also at the top level."""
        res = await recognize_upload(request, model or [], threshold, top_k)
        results = [{"model": m, "candidates": [c.as_json() for c in cands]}
                   for m, cands in res.candidates.items()]  # fmt: skip
        body: dict[str, Any] = {"jobId": str(uuid.uuid4()), "results": results}
        if len(results) == 1:
            body.update(results[0])
        return body

    @app.post("/v1/similar", tags=["search"])
    async def similar(
        request: Request,
        by: SimilarBy = SimilarBy.EMBEDDING,
        n: int = Query(default=20, ge=1, le=1000),
        min_score: float = 0.0,
    ) -> dict[str, Any]:
        """Indexed photos most similar to the uploaded photo, by embedding or by tags."""
        from ..library.search import by_embedding, by_tags, default_backbone

        names = list(settings.recognizers) or list(engine.default_names())
        backbone = default_backbone(
            {r.backbone for r in engine.tagger(names).recognizers}, engine.catalog
        )
        res = await recognize_upload(request, names, DEFAULT_THRESHOLD, DEFAULT_TOP_K, (backbone,))
        with index() as idx:
            if by is SimilarBy.TAGS:
                tags = {c.path: c.score for cands in res.candidates.values() for c in cands}
                found = by_tags(idx, tags, n=n, min_score=min_score)
            else:
                found = by_embedding(
                    idx, res.embeddings[backbone], backbone, n=n, min_score=min_score
                )
            return {"results": [_photo_ref(idx, s.path, score=s.score) for s in found]}

    @app.get("/v1/search", tags=["search"])
    def search(
        q: str = Query(min_length=1, max_length=1000), n: int = Query(default=20, ge=1, le=1000)
    ) -> dict[str, Any]:
        """Photos found by a description (needs an open-vocabulary model)."""
        from ..library.search import by_text

        with index() as idx:
            found = by_text(idx, q, catalog=engine.catalog, n=n)
            return {"query": q, "results": [_photo_ref(idx, s.path, score=s.score) for s in found]}

    # -- the library ----------------------------------------------------------------------

    @app.get("/v1/photos", tags=["library"])
    def photos(
        tag: Annotated[list[str] | None, Query(description="A tag or path (repeatable).")] = None,
        person: Annotated[
            list[str] | None, Query(description="A named person (repeatable).")
        ] = None,
        any: bool = False,
        n: int = Query(default=200, ge=1, le=10000),
        offset: int = Query(default=0, ge=0),
    ) -> dict[str, Any]:
        """Photos carrying every tag and showing every person (or ``any`` of them), newest
        first, with the user's corrections applied."""
        from ..library.query import TagQuery

        if not tag and not person:
            raise ApiError(400, "give at least one tag or person: /v1/photos?tag=beach")
        with index() as idx:
            query = TagQuery(tags=tuple(tag or ()), people=tuple(person or ()), any=any)
            matches = query.matches(idx)
            matches.sort(key=lambda m: m.when, reverse=True)
            page = matches[offset : offset + n]
            return {"total": len(matches),
                    "results": [{**_photo_ref(idx, m.path, pid=m.photo_id), "taken_at": m.taken_at,
                                 "tags": [{"model": r, "path": p, "score": round(s, 4)} for r, p, s in m.tags]}
                                for m in page]}  # fmt: skip

    @app.get("/v1/people", tags=["library"])
    def people() -> dict[str, Any]:
        """The people faces were grouped into, with counts and a representative face."""
        from ..library.people import list_people

        with index() as idx:
            return {"results": [{"id": p.id, "name": p.name, "label": p.label, "faces": p.faces,
                                 "photos": p.photos, "face": p.best_face}
                                for p in list_people(idx)]}  # fmt: skip

    @app.get("/v1/photos/{photo_id}", tags=["library"])
    def photo(photo_id: int) -> dict[str, Any]:
        """One indexed photo: size, capture time, tags per recognizer (corrected: tags added
        by hand under ``user``), and the corrections themselves."""

        with index() as idx:
            path = _indexed(idx, photo_id)
            view = idx.photo(path)
            if view is None:
                raise ApiError(404, f"no photo {photo_id} in the index")
            doc = view.as_json()
            doc["id"] = photo_id
            doc["corrections"] = [
                {"action": a, "path": p}
                for a, _, p in (
                    c.partition(":") for c in idx.corrections(photo_id).get(photo_id, [])
                )
            ]
            return doc

    @app.get("/v1/photos/{photo_id}/thumbnail", tags=["library"])
    def thumbnail(photo_id: int, size: int = Query(default=320, ge=16, le=2048)) -> Response:
        """A JPEG of the indexed photo, upright, at most ``size`` pixels on its long side."""
        with index() as idx:
            path = _indexed(idx, photo_id)
        im = _decoded(path, size, settings.max_pixels * 4, f"photo {photo_id}")
        im.thumbnail((size, size))
        return _jpeg(im)

    @app.get("/v1/faces/{face_id}/thumbnail", tags=["library"])
    def face_thumbnail(face_id: int, size: int = Query(default=160, ge=16, le=1024)) -> Response:
        """A JPEG of one face (its box with a margin), upright, ``size`` pixels square at most."""
        from ..index.faces import face

        with index() as idx:
            row = face(idx, face_id)
            path = _indexed(idx, row.photo_id) if row is not None else None
        if row is None or path is None:
            raise ApiError(404, f"no face {face_id} in the index")
        im = _decoded(path, size * 4, settings.max_pixels * 4, f"face {face_id}")
        w, h = im.size
        x1, y1, x2, y2 = row.box  # fractions of the displayed photo
        mx, my = (x2 - x1) * 0.25, (y2 - y1) * 0.25
        box = (max(0, int((x1 - mx) * w)), max(0, int((y1 - my) * h)),
               min(w, int((x2 + mx) * w)), min(h, int((y2 + my) * h)))  # fmt: skip
        crop = im.crop(box)
        crop.thumbnail((size, size))
        return _jpeg(crop)

    @app.post("/v1/photos/{photo_id}/tags", tags=["library"])
    def correct(photo_id: int, body: Correction) -> dict[str, Any]:
        """Add or remove a tag by hand, as ``phototag tag add|remove``, and write the photo's
        files at once by the same rules as ``phototag write``."""
        from .corrections import apply_correction

        with index() as idx:
            path = _indexed(idx, photo_id)
        result = apply_correction(index_path, path, body.action, body.tag, settings.write)
        return {"id": photo_id, **result}

    @app.get("/v1/tags", tags=["library"])
    def tags(model: str | None = None) -> dict[str, Any]:
        """Every tag in the index with how many photos carry it."""
        from ..library.corrections import corrected_counts

        with index() as idx:
            return {"results": [{"model": t.recognizer, "tag": t.tag, "path": t.path, "count": t.photos}
                                for t in corrected_counts(idx, model)]}  # fmt: skip

    @app.get("/v1/albums", tags=["library"])
    def albums() -> dict[str, Any]:
        """The managed albums with their folders, queries and sizes."""
        with index() as idx:
            return {"results": [{"name": a.name, "folder": str(a.folder), "query": a.query,
                                 "photos": len(idx.album_entries(a.name))}
                                for a in idx.albums()]}  # fmt: skip

    @app.get("/v1/duplicates", tags=["search"])
    def duplicates(threshold: float = Query(default=0.9, ge=0.5, le=1.0)) -> dict[str, Any]:
        """Groups of exact and near-identical copies (as ``phototag duplicates``)."""
        from ..library.search import default_backbone, duplicate_groups

        with index() as idx:
            names = [r[0] for r in idx.conn.execute("SELECT DISTINCT backbone FROM embeddings")]
            if not names:
                return {"results": []}
            groups = duplicate_groups(
                idx, default_backbone(names, engine.catalog), threshold=threshold
            )
            return {"results": [[_photo_ref(idx, p, score=s) for p, s in g] for g in groups]}

    # -- catalogues -------------------------------------------------------------------------

    @app.get("/v1/catalogs", tags=["catalogues"])
    def catalogs() -> dict[str, Any]:
        from ..library.catalogs import list_catalogs

        return {"results": list_catalogs(settings.catalogs_dir)}

    @app.post("/v1/catalogs/{name}/similar", tags=["catalogues"])
    async def catalog_similar(
        request: Request, name: str, n: int = Query(default=10, ge=1, le=1000),
        weight: float = Query(default=0.7, ge=0.0, le=1.0),
    ) -> dict[str, Any]:  # fmt: skip
        """The catalogue's items most like the uploaded photo, with their fields (ranked by
        ``weight`` x embedding cosine + (1 - weight) x shared tags)."""
        from ..library.catalogs import ItemCatalog

        with ItemCatalog.open(name, folder=settings.catalogs_dir) as cat:
            backbones = cat.backbones()
            models = cat.recognizers()
        if not backbones:
            return {"catalog": name, "results": []}
        res = await recognize_upload(
            request, models, DEFAULT_THRESHOLD, DEFAULT_TOP_K, (backbones[0],)
        )
        tags = {c.path: c.score for cands in res.candidates.values() for c in cands}
        with ItemCatalog.open(name, folder=settings.catalogs_dir) as cat:
            found = cat.similar(
                res.embeddings[backbones[0]], tags, backbones[0], n=n, weight=weight
            )
        return {"catalog": name, "results": [m.as_json() for m in found]}

    # -- the page ------------------------------------------------------------------------

    @app.get("/v1/health", tags=["server"])
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "in_flight": stats.in_flight,
                "requests": stats.requests, "batches": batcher.batches}  # fmt: skip

    @app.get("/", include_in_schema=False)
    def page(request: Request) -> Response:
        resp = FileResponse(STATIC / "index.html", media_type="text/html")
        given = request.query_params.get("token")
        if settings.token and given:
            resp.set_cookie(TOKEN_COOKIE, given, httponly=True, samesite="strict")
        return resp

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return Guard(app, settings, stats)  # type: ignore[return-value]


def _indexed(idx: Index, photo_id: int) -> Path:
    path = idx.path_of(photo_id)
    if path is None:
        raise ApiError(404, f"no photo {photo_id} in the index")
    return path


def _photo_ref(
    idx: Index, path: Path, *, pid: int | None = None, score: float | None = None
) -> dict[str, Any]:
    pid = pid if pid is not None else idx.photo_id(path)
    ref: dict[str, Any] = {"id": pid, "path": os.fsdecode(path),
                           "thumbnail": f"/v1/photos/{pid}/thumbnail" if pid is not None else None}  # fmt: skip
    if score is not None:
        ref["score"] = round(score, 4)
    return ref


def _decoded(path: Path, min_side: int, max_pixels: int, what: str) -> Any:
    """The indexed file at ``path`` decoded upright (a PIL image); 404 when it cannot be."""
    from ..media.imaging import decode
    from ..tagging.loader import read_file
    from ..tagging.walk import FileEntry

    try:
        data, _, _ = read_file(FileEntry(path, 0, 0))
        return decode(data, min_side=min_side, max_pixels=max_pixels).image
    except ImageError as e:
        raise ApiError(404, f"{what} cannot be shown: {e}") from None


def _jpeg(im: Any) -> Response:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=85)
    return Response(buf.getvalue(), media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=60"})  # fmt: skip
