"""The server's recognition in-process: its requests go through the one tagging path
(phototag/tagger.py), batched, with a fake at the onnxruntime boundary (fast, no model run).

The end-to-end tests with the real models and a real socket are in tests/test_serve.py."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pytest
from conftest import counting_predicts, jpeg_bytes, sample

from phototag.media.imaging import decode, preprocess
from phototag.models.catalog import Catalog
from phototag.serve.app import create_app
from phototag.serve.recognition import Recognition
from phototag.serve.settings import ServeSettings
from phototag.tagging.tagger import Tagger

# Query parameters of concurrent requests: the defaults, two backbones, a detector alone,
# one recognizer (the source service's shape) at its own threshold and top-k.
REQUESTS: list[dict[str, Any]] = [
    {},
    {"model": ["object", "scene"], "threshold": 0.0, "top_k": 3},
    {"model": ["people"], "top_k": 1},
    {"model": ["food"], "threshold": 0.0, "top_k": 5},
]


def expected(data: bytes, params: dict[str, Any], catalog: Catalog) -> list[dict[str, Any]]:
    """What the one tagging path says about ``data`` alone (a Tagger run on one photo)."""
    from phototag.config import DEFAULT_THRESHOLD, DEFAULT_TOP_K

    tagger = Tagger.resolve(
        params.get("model"),
        catalog=catalog,
        threshold=params.get("threshold", DEFAULT_THRESHOLD),
        top_k=params.get("top_k", DEFAULT_TOP_K),
    )
    backbones = list(tagger.backbones.values())
    photo = decode(
        data, min_side=max(b.manifest.preprocess.resize for b in backbones), max_pixels=10**8
    )
    (result,) = tagger.run(
        [{b.name: preprocess(photo.image, b.manifest.preprocess) for b in backbones}]
    )
    return [{"model": m, "candidates": [c.as_json() for c in cs]} for m, cs in result.tags.items()]


def same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> bool:
    """The same models and tags in the same order, scores equal up to the rounding of a
    batch against a photo alone."""

    def tags(results: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
        return [(r["model"], [c["path"] for c in r["candidates"]]) for r in results]

    def scores(results: list[dict[str, Any]]) -> list[float]:
        return [c["score"] for r in results for c in r["candidates"]]

    return tags(got) == tags(want) and np.allclose(scores(got), scores(want), atol=2e-4)


def test_concurrent_requests_are_tagged_in_one_batch_as_the_tagger_tags_each(
    fake_onnx: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = counting_predicts(monkeypatch)
    # A full batch goes at once; the long wait only makes sure the four requests meet.
    settings = ServeSettings(max_batch=len(REQUESTS), batch_wait=30.0)
    app = create_app(settings)
    images = [jpeg_bytes(sample(n)) for n in ("coffee", "chelsea", "astronaut", "rocket")]

    async def go() -> tuple[list[httpx.Response], list[int]]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8600") as c:
            before = (await c.get("/v1/health")).json()["batches"]
            answers = await asyncio.gather(
                *(c.post("/v1/recognize", params=p, content=data)
                  for p, data in zip(REQUESTS, images, strict=True))
            )  # fmt: skip
            after = (await c.get("/v1/health")).json()["batches"]
            return list(answers), [before, after]

    answers, (before, after) = asyncio.run(go())
    assert [a.status_code for a in answers] == [200] * len(REQUESTS), [a.text for a in answers]
    assert after - before == 1  # one batch...
    assert sorted(calls) == [("centernet", 2), ("efficientnet-lite0", 3)]  # ...one predict each
    catalog = Catalog.discover()
    for params, data, answer in zip(REQUESTS, images, answers, strict=True):
        body = answer.json()
        assert body["jobId"]
        assert same(body["results"], expected(data, params, catalog)), params
    # The defaults are a scan's; one recognizer is also at the top level.
    assert [r["model"] for r in answers[0].json()["results"]] == [
        r.name for r in Tagger.resolve(catalog=catalog).recognizers
    ]
    food = answers[3].json()
    assert food["model"] == "food" and food["candidates"] == food["results"][0]["candidates"]
    assert len(food["candidates"]) == 5
    assert len(answers[2].json()["candidates"]) <= 1


def test_an_unknown_recognizer_or_embedding_backbone_is_a_404(fake_onnx: type) -> None:
    recognition = Recognition()
    app = create_app(ServeSettings(), recognition)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8600") as c:
            return await c.post(
                "/v1/recognize", params={"model": "nosuch"}, content=jpeg_bytes(sample("coffee"))
            )

    r = asyncio.run(go())
    assert r.status_code == 404 and "no recognizer named 'nosuch'" in r.json()["error"]
    from phototag.errors import UnknownModelError

    with pytest.raises(UnknownModelError, match="no backbone named 'nosuch'"):
        recognition.prepare(
            jpeg_bytes(sample("coffee")), ["food"], threshold=0.1, top_k=3, embed=["nosuch"]
        )


def test_requests_share_the_servers_backbones_and_get_the_embeddings_they_ask_for(
    fake_onnx: type,
) -> None:
    recognition = Recognition()
    data = jpeg_bytes(sample("chelsea"))
    first = recognition.prepare(data, ["animal"], threshold=0.1, top_k=3)
    second = recognition.prepare(
        data, ["people"], threshold=0.1, top_k=3, embed=["efficientnet-lite0"]
    )
    assert (
        first.tagger.backbones["efficientnet-lite0"]
        is second.tagger.backbones["efficientnet-lite0"]
    )
    assert list(second.inputs) == ["centernet", "efficientnet-lite0"]
    a, b = recognition.run([first, second])
    assert list(a.candidates) == ["animal"] and a.embeddings == {}
    assert list(b.candidates) == ["people"] and list(b.embeddings) == ["efficientnet-lite0"]
    (alone,) = first.tagger.run([first.inputs])
    np.testing.assert_allclose(
        b.embeddings["efficientnet-lite0"], alone.embeddings["efficientnet-lite0"], atol=1e-5
    )  # a batch of two against one alone: the same up to float rounding
