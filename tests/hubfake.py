"""A local stand-in for the Hugging Face Hub, and models exported as Immich exports them.

:class:`FakeHub` is an HTTPS server (its own CA, made by trustme) that answers the requests
huggingface_hub makes for a model repository: ``GET /api/models/{repo}/revision/{rev}``
(with ``blobs=true``: sizes, Git blob ids, LFS sha256), ``HEAD`` and ``GET
/{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``,
``X-Linked-Size`` and Range requests. ``cut`` stops the first full download of a file half
way; ``lie`` makes the hub's listed sha256 of a file wrong. ``files`` are plain files served
at ``/NAME`` (an archive on a web server, for ``models install URL``). ``hold`` stops sending
after a given number of bytes, so that a test can kill a client in the middle of a download
(observed: :attr:`FakeHub.holding`), not after a guessed time.

:func:`immich_export` writes an OpenCLIP model in Immich's layout as Immich's exporter does
(immich-app/immich machine-learning/export ``openclip.py``): ``encode_image(normalize=True)``
and ``encode_text(normalize=True)`` exported with a fixed batch of 1, the text as int32.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LFS_SUFFIXES = (".onnx",)
CHUNK = 1 << 16  # bytes per write of a file's contents: where a hold can stop a response


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class FakeHub:
    def __init__(self, repos: dict[str, Path], ca_file: Path) -> None:
        import trustme

        ca = trustme.CA()
        ca.cert_pem.write_to_path(str(ca_file))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
        self.repos = repos  # "immich-app/NAME" -> folder in Immich's layout
        self.commit = hashlib.sha1(b"commit").hexdigest()
        self.cut: set[str] = set()  # paths whose next full GET stops half way
        self.lie: set[str] = set()  # paths whose listed sha256 is wrong
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range)
        self.files: dict[str, bytes] = {}  # NAME -> contents served at /NAME
        self.served = 0  # bytes of file contents handed to the network, all responses
        self.holding = threading.Event()  # set once a response is held (see hold)
        self._hold_at: int | None = None
        self._dropped = threading.Event()
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _file(self) -> tuple[str, bytes] | None:
                path = self.path.split("?")[0]
                if path[1:] in hub.files:
                    return path[1:], hub.files[path[1:]]
                for repo, folder in hub.repos.items():
                    prefix = f"/{repo}/resolve/"
                    if path.startswith(prefix):
                        rev, _, rel = path[len(prefix) :].partition("/")
                        f = folder / rel
                        if rev in ("main", hub.commit) and f.is_file():
                            return rel, f.read_bytes()
                return None

            def _headers_for(self, rel: str, data: bytes) -> None:
                etag = (
                    hashlib.sha256(data).hexdigest()
                    if rel.endswith(LFS_SUFFIXES)
                    else git_blob_id(data)
                )
                self.send_header("X-Repo-Commit", hub.commit)
                self.send_header("ETag", f'"{etag}"')
                if rel.endswith(LFS_SUFFIXES):
                    self.send_header("X-Linked-Etag", f'"{etag}"')
                    self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Accept-Ranges", "bytes")

            def do_HEAD(self) -> None:
                hub.requests.append(("HEAD", self.path, None))
                found = self._file()
                if found is None:
                    self._missing()
                    return
                rel, data = found
                self.send_response(200)
                self._headers_for(rel, data)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()

            def _missing(self) -> None:
                body = b'{"error": "Entry not found"}'
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                hub.requests.append(("GET", self.path, rng))
                if self.path.startswith("/api/models/"):
                    self._info()
                    return
                found = self._file()
                if found is None:
                    self._missing()
                    return
                rel, data = found
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if start >= len(data) > 0:  # as a real server: nothing left to send
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = data[start:]
                self.send_response(206 if rng else 200)
                self._headers_for(rel, data)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if rel in hub.cut and not rng:
                    hub.cut.discard(rel)
                    self._send(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self._send(body)

            def _send(self, body: bytes) -> None:
                """``body`` in chunks, stopping where :meth:`FakeHub.hold` says."""
                sent = 0
                while sent < len(body):
                    with hub._lock:
                        n = min(CHUNK, len(body) - sent)
                        if hub._hold_at is not None:
                            n = max(0, min(n, hub._hold_at - hub.served))
                        hub.served += n
                        if n == 0:
                            hub.holding.set()
                    if n == 0:  # held until dropped: then closed, nothing more sent
                        hub._dropped.wait(timeout=300)
                        self.close_connection = True
                        return
                    try:
                        self.wfile.write(body[sent : sent + n])
                    except (ConnectionError, ssl.SSLError):  # the client is gone
                        self.close_connection = True
                        return
                    sent += n

            def _info(self) -> None:
                path = self.path.split("?")[0][len("/api/models/") :]
                repo, _, rev = path.partition("/revision/")
                folder = hub.repos.get(repo)
                if folder is None or rev not in ("main", hub.commit):
                    body = json.dumps({"error": "Repository not found"}).encode()
                    self.send_response(404)
                    self.send_header(
                        "X-Error-Code", "RepoNotFound" if folder is None else "RevisionNotFound"
                    )
                else:
                    siblings = []
                    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
                        rel = f.relative_to(folder).as_posix()
                        data = f.read_bytes()
                        s: dict[str, Any] = {"rfilename": rel, "size": len(data),
                                             "blobId": git_blob_id(data)}  # fmt: skip
                        if rel.endswith(LFS_SUFFIXES):
                            sha = hashlib.sha256(data).hexdigest()
                            if rel in hub.lie:
                                sha = hashlib.sha256(b"something else").hexdigest()
                            s["lfs"] = {"size": len(data), "sha256": sha, "pointerSize": 134}
                        siblings.append(s)
                    body = json.dumps({"id": repo, "modelId": repo, "sha": hub.commit,
                                       "private": False, "siblings": siblings}).encode()  # fmt: skip
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.endpoint = f"https://localhost:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, name: str) -> str:
        """The address of the plain file ``files[name]``."""
        return f"{self.endpoint}/{name}"

    def hold(self, after: int) -> None:
        """Send ``after`` more bytes of file contents (all responses together), then hold
        every response where it is -- its client waits in the middle of a download -- and set
        :attr:`holding`, until :meth:`drop`."""
        with self._lock:
            self._hold_at = self.served + after
            self.holding.clear()
            self._dropped.clear()

    def drop(self) -> None:
        """End the held responses (connection closed, nothing more sent); stop holding."""
        with self._lock:
            self._hold_at = None
            self._dropped.set()

    def close(self) -> None:
        self.drop()
        self.httpd.shutdown()
        self.httpd.server_close()

    def downloads(self, name: str) -> list[str | None]:
        """The Range headers of the GETs of file ``name``, in order."""
        return [r for m, p, r in self.requests if m == "GET" and p.endswith("/" + name)]


# -- Immich's export ------------------------------------------------------------------------


def immich_export(
    model: Any,
    config: dict[str, Any],
    tokenizer: Any,
    tokenizer_config: dict[str, Any],
    out: Path,
) -> Path:
    """``model`` (an OpenCLIP model) in Immich's repository layout under ``out``."""
    import open_clip
    import torch

    context = int(config["text_cfg"].get("context_length", 77))
    size = int(config["vision_cfg"]["image_size"])
    (out / "visual").mkdir(parents=True, exist_ok=True)
    (out / "textual").mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "visual" / "preprocess_cfg.json").write_text(
        json.dumps(open_clip.get_model_preprocess_cfg(model), indent=2)
    )
    tokenizer.save(str(out / "textual" / "tokenizer.json"))
    (out / "textual" / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))

    class Image(torch.nn.Module):
        def forward(self, image: Any) -> Any:
            return model.encode_image(image, normalize=True)

    class Text(torch.nn.Module):
        def forward(self, text: Any) -> Any:
            return model.encode_text(text, normalize=True)

    for param in model.parameters():  # as Immich's exporter does
        param.requires_grad_(False)
    torch.backends.mha.set_fastpath_enabled(False)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Image(), (torch.randn(1, 3, size, size),), str(out / "visual" / "model.onnx"),
                          input_names=["image"], output_names=["embedding"], opset_version=17,
                          dynamo=False)  # fmt: skip
        torch.onnx.export(Text(), (torch.ones(1, context, dtype=torch.int32),),
                          str(out / "textual" / "model.onnx"), input_names=["text"],
                          output_names=["embedding"], opset_version=17, dynamo=False)  # fmt: skip
    return out


def unigram_tokenizer(corpus: list[str], languages: list[str], vocab_size: int = 600) -> Any:
    """A SentencePiece Unigram ``tokenizers.Tokenizer`` trained on ``corpus``, as NLLB's is
    laid out: ``<pad>`` 0, ``<unk>``, the languages' FLORES codes as special tokens, and
    ``</s>`` appended to every text -- given the highest id, so CLIP's argmax pooling finds it."""
    from tokenizers import SentencePieceUnigramTokenizer, processors

    tok = SentencePieceUnigramTokenizer()
    tok.train_from_iterator(corpus, vocab_size=vocab_size,
                            special_tokens=["<pad>", "<unk>", *languages], unk_token="<unk>")  # fmt: skip
    tok.add_special_tokens(["</s>"])
    eos = tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", eos)]
    )
    return tok._tokenizer  # the plain tokenizers.Tokenizer inside the wrapper
