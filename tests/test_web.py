"""The demo page server: static files, product API, photos, and the chat proxy's input checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from retrieval.store import ProductStore
from shopbot.settings import Settings
from shopbot.stack import free_port
from shopbot.web import create_app


@pytest.fixture
async def client(sample_store: ProductStore, tmp_path: Path) -> AsyncIterator[TestClient]:
    # No Rasa listens on this port: the proxy must say so instead of failing.
    settings = Settings(store_dir=sample_store.store_dir, rasa_port=free_port())
    async with TestClient(TestServer(create_app(settings, sample_store))) as test_client:
        yield test_client


async def test_index_and_static_files(client: TestClient) -> None:
    index = await client.get("/")
    assert index.status == 200 and "<html" in (await index.text()).lower()
    script = await client.get("/static/demo.js")
    assert script.status == 200


async def test_products_api(client: TestClient) -> None:
    response = await client.get("/api/products?limit=7")
    payload = await response.json()
    assert len(payload["products"]) == 7 and payload["total"] > 100
    types = [card["article_type"] for card in payload["products"]]
    assert len(set(types)) == 7, "the grid shows the range, one product per type"
    assert (await client.get("/api/products?limit=abc")).status == 400


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("not json", 400),
        ('{"sender": "a"}', 400),
        ('{"sender": "../etc", "message": "hi"}', 400),
        ('{"sender": "a", "message": 5}', 400),
        ('{"sender": "a", "message": "   "}', 400),
        ('[1, 2]', 400),
    ],
)
async def test_chat_rejects_malformed_payloads(client: TestClient, body: str, status: int) -> None:
    response = await client.post("/api/chat", data=body,
                                 headers={"Content-Type": "application/json"})
    assert response.status == status
    assert (await response.json())["error"]


async def test_chat_rejects_huge_messages(client: TestClient) -> None:
    long = await client.post("/api/chat", json={"sender": "a", "message": "x" * 5000})
    assert long.status == 413 and "too long" in (await long.json())["error"]
    huge = await client.post("/api/chat", json={"sender": "a", "message": "x" * 200_000})
    assert huge.status == 413


async def test_chat_with_rasa_down_answers_clearly(client: TestClient) -> None:
    response = await client.post("/api/chat", json={"sender": "a", "message": "hello"})
    assert response.status == 503
    assert "not reachable" in (await response.json())["error"]


async def test_images_are_served_only_from_the_store_folder(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "42.jpg").write_bytes(b"\xff\xd8\xff\xe0fakejpeg")
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    store = ProductStore(tmp_path / "store")
    store.write_meta(images_dir=str(photos))
    app = create_app(Settings(store_dir=store.store_dir), store)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/images/42.jpg")).status == 200
        assert (await client.get("/images/43.jpg")).status == 404
        assert (await client.get("/images/..%2Fsecret.jpg")).status == 404
        assert (await client.get("/images/x.exe")).status == 404
