"""End to end over REST and the demo page: recommendations learn from what a shopper opens,
and a photo upload finds products of the same kind.

With the shared data present the stack runs on a small shop cut from the real catalog (six
article types, real photos, the photo head trained by `shopbot images train`: see the
``photo_shop`` fixture); without it, on the bundled sample catalog, and the photo tests skip.
"""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from actions.search import what_it_looks_like
from retrieval.images.classifier import ImageClassifier
from shopcore.images import load_image
from tests.conftest import REAL_IMAGES
from tests.e2e import HELD_OUT, PhotoShop, card_ids, chat, post_json, texts, upload

pytestmark = pytest.mark.e2e


def test_viewing_two_products_changes_the_recommendations(photo_shop: PhotoShop) -> None:
    stack, store = photo_shop.stack, photo_shop.store
    sender = "e2e-recommend"
    before = chat(stack, sender, "recommend me something")
    assert card_ids(before), texts(before)
    assert "don't know your taste yet" in texts(before)

    watches = chat(stack, sender, "show me watches")
    shown = card_ids(watches)
    assert len(shown) >= 2
    first = chat(stack, sender, "tell me about the first one")
    second = chat(stack, sender, "tell me about the second one")
    assert card_ids(first) == [shown[0]] and card_ids(second) == [shown[1]]

    after = chat(stack, sender, "recommend me something")
    picks = card_ids(after)
    assert picks and picks != card_ids(before)
    assert not {shown[0], shown[1]} & set(picks), "what they just opened isn't repeated"
    assert "from what you've looked at" in texts(after)
    assert "because" in texts(after)
    assert store.get(picks)[0].article_type == "Watches"


def test_similar_button_payload_over_rest(photo_shop: PhotoShop) -> None:
    stack, store = photo_shop.stack, photo_shop.store
    shown = card_ids(chat(stack, "e2e-similar", "show me watches"))
    reply = chat(stack, "e2e-similar", f'/recommend_products{{"product_id": "{shown[0]}"}}')
    picks = card_ids(reply)
    assert picks and shown[0] not in picks
    assert texts(reply).startswith("Similar to the")
    assert store.get(picks)[0].article_type == "Watches"


def test_uploading_a_real_photo_finds_the_same_kind_of_product(photo_shop: PhotoShop) -> None:
    if not photo_shop.held_out:
        pytest.skip("real catalog photos not available")
    stack, store = photo_shop.stack, photo_shop.store
    classifier = ImageClassifier.load(store.store_dir)
    recognised = 0
    for product in photo_shop.held_out[::HELD_OUT]:  # one unseen photo per article type
        photo = (REAL_IMAGES / f"{product.id}.jpg").read_bytes()
        status, stored = upload(stack, photo)
        assert status == 201, stored
        messages = chat(stack, "e2e-photo", "", upload=stored["ref"])
        picks = store.get(card_ids(messages))
        assert picks, texts(messages)
        same = sum(p.article_type == product.article_type for p in picks)
        assert same >= len(picks) - 1, (product.article_type, [p.article_type for p in picks])
        # The reply says exactly what the shop's photo head sees in this photo...
        seen = classifier.classify(load_image(photo))
        assert what_it_looks_like(seen) in texts(messages)
        recognised += seen.confident and seen.article_type == product.article_type
    # ...and on these six kinds of product it is sure, and right, for most unseen photos.
    assert recognised >= 4, recognised


def test_photo_then_cheaper_keeps_the_kind_and_lowers_the_price(photo_shop: PhotoShop) -> None:
    if not photo_shop.held_out:
        pytest.skip("real catalog photos not available")
    stack, store = photo_shop.stack, photo_shop.store
    shoe = next(p for p in photo_shop.held_out if p.article_type == "Casual Shoes")
    _, stored = upload(stack, (REAL_IMAGES / f"{shoe.id}.jpg").read_bytes())
    first = store.get(card_ids(chat(stack, "e2e-photo-2", "shoes like these",
                                    upload=stored["ref"])))
    reply = chat(stack, "e2e-photo-2", "show me cheaper ones")
    cheaper = store.get(card_ids(reply))
    assert cheaper and all(p.article_type == "Casual Shoes" for p in cheaper)
    # As for a text search: the look-alikes within the lower budget come first, cheapest
    # first; when there are fewer than a page, the closest ones above it follow, and the
    # reply says so.
    found = re.search(r"I found (\d+) like it; after those come the closest matches outside "
                      r"that price range", texts(reply))
    within = cheaper[:int(found.group(1))] if found else cheaper
    assert within and max(p.final_price for p in within) < max(p.final_price for p in first)
    prices = [p.final_price for p in within]
    assert prices == sorted(prices)


def test_a_bad_photo_gets_a_clear_answer_and_is_not_kept(photo_shop: PhotoShop) -> None:
    stack = photo_shop.stack
    status, body = upload(stack, b"this is not a picture at all", name="fake.jpg")
    assert status == 415 and "isn't a picture" in body["error"]
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, "JPEG")
    status, stored = upload(stack, buffer.getvalue()[:200])  # truncated
    assert status == 400 and "damaged" in stored["error"]
    uploads = photo_shop.uploads_dir
    before = sorted(p.name for p in uploads.glob("*")) if uploads.exists() else []
    status, reply = post_json(f"{stack.web_url}/api/chat",
                              {"sender": "e2e-photo-3", "message": "",
                               "upload": "0" * 32 + ".jpg"})
    assert status == 400
    after = sorted(p.name for p in uploads.glob("*")) if uploads.exists() else []
    assert before == after
    asked = chat(stack, "e2e-photo-3", "can i send you a picture")
    assert "attach" in texts(asked).lower()
