"""End to end over REST and the demo page: recommendations learn from what a shopper opens,
and a photo upload finds products of the same kind.

With the shared data present the stack runs on a small shop cut from the real catalog (six
article types, real photos, the photo head trained by `shopbot images train`); without it,
on the bundled sample catalog, and the photo tests skip.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from retrieval.catalog import Product, load_catalog
from retrieval.store import ProductStore
from shopbot.settings import PROJECT_ROOT, Settings, get_settings
from shopbot.stack import Stack, free_port, train_bot
from tests.conftest import REAL_CATALOG, REAL_IMAGES

pytestmark = pytest.mark.e2e

PHOTO_TYPES = ("Tshirts", "Watches", "Casual Shoes", "Handbags", "Jeans", "Sunglasses")
PER_TYPE = 40
HELD_OUT = 3


def shopbot_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shopbot.cli", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=900)


def photo_shop(root: Path) -> tuple[Path, list[Product]]:
    """Ingest a slice of the real catalog with photos, and train the photo head on it."""
    present = {p.stem for p in REAL_IMAGES.glob("*.jpg")}
    products, _ = load_catalog(REAL_CATALOG)
    chosen: dict[str, list[Product]] = {t: [] for t in PHOTO_TYPES}
    for product in sorted(products, key=lambda p: int(p.id)):
        group = chosen.get(product.article_type)
        if group is not None and product.id in present and len(group) < PER_TYPE + HELD_OUT:
            group.append(product)
    shop = [p for group in chosen.values() for p in group[:PER_TYPE]]
    held_out = [p for group in chosen.values() for p in group[PER_TYPE:]]
    images = root / "images"
    images.mkdir()
    for product in shop:
        (images / f"{product.id}.jpg").symlink_to(REAL_IMAGES / f"{product.id}.jpg")
    catalog = root / "catalog.jsonl"
    catalog.write_text("".join(p.model_dump_json() + "\n" for p in shop), encoding="utf-8")
    store = root / "store"
    for args in (("ingest", str(catalog), "--images", str(images), "--store", str(store)),
                 ("images", "train", "--images", str(images), "--catalog", str(catalog),
                  "--store", str(store), "--views", "2")):
        done = shopbot_cli(*args)
        assert done.returncode == 0, done.stderr[-3000:]
    return store, held_out


@pytest.fixture(scope="module")
def shop(
    sample_store_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    run_dir = tmp_path_factory.mktemp("shopping")
    with_photos = REAL_CATALOG.is_file() and REAL_IMAGES.is_dir()
    store_dir, held_out = photo_shop(run_dir) if with_photos else (sample_store_dir, [])
    model = train_bot(get_settings().models_dir)
    settings = Settings(
        store_dir=store_dir, rasa_port=free_port(), action_port=free_port(),
        web_port=free_port(), tracker_db=run_dir / "tracker.db",
        events_db=run_dir / "events.db", shop_db=run_dir / "shop.db",
        uploads_dir=run_dir / "uploads",
    )
    running = Stack(settings, model, log_dir=run_dir / "logs")
    running.start()
    yield {"stack": running, "store": ProductStore(store_dir), "held_out": held_out,
           "uploads": settings.uploads_dir}
    running.stop()


def post_json(url: str, payload: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def say(stack: Stack, sender: str, text: str) -> list[dict[str, Any]]:
    status, messages = post_json(f"{stack.web_url}/api/chat",
                                 {"sender": sender, "message": text})
    assert status == 200, messages
    return messages["messages"] if isinstance(messages, dict) else messages


def upload(stack: Stack, data: bytes, name: str = "photo.jpg") -> tuple[int, Any]:
    boundary = "shopbot-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{name}\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"{stack.web_url}/api/upload", data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def texts(messages: list[dict[str, Any]]) -> str:
    return "\n".join(m.get("text", "") for m in messages)


def card_ids(messages: list[dict[str, Any]]) -> list[str]:
    return [c["id"] for m in messages if (m.get("custom") or {}).get("type") == "product_cards"
            for c in m["custom"]["products"]]


def test_viewing_two_products_changes_the_recommendations(shop: dict[str, Any]) -> None:
    stack, store = shop["stack"], shop["store"]
    sender = "e2e-recommend"
    before = say(stack, sender, "recommend me something")
    assert card_ids(before), texts(before)
    assert "don't know your taste yet" in texts(before)

    watches = say(stack, sender, "show me watches")
    shown = card_ids(watches)
    assert len(shown) >= 2
    first = say(stack, sender, "tell me about the first one")
    second = say(stack, sender, "tell me about the second one")
    assert card_ids(first) == [shown[0]] and card_ids(second) == [shown[1]]

    after = say(stack, sender, "recommend me something")
    picks = card_ids(after)
    assert picks and picks != card_ids(before)
    assert not {shown[0], shown[1]} & set(picks), "what they just opened isn't repeated"
    assert "from what you've looked at" in texts(after)
    assert "because" in texts(after)
    assert store.get(picks)[0].article_type == "Watches"


def test_similar_button_payload_over_rest(shop: dict[str, Any]) -> None:
    stack, store = shop["stack"], shop["store"]
    shown = card_ids(say(stack, "e2e-similar", "show me watches"))
    reply = say(stack, "e2e-similar", f'/recommend_products{{"product_id": "{shown[0]}"}}')
    picks = card_ids(reply)
    assert picks and shown[0] not in picks
    assert texts(reply).startswith("Similar to the")
    assert store.get(picks)[0].article_type == "Watches"


def test_uploading_a_real_photo_finds_the_same_kind_of_product(shop: dict[str, Any]) -> None:
    if not shop["held_out"]:
        pytest.skip("real catalog photos not available")
    stack, store = shop["stack"], shop["store"]
    for product in shop["held_out"][::HELD_OUT]:  # one unseen photo per article type
        status, stored = upload(stack, (REAL_IMAGES / f"{product.id}.jpg").read_bytes())
        assert status == 201, stored
        status, reply = post_json(f"{stack.web_url}/api/chat",
                                  {"sender": "e2e-photo", "message": "", "upload": stored["ref"]})
        assert status == 200, reply
        messages = reply["messages"] if isinstance(reply, dict) else reply
        picks = store.get(card_ids(messages))
        assert picks, texts(messages)
        same = sum(p.article_type == product.article_type for p in picks)
        assert same >= len(picks) - 1, (product.article_type, [p.article_type for p in picks])
        assert "Looks like" in texts(messages) or "not sure" in texts(messages)


def test_photo_then_cheaper_keeps_the_kind_and_lowers_the_price(shop: dict[str, Any]) -> None:
    if not shop["held_out"]:
        pytest.skip("real catalog photos not available")
    stack, store = shop["stack"], shop["store"]
    shoe = next(p for p in shop["held_out"] if p.article_type == "Casual Shoes")
    _, stored = upload(stack, (REAL_IMAGES / f"{shoe.id}.jpg").read_bytes())
    _, reply = post_json(f"{stack.web_url}/api/chat",
                         {"sender": "e2e-photo-2", "message": "shoes like these",
                          "upload": stored["ref"]})
    first = store.get(card_ids(reply["messages"] if isinstance(reply, dict) else reply))
    cheaper = store.get(card_ids(say(stack, "e2e-photo-2", "show me cheaper ones")))
    assert cheaper and all(p.article_type == "Casual Shoes" for p in cheaper)
    assert max(p.final_price for p in cheaper) < max(p.final_price for p in first)


def test_a_bad_photo_gets_a_clear_answer_and_is_not_kept(shop: dict[str, Any]) -> None:
    stack = shop["stack"]
    status, body = upload(stack, b"this is not a picture at all", name="fake.jpg")
    assert status in (400, 415) and body["error"]
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, "JPEG")
    status, stored = upload(stack, buffer.getvalue()[:200])  # truncated
    assert status in (400, 415)
    before = sorted(p.name for p in shop["uploads"].glob("*")) if shop["uploads"].exists() else []
    status, reply = post_json(f"{stack.web_url}/api/chat",
                              {"sender": "e2e-photo-3", "message": "",
                               "upload": "0" * 32 + ".jpg"})
    assert status == 400
    after = sorted(p.name for p in shop["uploads"].glob("*")) if shop["uploads"].exists() else []
    assert before == after
    asked = say(stack, "e2e-photo-3", "can i send you a picture")
    assert "attach" in texts(asked).lower()
