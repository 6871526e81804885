"""The server's guard (token, Host header, body limit) in-process, without models or a socket."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from phototag.errors import ConfigError
from phototag.serve.app import create_app
from phototag.serve.settings import ServeSettings, is_loopback


def get(app: object, path: str, **kw: object) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8600") as c:
            return await c.get(path, **kw)  # type: ignore[arg-type]

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("192.168.1.2", False), ("::", False), ("example.org", False)],
)  # fmt: skip
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_non_loopback_address_without_a_token_is_refused() -> None:
    with pytest.raises(ConfigError, match="needs a token"):
        create_app(ServeSettings(host="0.0.0.0"))


def test_with_a_token_every_request_needs_it(tmp_path: object) -> None:
    app = create_app(ServeSettings(host="0.0.0.0", token="s" * 32))
    assert get(app, "/v1/health").status_code == 401
    assert (
        get(app, "/v1/health", headers={"Authorization": "Bearer " + "s" * 31}).status_code == 401
    )
    r = get(app, "/v1/health", headers={"Authorization": "Bearer " + "s" * 32})
    assert r.status_code == 200 and r.json()["status"] == "ok"
    # Bound elsewhere, any Host is fine (the token is the guard there).
    assert (
        get(
            app, "/v1/health", headers={"Authorization": "Bearer " + "s" * 32, "Host": "nas.local"}
        ).status_code
        == 200
    )


def test_on_loopback_a_foreign_host_header_is_refused() -> None:
    app = create_app(ServeSettings())
    assert get(app, "/v1/health").status_code == 200
    assert get(app, "/v1/health", headers={"Host": "attacker.example:8600"}).status_code == 421
    assert get(app, "/v1/health", headers={"Host": "[::1]:8600"}).status_code == 200
