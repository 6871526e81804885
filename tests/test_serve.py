"""``phototag serve`` against a real server on a loopback port (uvicorn in a subprocess)."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import _bomb_png, jpeg_bytes, sample
from metadata_readers import by_exiftool
from PIL import Image
from serving import Server, start

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("serve-home")
    return {
        "PHOTOTAG_INDEX": str(home / "index.sqlite"),
        "XDG_DATA_HOME": str(home / "data"),
        "PHOTOTAG_CACHE": str(home / "cache"),
        "PHOTOTAG_ALBUMS": str(home / "albums"),
        "PHOTOTAG_CATALOGS": str(home / "catalogs"),
        "PHOTOTAG_CONFIG": str(home / "config.toml"),
    }


def run(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "phototag", *map(str, args)],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Path:
    lib = tmp_path_factory.mktemp("lib")
    (lib / "coffee.jpg").write_bytes(jpeg_bytes(sample("coffee")))
    Image.fromarray(sample("chelsea")).save(lib / "cat.png")
    (lib / "cat copy.jpg").write_bytes(jpeg_bytes(sample("chelsea"), quality=80))
    (lib / "astronaut.jpg").write_bytes(jpeg_bytes(sample("astronaut")))
    r = run(env, "scan", lib)
    assert r.returncode == 0, r.stderr
    run(env, "album", "--tag", "cat")
    return lib


@pytest.fixture(scope="module")
def server(
    library: Path, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    s = start(env, "--batch-wait-ms", "100", log=tmp_path_factory.mktemp("log") / "serve.log")
    yield s
    assert s.stop() == 0, s.log.read_text()


def photo_id(client: httpx.Client, name: str) -> int:
    for t in client.get("/v1/tags").json()["results"]:
        for p in client.get("/v1/photos", params={"tag": t["path"]}).json()["results"]:
            if p["path"].endswith("/" + name):
                return int(p["id"])
    raise AssertionError(f"{name} not found through the API")


def test_recognize_has_the_shape_of_classify_json(
    server: Server, library: Path, env: dict[str, str]
) -> None:
    cli = [
        json.loads(line)
        for line in run(env, "classify", library / "cat.png", "--json").stdout.splitlines()
    ]
    data = (library / "cat.png").read_bytes()
    with server.client() as c:
        raw = c.post("/v1/recognize", content=data)
        form = c.post("/v1/recognize", files={"image": ("x.png", data, "image/png")})
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert body["jobId"] and body["results"] == [
        {"model": d["model"], "candidates": d["candidates"]} for d in cli
    ]
    assert form.json()["results"] == body["results"]
    assert any(c["path"].startswith("animal/cat") for r in body["results"] for c in r["candidates"])


def test_recognize_one_model_is_the_source_services_shape(server: Server, library: Path) -> None:
    with server.client() as c:
        r = c.post("/v1/recognize", params={"model": "food", "threshold": 0.1, "top_k": 2},
                   content=(library / "coffee.jpg").read_bytes())  # fmt: skip
    body = r.json()
    assert set(body) == {"jobId", "model", "candidates", "results"}
    assert body["model"] == "food" and 0 < len(body["candidates"]) <= 2
    assert all(set(x) == {"tag", "score", "path"} and x["score"] >= 0.1 for x in body["candidates"])


def test_unknown_model_and_bad_parameters_are_json_errors(server: Server, library: Path) -> None:
    data = (library / "coffee.jpg").read_bytes()
    with server.client() as c:
        r = c.post("/v1/recognize", params={"model": "nosuch"}, content=data)
        assert r.status_code == 404 and "nosuch" in r.json()["error"]
        r = c.post("/v1/recognize", params={"threshold": 2}, content=data)
        assert r.status_code == 422 and "threshold" in r.json()["error"]


def test_concurrent_requests_share_inference_batches(server: Server, library: Path) -> None:
    data = (library / "coffee.jpg").read_bytes()
    with server.client() as c:
        before = c.get("/v1/health").json()["batches"]
    results: list[int] = []

    def one() -> None:
        with server.client() as c:
            results.append(c.post("/v1/recognize", content=data).status_code)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with server.client() as c:
        after = c.get("/v1/health").json()["batches"]
    assert results == [200] * 8
    assert after - before < 8  # some requests rode in another's batch


def _zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("a.jpg", b"\0" * 20_000_000)
    return buf.getvalue()


def _huge_png(width: int, height: int) -> bytes:
    # A valid header claiming width x height, as _bomb_png but with chosen dimensions.
    import struct
    import zlib

    png = _bomb_png()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = b"IHDR" + ihdr
    return png[:8] + struct.pack(">I", 13) + body + struct.pack(">I", zlib.crc32(body)) + png[33:]


HOSTILE = {
    "empty": (b"", 400),
    "truncated": (jpeg_bytes(sample("coffee"))[:3000], 422),
    "text": (b"this is not an image\n" * 10, 422),
    "30000x30000": (_huge_png(30000, 30000), 413),
    "100000x100000": (_bomb_png(), 413),
    "zip bomb": (_zip_bomb(), 422),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_uploads_get_4xx_and_the_server_keeps_serving(
    server: Server, library: Path, name: str
) -> None:
    data, status = HOSTILE[name]
    with server.client() as c:
        r = c.post("/v1/recognize", content=data)
        assert r.status_code == status, r.text
        assert r.json()["error"]
        assert (
            c.post("/v1/recognize", content=(library / "coffee.jpg").read_bytes()).status_code
            == 200
        )


def test_oversized_bodies_are_refused_before_being_read(server: Server) -> None:
    # Declared: 200 MB in Content-Length, refused at once (on a raw socket: an HTTP client
    # will not send a body shorter than it declares, and this test sends only the headers).
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST /v1/recognize HTTP/1.1\r\nHost: {host}\r\nContent-Length: {200 * 2**20}\r\n"
                     "Content-Type: image/jpeg\r\n\r\n".encode())  # fmt: skip
        assert sock.recv(4096).split(b"\r\n", 1)[0] == b"HTTP/1.1 413 Request Entity Too Large"
    # Undeclared: a chunked stream that never ends below the limit (51 MiB sent at most).

    def chunks() -> Iterator[bytes]:
        block = b"\xff" * 2**20
        for _ in range(51):
            yield block

    with server.client() as c:
        r = c.post("/v1/recognize", content=chunks())
        assert r.status_code == 413 and "limit" in r.json()["error"]
        assert c.get("/v1/health").status_code == 200


def test_a_path_in_a_field_never_reaches_the_filesystem(server: Server, library: Path) -> None:
    with server.client() as c:
        # A form field holding a path is text, never opened: urlencoded, the body is taken
        # as the image (and is none); multipart, a text field is no file.
        r = c.post("/v1/recognize", data={"image": "/etc/passwd"})
        assert r.status_code == 422 and "not an image" in r.json()["error"]
        r = c.post("/v1/recognize", files={"image": (None, "/etc/passwd")})
        assert r.status_code == 400 and "no file" in r.json()["error"]
        before = sorted(p.name for p in library.iterdir())
        r = c.post(
            "/v1/recognize",
            files={"image": ("../../../tmp/evil.jpg", (library / "coffee.jpg").read_bytes())},
        )
        assert r.status_code == 200
        assert sorted(p.name for p in library.iterdir()) == before
        assert not Path("/tmp/evil.jpg").exists()
        for bad in (
            "/v1/photos/..%2F..%2Fetc%2Fpasswd/thumbnail",
            "/v1/photos/999999/thumbnail",
            "/static/../app.py",
        ):
            assert c.get(bad).status_code in (404, 422)


def test_library_endpoints(server: Server, library: Path) -> None:
    with server.client() as c:
        tags = c.get("/v1/tags").json()["results"]
        assert any(t["path"] == "animal/cat" and t["count"] == 2 for t in tags)
        cats = c.get("/v1/photos", params={"tag": "cat"}).json()
        assert cats["total"] == 2 and {Path(p["path"]).name for p in cats["results"]} == {
            "cat.png",
            "cat copy.jpg",
        }
        pid = cats["results"][0]["id"]
        detail = c.get(f"/v1/photos/{pid}").json()
        assert detail["id"] == pid and "animal" in detail["tags"]
        thumb = c.get(f"/v1/photos/{pid}/thumbnail", params={"size": 64})
        assert thumb.headers["content-type"] == "image/jpeg"
        assert max(Image.open(io.BytesIO(thumb.content)).size) == 64
        albums = c.get("/v1/albums").json()["results"]
        assert [(a["name"], a["photos"]) for a in albums] == [("cat", 2)]
        groups = c.get("/v1/duplicates").json()["results"]
        assert [sorted(Path(p["path"]).name for p in g) for g in groups] == [
            ["cat copy.jpg", "cat.png"]
        ]
        similar = c.post("/v1/similar", content=jpeg_bytes(sample("chelsea"), quality=60)).json()[
            "results"
        ]
        assert Path(similar[0]["path"]).name in {"cat.png", "cat copy.jpg"}
        by_tags = c.post(
            "/v1/similar", params={"by": "tags"}, content=(library / "coffee.jpg").read_bytes()
        )
        assert Path(by_tags.json()["results"][0]["path"]).name == "coffee.jpg"
        r = c.get("/v1/search", params={"q": "a cat"})
        assert (
            r.status_code == 400 and "open-vocabulary" in r.json()["error"]
        ) or "zero-shot" in r.json()["error"]
        r = c.get("/v1/photos")
        assert r.status_code == 400
        spec = c.get("/openapi.json").json()
        assert {
            "/v1/recognize",
            "/v1/similar",
            "/v1/search",
            "/v1/photos",
            "/v1/tags",
            "/v1/albums",
            "/v1/catalogs/{name}/similar",
        } <= set(spec["paths"])
        assert c.get("/docs").status_code == 200


def test_a_correction_reaches_the_index_and_the_sidecar(
    server: Server, library: Path, env: dict[str, str]
) -> None:
    with server.client() as c:
        pid = photo_id(c, "coffee.jpg")
        tags = c.get(f"/v1/photos/{pid}").json()["tags"]
        wrong = next(cand["path"] for cands in tags.values() for cand in cands)
        r = c.post(f"/v1/photos/{pid}/tags", json={"action": "remove", "tag": wrong})
        assert r.status_code == 200, r.text
        r = c.post(f"/v1/photos/{pid}/tags", json={"action": "add", "tag": "Grandma's cup"})
        assert r.status_code == 200 and r.json()["path"] == "user/Grandma's cup"
        corrections = c.get(f"/v1/photos/{pid}").json()["corrections"]
        assert {"action": "remove", "path": wrong} in corrections
        assert {"action": "add", "path": "user/Grandma's cup"} in corrections
        assert (
            c.post(f"/v1/photos/{pid}/tags", json={"action": "frob", "tag": "x"}).status_code == 400
        )
    shown = json.loads(run(env, "show", library / "coffee.jpg", "--json").stdout)
    assert "user/Grandma's cup" in json.dumps(shown)
    subjects = by_exiftool(library / "coffee.jpg.xmp")
    flat = [k for ks in subjects.values() for k in ks]
    assert "Grandma's cup" in flat
    assert not any(
        k.endswith(wrong.rsplit("/", 1)[-1]) and wrong.split("/")[0] in k for k in flat if "|" in k
    )


def test_catalogue_of_items_from_the_cli_and_the_api(
    server: Server, library: Path, env: dict[str, str], tmp_path: Path
) -> None:
    meta = tmp_path / "items.csv"
    meta.write_text(
        "image,url,price\ncoffee.jpg,https://shop.example/cup,12.50\ncat.png,https://shop.example/cat,99\n"
    )
    r = run(
        env, "catalog", "add", "shop", library / "coffee.jpg", library / "cat.png", "--meta", meta
    )
    assert r.returncode == 0, r.stderr
    assert "2 added" in r.stderr
    r = run(env, "catalog", "similar", "shop", library / "cat copy.jpg", "--json")
    first = json.loads(r.stdout.splitlines()[0])
    assert first["key"] == "cat.png" and first["fields"] == {
        "url": "https://shop.example/cat",
        "price": "99",
    }
    with server.client() as c:
        assert c.get("/v1/catalogs").json()["results"] == ["shop"]
        r = c.post("/v1/catalogs/shop/similar", content=jpeg_bytes(sample("coffee"), quality=70))
        items = r.json()["results"]
        assert items[0]["key"] == "coffee.jpg" and items[0]["fields"]["price"] == "12.50"
        assert items[0]["score"] > items[1]["score"]
        assert c.post("/v1/catalogs/nosuch/similar", content=b"x").status_code == 400
        assert c.post("/v1/catalogs/..%2Fx/similar", content=b"x").status_code in (400, 404)
    assert run(env, "catalog", "add", "../evil", library / "cat.png").returncode == 2


def test_token_required_when_set(library: Path, env: dict[str, str], tmp_path: Path) -> None:
    token = "t" * 40
    s = start(env, log=tmp_path / "log", token=token)
    try:
        with httpx.Client(base_url=s.url) as anon:
            assert anon.get("/v1/tags").status_code == 401
            assert (
                anon.get("/v1/tags", headers={"Authorization": "Bearer wrong"}).status_code == 401
            )
            assert anon.get("/", params={"token": token}).status_code == 200
            assert anon.cookies.get("phototag_token") == token
            assert anon.get("/v1/tags").status_code == 200  # the page's cookie
        with s.client() as c:
            assert c.get("/v1/tags").status_code == 200
    finally:
        assert s.stop() == 0


def test_sigterm_finishes_requests_in_flight(
    library: Path, env: dict[str, str], tmp_path: Path
) -> None:
    s = start(env, "--batch-wait-ms", "1000", log=tmp_path / "log")
    got: list[int] = []

    def request() -> None:
        with s.client() as c:
            got.append(
                c.post("/v1/recognize", content=(library / "coffee.jpg").read_bytes()).status_code
            )

    t = threading.Thread(target=request)
    t.start()
    with s.client() as c:  # wait until the request is in the server (observable, no sleep)
        while c.get("/v1/health").json()["in_flight"] < 1:
            time.sleep(0.01)
    assert s.stop() == 0
    t.join()
    assert got == [200]


def test_host_header_must_be_loopback_on_loopback(server: Server) -> None:
    with server.client() as c:
        r = c.get("/v1/tags", headers={"Host": "evil.example"})
        assert r.status_code == 421
        assert c.get("/v1/tags", headers={"Host": "localhost:1234"}).status_code == 200


def test_the_documented_systemd_unit_runs_and_stops_cleanly(
    tmp_path: Path, env: dict[str, str]
) -> None:
    import re
    import shlex
    import signal

    from serving import free_port

    doc = (Path(__file__).resolve().parents[1] / "docs" / "serve.md").read_text()
    unit = re.search(r"<!-- systemd-serve:.*?\n```ini\n(.*?)```", doc, re.S)
    assert unit
    (cmd,) = [
        ln.split("=", 1)[1] for ln in unit.group(1).splitlines() if ln.startswith("ExecStart=")
    ]
    home = tmp_path / "home"
    (home / ".phototag" / "bin").mkdir(parents=True)
    (home / ".phototag" / "bin" / "phototag").symlink_to(Path(sys.executable).with_name("phototag"))
    port = free_port()
    argv = shlex.split(cmd.replace("%h", str(home)).replace("--port 8600", f"--port {port}"))
    with open(tmp_path / "log", "wb") as log:
        proc = subprocess.Popen(argv, env={**os.environ, **env, "HOME": str(home)},
                                stdout=log, stderr=log)  # fmt: skip
    try:
        while True:  # until it answers (or has died)
            assert proc.poll() is None, (tmp_path / "log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)  # what systemctl stop sends
        assert proc.wait(60) == 0


def test_people_and_their_faces(server: Server, env: dict[str, str]) -> None:
    with server.client() as c:
        (person,) = c.get("/v1/people").json()["results"]
        assert person["photos"] == 1 and person["name"] is None
        assert run(env, "people", "name", str(person["id"]), "Eileen").returncode == 0
        (person,) = c.get("/v1/people").json()["results"]
        assert person["name"] == "Eileen"
        found = c.get("/v1/photos", params={"person": "Eileen"}).json()
        assert [Path(p["path"]).name for p in found["results"]] == ["astronaut.jpg"]
        face = c.get(f"/v1/faces/{person['face']}/thumbnail", params={"size": 64})
        assert face.headers["content-type"] == "image/jpeg"
        assert max(Image.open(io.BytesIO(face.content)).size) <= 64
        assert c.get("/v1/faces/999999/thumbnail").status_code == 404
        assert c.get("/v1/photos", params={"person": "Nobody"}).status_code == 400
