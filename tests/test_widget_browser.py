"""The chat widget in real headless Chromium, against the real stack on loopback.

Rasa, the action server and the web server run as in ``make run`` (the ``photo_shop``
fixture, shared with test_shopping_e2e.py); Playwright drives Debian's ``/usr/bin/chromium``
(no browser download). With the real catalog in ../shared/data the shop is a slice of it
with photos, so cards show real pictures and the upload is a real catalog photo; without
it, the sample catalog and a generated picture. Screenshots go to test-artifacts/; with
SHOPBOT_README_SCREENSHOT=1 the README's docs/widget.png is rewritten too.

The server decides who the shopper is (an HttpOnly session cookie, or a shop's customer
token): the tests read the cookie from the browser context, never from the page. The
test stack accepts customer tokens signed with CUSTOMER_SECRET.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from PIL import Image

from shopbot.identity import SESSION_COOKIE
from shopbot.stack import Stack, free_port
from shopcore.settings import PROJECT_ROOT
from shopcore.uploads import REF_PATTERN
from tests.conftest import CUSTOMER_TOKEN_SECRET
from tests.e2e import PhotoShop

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} missing: apt-get install -y chromium"),
]

SCREENSHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
README_SCREENSHOT = PROJECT_ROOT / "docs" / "widget.png"
WAIT_MS = 90_000  # one bot turn on two busy cores; generous, never a timing assertion
WIDGET = "document.getElementById('shopbot-widget').shadowRoot"
SESSION = "ShopbotWidget.session()"
CUSTOMER_SECRET = CUSTOMER_TOKEN_SECRET  # the shop backend's key in the test stacks


@pytest.fixture(scope="module")
def shop(photo_shop: PhotoShop) -> PhotoShop:
    return photo_shop


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


@contextmanager
def browser_page(browser: Any, **options: Any) -> Iterator[Any]:
    """A page in a context of its own (its own cookies: a second person at another computer)."""
    context = browser.new_context(viewport={"width": 1200, "height": 800}, **options)
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (empty localStorage) per test."""
    with browser_page(browser, locale="en-IN") as opened:
        yield opened


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path))
    return path


def open_chat(page: Any, url: str) -> None:
    page.goto(url)
    page.get_by_test_id("chat-toggle").click()
    page.get_by_test_id("chat-input").wait_for()


def say(page: Any, text: str) -> None:
    """Type and send, then wait until the bot's answer is in."""
    before = bot_items(page)
    page.get_by_test_id("chat-input").fill(text)
    page.get_by_test_id("chat-send").click()
    wait_for_answer(page, before)


def bot_items(page: Any) -> int:
    return page.evaluate(f"{WIDGET}.querySelectorAll('.sbw-msg--bot').length")


def wait_for_answer(page: Any, before: int) -> None:
    page.wait_for_function(
        f"() => {WIDGET}.querySelectorAll('.sbw-msg--bot').length > {before}"
        f" && {WIDGET}.querySelector('[data-testid=chat-typing]').hidden", timeout=WAIT_MS)


def user_bubbles(page: Any) -> list[str]:
    return [t.strip() for t in page.get_by_test_id("user-message").all_inner_texts()]


def session_cookie(page: Any) -> dict[str, Any] | None:
    """The server's session cookie as the browser keeps it (HttpOnly: not the page's)."""
    found = [c for c in page.context.cookies() if c["name"] == SESSION_COOKIE]
    assert len(found) <= 1, found
    return found[0] if found else None


def cookie_value(page: Any) -> str:
    cookie = session_cookie(page)
    assert cookie is not None, "the server set no session cookie"
    return cookie["value"]


CONTRAST_JS = """
(selectors) => {
  const root = document.getElementById('shopbot-widget').shadowRoot;
  const parse = (c) => {
    const p = c.match(/[\\d.]+/g).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const background = (node) => {
    for (; node; node = node.parentNode || node.host) {
      if (node.nodeType !== 1) continue;
      const c = parse(getComputedStyle(node).backgroundColor);
      if (c.a > 0.5) return c;
    }
    return {r: 255, g: 255, b: 255, a: 1};
  };
  const out = [];
  for (const selector of selectors) {
    for (const node of root.querySelectorAll(selector)) {
      if (!node.offsetParent && getComputedStyle(node).position !== 'fixed') continue;
      const fg = lum(parse(getComputedStyle(node).color));
      const bg = lum(background(node));
      const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
      out.push({selector, ratio: Math.round(ratio * 100) / 100});
      break;
    }
  }
  return out;
}
"""
TEXT_SELECTORS = [".sbw-title", ".sbw-subtitle", ".sbw-bubble--user", ".sbw-bubble--bot",
                  ".sbw-card__brand", ".sbw-card__name", ".sbw-price__final", ".sbw-price__mrp",
                  ".sbw-price__off", ".sbw-card__btn", ".sbw-card__btn--primary",
                  ".sbw-quick-reply", ".sbw-input"]


def test_search_shows_cards_and_add_to_cart_sends_the_intent(page: Any, shop: PhotoShop) -> None:
    open_chat(page, shop.stack.web_url)
    say(page, shop.query)
    cards = page.get_by_test_id("chat-product-card")
    cards.first.wait_for()
    assert cards.count() >= 2
    first = cards.first
    product_id = first.get_attribute("data-product-id")
    name = first.locator(".sbw-card__name").inner_text()
    assert product_id and name
    # Above the cards an intro sentence, not the text channels' numbered list of the same
    # products with their internal ids.
    intro = page.get_by_test_id("bot-message").last.inner_text()
    assert intro and name not in intro and f"id {product_id}" not in intro
    assert not re.search(r"^\s*1\. ", intro, re.MULTILINE), intro
    assert "₹" in first.locator(".sbw-price__final").inner_text()
    for label in ("Add to cart", "Details", "Similar"):
        assert first.get_by_role("button", name=label).is_visible()
    if shop.photo is not None:
        image = first.get_by_test_id("product-image")
        assert image.get_attribute("alt") == name
        page.wait_for_function(
            f"() => [...{WIDGET}.querySelectorAll('[data-testid=product-image]')].slice(0, 2)"
            ".every(img => img.complete && img.naturalWidth > 0)")
    else:
        assert first.locator(".sbw-ph").is_visible(), "no photo: a labelled placeholder"

    ratios = page.evaluate(CONTRAST_JS, TEXT_SELECTORS)
    assert {r["selector"] for r in ratios} >= {".sbw-card__name", ".sbw-bubble--user"}
    low = [r for r in ratios if r["ratio"] < 4.5]
    assert not low, f"text below 4.5:1 contrast: {low}"
    log = page.get_by_test_id("chat-log")
    assert log.get_attribute("role") == "log" and log.get_attribute("aria-live") == "polite"
    screenshot(page, "search.png")
    if os.environ.get("SHOPBOT_README_SCREENSHOT") == "1":
        save_readme_screenshot(page)

    before = bot_items(page)
    with page.expect_request(lambda r: r.url.endswith("/api/chat")) as sent:
        first.get_by_role("button", name="Add to cart").click()
    assert sent.value.post_data_json["message"] == (
        '/add_to_cart{"product_id":"' + product_id + '"}')
    wait_for_answer(page, before)
    assert user_bubbles(page)[-1] == f"Add to cart: {name}", "a label, never the payload"
    sizes = page.locator("[data-testid=quick-reply]:not([disabled])")
    if not page.get_by_test_id("chat-cart").count() and sizes.count():
        before = bot_items(page)  # the real bot asks which size: pick the first one
        sizes.first.click()
        wait_for_answer(page, before)
    summary = page.get_by_test_id("chat-cart").last
    summary.wait_for()
    line = summary.get_by_test_id("cart-line")
    assert line.count() == 1 and line.first.get_attribute("data-product-id") == product_id
    assert "₹" in summary.get_by_test_id("cart-total").inner_text()
    screenshot(page, "add-to-cart.png")

    before = bot_items(page)
    summary.get_by_test_id("cart-checkout").click()
    wait_for_answer(page, before)
    assert user_bubbles(page)[-1] == "Checkout"
    assert "address" in page.get_by_test_id("bot-message").last.inner_text().lower()


def save_readme_screenshot(page: Any, path: Path = README_SCREENSHOT) -> None:
    """A small PNG for the README: the page at a modest size, in 256 colours."""
    png = page.screenshot()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.Resampling.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def test_photo_upload_goes_through_the_upload_endpoint(page: Any, shop: PhotoShop,
                                                       tmp_path: Path) -> None:
    photo = shop.photo
    if photo is None:  # no catalog photos here: a generated picture of a red block
        photo = tmp_path / "red-top.png"
        canvas = Image.new("RGB", (480, 640), "white")
        canvas.paste((190, 20, 40), (80, 120, 400, 560))
        canvas.save(photo)
    open_chat(page, shop.stack.web_url)
    page.get_by_test_id("chat-file").set_input_files(str(photo))
    chip = page.get_by_test_id("chat-attachment")
    chip.wait_for()
    assert "Photo ready to send" in chip.inner_text()
    page.get_by_test_id("chat-input").fill("like this but in black")
    before = bot_items(page)
    with page.expect_response(lambda r: r.url.endswith("/api/upload")) as uploaded, \
            page.expect_request(lambda r: r.url.endswith("/api/chat")) as chatted:
        page.get_by_test_id("chat-send").click()
    assert uploaded.value.status == 201
    ref = uploaded.value.json()["ref"]
    assert REF_PATTERN.match(ref) and (shop.uploads_dir / ref).is_file()
    assert chatted.value.post_data_json == {"message": "like this but in black", "upload": ref}, \
        "no sender: the server knows who is asking"
    wait_for_answer(page, before)
    assert chip.is_hidden()
    thumb = page.get_by_test_id("user-photo")
    assert thumb.get_attribute("src").startswith("data:image/jpeg;base64,")
    assert user_bubbles(page)[-1] == "like this but in black"
    screenshot(page, "photo-upload.png")


def test_bad_files_are_refused_before_anything_is_sent(page: Any, shop: PhotoShop) -> None:
    open_chat(page, shop.stack.web_url)
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if "/api/upload" in r.url else None)
    file_input = page.get_by_test_id("chat-file")
    error = page.get_by_test_id("chat-error")

    file_input.set_input_files(files=[{"name": "notes.txt", "mimeType": "text/plain",
                                       "buffer": b"not a photo"}])
    assert "isn't a photo" in error.inner_text()
    too_big = 11 * 1024 * 1024
    file_input.set_input_files(files=[{"name": "huge.jpg", "mimeType": "image/jpeg",
                                       "buffer": b"\xff\xd8\xff" + b"\0" * too_big}])
    assert "too large" in error.inner_text() and "10 MB" in error.inner_text()
    file_input.set_input_files(files=[{"name": "fake.jpg", "mimeType": "image/jpeg",
                                       "buffer": b"this is text pretending to be a jpeg"}])
    page.wait_for_function(f"() => {WIDGET}.querySelector('[data-testid=chat-error]')"
                           ".innerText.includes(\"doesn't look like a picture\")")
    assert error.count() == 1, "one error at a time"
    assert page.get_by_test_id("chat-attachment").is_hidden()
    assert not uploads and not page.get_by_test_id("user-message").count()
    screenshot(page, "bad-file.png")


def test_reload_keeps_the_conversation_and_new_starts_a_new_session(page: Any,
                                                                    shop: PhotoShop) -> None:
    open_chat(page, shop.stack.web_url)
    with page.expect_request(lambda r: r.url.endswith("/api/chat")) as sent:
        say(page, "hello there")
    assert sent.value.post_data_json == {"message": "hello there"}
    first = cookie_value(page)
    assert page.evaluate(SESSION) == {"kind": "anonymous", "customer": None}
    transcript = page.get_by_test_id("chat-log").inner_text()
    page.reload()
    assert page.get_by_test_id("chat-panel").is_visible(), "the open panel stays open"
    assert page.get_by_test_id("chat-log").inner_text() == transcript
    assert cookie_value(page) == first, "the same session after a reload"

    with page.expect_response(lambda r: r.url.endswith("/api/session/new")) as started:
        page.get_by_test_id("chat-reset").click()
    assert started.value.status == 200
    page.get_by_test_id("user-message").first.wait_for(state="detached")
    assert page.get_by_test_id("chat-welcome").is_visible()
    assert cookie_value(page) != first, "a new conversation is a new session"
    assert page.evaluate(SESSION) == {"kind": "anonymous", "customer": None}
    assert page.evaluate(f"{WIDGET}.activeElement.dataset.testid") == "chat-input"
    say(page, "hi again")
    assert user_bubbles(page) == ["hi again"]


def test_the_session_cookie_is_out_of_the_pages_reach(page: Any, shop: PhotoShop) -> None:
    page.goto(shop.stack.web_url)
    assert page.evaluate(SESSION) == {"kind": "anonymous", "customer": None}
    cookie = session_cookie(page)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert SESSION_COOKIE not in page.evaluate("document.cookie")
    stored = page.evaluate("JSON.stringify(Object.assign({}, localStorage, sessionStorage))")
    assert cookie["value"] not in stored and "sender" not in stored
    assert page.evaluate("typeof ShopbotWidget.senderId") == "undefined"


RECORD_SESSION_CHANGES = """
window.sessionChanges = [];
window.addEventListener('shopbot:sessionchange', (e) => window.sessionChanges.push(e.detail));
"""


def test_demo_shopper_switch(page: Any, shop: PhotoShop) -> None:
    page.add_init_script(RECORD_SESSION_CHANGES)
    page.goto(shop.stack.web_url)
    switch = page.get_by_test_id("demo-shopper")
    assert page.evaluate(SESSION)["kind"] == "anonymous"
    first = cookie_value(page)
    assert not switch.is_checked()
    with page.expect_response(lambda r: r.url.endswith("/api/session/demo")) as switched:
        switch.check()
    assert switched.value.status == 200
    assert page.evaluate(SESSION) == {"kind": "demo", "customer": None}
    page.wait_for_function("window.sessionChanges.length === 1")
    assert page.evaluate("window.sessionChanges") == [{"kind": "demo", "customer": None}]
    demo_cookie = cookie_value(page)
    assert demo_cookie != first

    page.reload()
    sync_api.expect(page.get_by_test_id("demo-shopper")).to_be_checked(timeout=WAIT_MS)
    assert page.evaluate(SESSION)["kind"] == "demo", "the choice survives a reload"
    with page.expect_response(lambda r: r.url.endswith("/api/session/new")) as renewed:
        page.get_by_test_id("demo-shopper").uncheck()
    assert renewed.value.status == 200
    assert page.evaluate(SESSION) == {"kind": "anonymous", "customer": None}
    assert cookie_value(page) not in (first, demo_cookie)
    page.wait_for_function("window.sessionChanges.length === 1")  # a new page since the reload
    assert page.evaluate("window.sessionChanges") == [{"kind": "anonymous", "customer": None}]
    assert not page.get_by_test_id("demo-shopper").is_checked()


@pytest.fixture(scope="module")
def real_shop_web(shop: PhotoShop, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second web server of the shop with demo mode off (a real shop), in front of the
    same Rasa."""
    settings = shop.stack.settings.replace(web_port=free_port(), demo=False)
    stack = Stack(settings, shop.stack.model, log_dir=tmp_path_factory.mktemp("real-shop"))
    web = next(service for service in stack.build() if service.name == "web demo")
    web.start()
    try:
        deadline = time.monotonic() + 180
        while not web.is_ready():
            assert web.alive(), f"the web server exited:\n{web.log_tail()}"
            assert time.monotonic() < deadline, f"no answer:\n{web.log_tail()}"
            time.sleep(0.5)
        yield stack.web_url
    finally:
        web.stop()


def test_the_demo_switch_is_not_offered_without_demo_mode(page: Any,
                                                           real_shop_web: str) -> None:
    page.goto(real_shop_web)
    switch = page.get_by_test_id("demo-shopper")
    switch.wait_for(state="hidden")
    assert page.evaluate(SESSION)["kind"] == "anonymous"
    status = page.evaluate("fetch('/api/session/demo', {method: 'POST'}).then(r => r.status)")
    assert status == 404
    assert not page.get_by_test_id("chat-error").count(), "nothing to tell the shopper"


FOCUS_RING = f"() => getComputedStyle({WIDGET}.activeElement).outlineStyle"


def test_keyboard_only(page: Any, shop: PhotoShop) -> None:
    page.goto(shop.stack.web_url)
    focused = f"() => {WIDGET}.activeElement && {WIDGET}.activeElement.dataset.testid"
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate(focused) == "chat-toggle":
            break
    else:
        pytest.fail("the chat button is not reachable with Tab")
    assert page.evaluate(FOCUS_RING) != "none", "a visible focus ring"
    page.keyboard.press("Enter")
    assert page.evaluate(focused) == "chat-input", "opening the chat focuses the input"
    assert page.evaluate(FOCUS_RING) != "none"
    before = bot_items(page)
    page.keyboard.type("hi")
    page.keyboard.press("Enter")
    wait_for_answer(page, before)
    assert user_bubbles(page) == ["hi"]
    page.keyboard.press("Escape")
    assert page.get_by_test_id("chat-panel").is_hidden()
    assert page.evaluate(focused) == "chat-toggle", "closing returns focus to the button"


def test_phone_width(browser: Any, shop: PhotoShop) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True, device_scale_factor=2,
                                  reduced_motion="reduce")
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    try:
        open_chat(page, shop.stack.web_url)
        box = page.get_by_test_id("chat-panel").bounding_box()
        panel = {key: round(value) for key, value in box.items()}
        assert panel == {"x": 0, "y": 0, "width": 390, "height": 844}, "full screen on a phone"
        assert page.get_by_test_id("chat-toggle").is_hidden()
        say(page, shop.query)
        carousel = page.locator(".sbw-carousel").first
        assert carousel.evaluate("el => el.scrollWidth > el.clientWidth"), "cards scroll sideways"
        first = page.get_by_test_id("chat-product-card").first
        product_id = first.get_attribute("data-product-id")
        before = bot_items(page)
        with page.expect_request(lambda r: r.url.endswith("/api/chat")) as sent:
            first.get_by_role("button", name="Details").click()
        assert sent.value.post_data_json["message"] == (
            '/product_details{"product_id":"' + product_id + '"}')
        wait_for_answer(page, before)
        screenshot(page, "phone.png")
    finally:
        context.close()


@contextmanager
def serving(folder: Path, *ports: int) -> Iterator[list[str]]:
    """``folder`` served over http on each of ``ports`` (each its own origin)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    servers = [ThreadingHTTPServer(("127.0.0.1", port), handler) for port in ports]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield [f"http://127.0.0.1:{s.server_address[1]}/" for s in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def other_origins(tmp_path: Path, shop: PhotoShop) -> Iterator[tuple[str, str]]:
    """The same shop page served from an allowed origin and from one that is not."""
    (tmp_path / "index.html").write_text(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Another shop</title>'
        '</head><body><h1>Another shop</h1>'
        f'<script src="{shop.stack.web_url}/static/widget.js" data-init data-title="Ask us"'
        ' data-open="true"></script></body></html>')
    with serving(tmp_path, shop.allowed_origin_port, free_port()) as (allowed, not_allowed):
        yield allowed, not_allowed


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


def test_embedded_on_another_site(page: Any, other_origins: tuple[str, str]) -> None:
    allowed, not_allowed = other_origins
    page.goto(allowed)
    assert page.get_by_test_id("chat-panel").is_visible(), "data-open starts it open"
    assert page.locator(".sbw-title").inner_text() == "Ask us"
    say(page, "hello")
    assert page.get_by_test_id("bot-message").count() >= 1
    assert session_cookie(page) is not None, "the session cookie travels cross-origin too"

    page.goto(not_allowed)
    page.get_by_test_id("chat-input").fill("hello")
    page.get_by_test_id("chat-send").click()
    assert "Couldn't reach" in page.get_by_test_id("chat-error").inner_text()
    assert page.get_by_test_id("chat-retry").is_visible()


# -- a shop's logged-in customers ----------------------------------------------------------

def customer_token(customer: str, expires_in: int) -> str:
    """A token as the shop's backend signs it for a logged-in customer."""
    return jwt.encode({"sub": customer, "exp": int(time.time()) + expires_in}, CUSTOMER_SECRET,
                      algorithm="HS256")


@pytest.fixture
def customer_page(tmp_path: Path, shop: PhotoShop) -> Iterator[str]:
    """The shop's own site (an allowed origin) with the widget for a logged-in customer; the
    test sets ``window.widgetOptions`` (the customerToken option) with an init script."""
    (tmp_path / "index.html").write_text(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>My account</title>'
        '</head><body><h1>My account</h1>'
        f'<script src="{shop.stack.web_url}/static/widget.js"></script>'
        "<script>ShopbotWidget.init(Object.assign({title: 'Ask us', open: true},"
        " window.widgetOptions));</script></body></html>")
    with serving(tmp_path, shop.allowed_origin_port) as (url,):
        yield url


def chat_statuses(page: Any) -> list[int]:
    """Watch /api/chat: the statuses of its answers, in order."""
    statuses: list[int] = []
    page.on("response", lambda r: statuses.append(r.status) if r.url.endswith("/api/chat")
            else None)
    return statuses


def test_a_signed_in_customer_chats_with_their_token(page: Any, customer_page: str) -> None:
    token = customer_token("ann", 600)
    page.add_init_script(f"window.widgetOptions = {{customerToken: {json.dumps(token)}}};")
    page.goto(customer_page)
    assert page.evaluate(SESSION) == {"kind": "customer", "customer": "ann"}
    with page.expect_request(lambda r: r.url.endswith("/api/chat")) as sent:
        say(page, "hello")
    assert sent.value.headers["authorization"] == f"Bearer {token}"
    assert sent.value.post_data_json == {"message": "hello"}
    assert page.get_by_test_id("bot-message").count() >= 1
    assert not page.get_by_test_id("chat-error").count()
    assert token not in page.evaluate("JSON.stringify(Object.assign({}, localStorage))")


def test_a_customers_transcript_is_shown_to_them_only(page: Any, customer_page: str) -> None:
    """Messages are kept in localStorage with whose they are: after a reload as the same
    customer they come back (once the server has confirmed the token), another customer
    signing in on the same browser never sees them."""
    as_customer = "window.widgetOptions = {{customerToken: {}}};"
    page.add_init_script(as_customer.format(json.dumps(customer_token("ann", 600))))
    page.goto(customer_page)
    say(page, "hello")
    page.reload()
    page.get_by_test_id("user-message").first.wait_for()
    assert user_bubbles(page) == ["hello"]

    page.add_init_script(as_customer.format(json.dumps(customer_token("bob", 600))))
    page.reload()
    assert page.evaluate(SESSION) == {"kind": "customer", "customer": "bob"}
    assert not page.get_by_test_id("user-message").count()
    assert page.get_by_test_id("chat-welcome").is_visible()
    assert "hello" not in page.evaluate("JSON.stringify(Object.assign({}, localStorage))")


REFRESHING_TOKENS = """
window.tokenCalls = [];
window.shopToken = %(expired)s;  // what the shop's page holds; stale at first
window.widgetOptions = {customerToken: (options) => {
  window.tokenCalls.push(options.refresh);
  if (options.refresh) window.shopToken = %(fresh)s;  // the backend signs a new one
  return Promise.resolve(window.shopToken);
}};
"""


def test_a_refused_token_is_refreshed_once(page: Any, customer_page: str) -> None:
    tokens = {"expired": json.dumps(customer_token("ann", -60)),
              "fresh": json.dumps(customer_token("ann", 600))}
    page.add_init_script(REFRESHING_TOKENS % tokens)
    page.goto(customer_page)
    assert page.evaluate(SESSION) == {"kind": "customer", "customer": "ann"}
    calls = page.evaluate("window.tokenCalls")
    assert calls[:2] == [False, True] and True not in calls[2:], "one refresh, on load"
    statuses = chat_statuses(page)
    page.evaluate(f"window.shopToken = {json.dumps(customer_token('ann', -1))}")  # expires
    page.evaluate("window.tokenCalls = []")
    say(page, "hello")
    assert statuses == [401, 200], "refused, then sent again with a new token"
    # (after the answer the widget asks once whether a person has written: a plain call)
    calls = page.evaluate("window.tokenCalls")
    assert calls[:2] == [False, True] and True not in calls[2:], "one refresh for the chat"
    assert not page.get_by_test_id("chat-error").count()
    assert page.get_by_test_id("bot-message").count() >= 1


SIGN_IN_EVENTS = """
window.signIns = 0;
window.addEventListener('shopbot:signinrequired', () => { window.signIns += 1; });
"""


@pytest.mark.parametrize("option", ["string", "function"])
def test_an_expired_token_asks_to_sign_in_again(page: Any, customer_page: str,
                                                option: str) -> None:
    expired = json.dumps(customer_token("ann", -60))
    given = expired if option == "string" else f"() => {expired}"
    page.add_init_script(SIGN_IN_EVENTS + f"window.widgetOptions = {{customerToken: {given}}};")
    statuses = chat_statuses(page)
    page.goto(customer_page)
    assert page.evaluate(f"{SESSION}.then(() => 'accepted', (e) => e.status)") == 401
    error = page.get_by_test_id("chat-error")
    page.get_by_test_id("chat-input").fill("where is my order?")
    page.get_by_test_id("chat-send").click()
    page.wait_for_function(f"() => {WIDGET}.querySelector('[data-testid=chat-typing]').hidden")
    assert "Please sign in again" in error.inner_text()
    assert error.count() == 1, "one error at a time"
    assert statuses == ([401] if option == "string" else [401, 401]), "a function: one retry"
    assert page.get_by_test_id("chat-retry").is_visible() == (option == "function")
    assert page.evaluate("window.signIns") >= 2, "the page hears it (on load and on send)"
    assert session_cookie(page) is None, "refused, never downgraded to an anonymous session"
    screenshot(page, f"sign-in-again-{option}.png")


DROP_AND_PASTE_JS = """
async (kind) => {
  const canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 80;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#c0392b'; ctx.fillRect(8, 8, 48, 64);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
  const transfer = new DataTransfer();
  transfer.items.add(new File([blob], 'dress.png', {type: 'image/png'}));
  const root = document.getElementById('shopbot-widget').shadowRoot;
  if (kind === 'paste') {
    root.querySelector('[data-testid=chat-input]').dispatchEvent(new ClipboardEvent(
      'paste', {clipboardData: transfer, bubbles: true, cancelable: true, composed: true}));
    return true;
  }
  const log = root.querySelector('[data-testid=chat-log]');
  const fire = (type) => log.dispatchEvent(new DragEvent(
    type, {dataTransfer: transfer, bubbles: true, cancelable: true, composed: true}));
  fire('dragenter');
  fire('dragover');
  const shown = !root.querySelector('.sbw-drop').hidden;
  fire('drop');
  return shown;
}
"""


def test_drop_and_paste_attach_a_photo(page: Any, shop: PhotoShop) -> None:
    open_chat(page, shop.stack.web_url)
    chip = page.get_by_test_id("chat-attachment")
    assert page.evaluate(DROP_AND_PASTE_JS, "drop"), "dragging a file over shows the drop zone"
    chip.wait_for()
    assert page.locator(".sbw-drop").is_hidden()
    page.get_by_test_id("chat-attachment-remove").click()
    assert chip.is_hidden()
    page.evaluate(DROP_AND_PASTE_JS, "paste")
    chip.wait_for()
    assert page.locator(".sbw-chip__img").get_attribute("src").startswith("data:image/jpeg")


def test_rendering_contract_for_carts_and_untrusted_text(page: Any, shop: PhotoShop) -> None:
    """/api/chat is answered in the browser with the documented payloads (markup in text, a
    two-line cart with a size-less line) to pin down how the widget renders them; the real
    cart flow is in the search test."""
    cart = {"type": "cart", "currency": "INR", "total": 2398.0, "savings": 600.0, "lines": [
        {"id": "1", "name": "Blue Jeans", "size": "32", "qty": 2, "unit_price": 999.0,
         "line_total": 1998.0, "image_url": "/images/1.jpg"},
        {"id": "2", "name": "White Socks", "size": None, "qty": 1, "unit_price": 400.0,
         "line_total": 400.0, "image_url": None}]}
    replies = [
        [{"text": "<img src=x onerror=\"window.pwned=1\"> <b>bold</b>\nsecond line"},
         {"custom": cart}],
        [{"text": "Checking out."}],
    ]
    sent: list[dict[str, Any]] = []

    def answer(route: Any) -> None:
        sent.append(route.request.post_data_json)
        route.fulfill(status=200, content_type="application/json",
                      body=json.dumps(replies[len(sent) - 1]))

    page.route("**/api/chat", answer)
    open_chat(page, shop.stack.web_url)
    say(page, "show my cart")
    text = page.get_by_test_id("bot-message").first
    assert text.inner_text() == '<img src=x onerror="window.pwned=1"> <b>bold</b>\nsecond line'
    assert not page.evaluate("window.pwned") and not text.locator("img, b").count()
    summary = page.get_by_test_id("chat-cart")
    assert page.get_by_test_id("cart-line").count() == 2
    assert "Your cart (3 items)" in summary.inner_text()
    assert "Size 32 · 2 × ₹999" in summary.inner_text()
    assert page.get_by_test_id("cart-total").inner_text() == "₹2,398"
    assert "₹600" in summary.inner_text()
    page.get_by_test_id("cart-checkout").click()
    page.get_by_text("Checking out.").wait_for()
    assert sent[-1]["message"] == "/checkout" and user_bubbles(page)[-1] == "Checkout"
    screenshot(page, "cart.png")


# -- the staff console: a person takes a widget conversation over ------------------------------

STAFF_EMAIL = "ann@shop.example"
STAFF_PASSWORD = "correct horse battery staple"
TICKET_ID = re.compile(r"ticket (T-[0-9A-F]{6})")
INBOX_SCREENSHOT = PROJECT_ROOT / "docs" / "console-inbox.png"
INSIGHTS_SCREENSHOT = PROJECT_ROOT / "docs" / "console-insights.png"


def widget_texts(page: Any, testid: str) -> list[str]:
    return [t.strip() for t in page.get_by_test_id(testid).all_inner_texts()]


def send_without_answer(page: Any, text: str) -> None:
    """Send while a person holds the chat: the request completes, no bot bubble comes."""
    before = bot_items(page)
    page.get_by_test_id("chat-input").fill(text)
    page.get_by_test_id("chat-send").click()
    page.wait_for_function(f"() => {WIDGET}.querySelector('[data-testid=chat-typing]').hidden")
    assert text in user_bubbles(page)
    assert bot_items(page) == before


def charts(staff: Any, web: str) -> dict[str, Any]:
    """What the insights page's charts show for today: the numbers drawn, read back from
    Chart.js (a chart missing from the page is None)."""
    today = time.strftime("%Y-%m-%d", time.gmtime())
    staff.goto(f"{web}/console/insights?from={today}&to={today}")
    return staff.evaluate("""() => Object.fromEntries(
        ['daily', 'fallback', 'top_searches', 'funnel'].map((name) => {
          const chart = Chart.getChart('chart-' + name);
          return [name, chart ? {labels: chart.data.labels,
                                 data: chart.data.datasets.map((d) => d.data)} : null];
        }))""")


def chart_value(chart: dict[str, Any] | None, label: str, dataset: int = 0) -> float:
    if chart is None or label not in chart["labels"]:
        return 0
    return chart["data"][dataset][chart["labels"].index(label)]


def test_a_person_takes_over_the_chat_from_the_console_and_hands_it_back(
        browser: Any, shop: PhotoShop) -> None:
    """Staff sign in; a shopper asks for a person in the widget (another browser context);
    the ticket appears in the open console without a reload; staff take it, the shopper is
    told who they talk with, the bot stays quiet, the reply reaches the widget, and after
    the hand-back the bot answers again."""
    from shop.staff import StaffStore
    from shopcore.db import open_database

    web = shop.stack.web_url
    StaffStore(open_database(shop.stack.settings.shop_database_url)).add(
        STAFF_EMAIL, STAFF_PASSWORD)
    with browser_page(browser) as staff, browser_page(browser, locale="en-IN") as shopper:
        staff.goto(f"{web}/console")
        assert staff.url.endswith("/console/login")
        staff.get_by_label("Email").fill(STAFF_EMAIL)
        staff.get_by_label("Password").fill(STAFF_PASSWORD)
        staff.get_by_role("button", name="Sign in").click()
        staff.wait_for_url(f"{web}/console")
        before = charts(staff, web)
        staff.goto(f"{web}/console")

        open_chat(shopper, web)
        say(shopper, "connect me to an agent")
        found = TICKET_ID.search(" ".join(widget_texts(shopper, "bot-message")))
        assert found, widget_texts(shopper, "bot-message")
        ticket = found.group(1)

        row = staff.locator(f'tr[data-ticket="{ticket}"]')
        row.wait_for()  # the inbox polls: no reload
        assert "new" in (row.get_attribute("class") or "")
        assert "connect me to an agent" in row.inner_text()
        row.get_by_role("link").click()
        staff.wait_for_url(f"{web}/console/tickets/{ticket}")
        shopper_label = staff.locator(".meta code").inner_text()
        asked = staff.locator("#turns li.user", has_text="connect me to an agent")
        assert "contact_human_agent" in asked.inner_text()

        staff.get_by_role("button", name="Take this conversation").click()
        staff.get_by_label("Reply to the shopper").wait_for()
        shopper.get_by_test_id("chat-with-person").wait_for()
        assert shopper.get_by_test_id("chat-with-person").inner_text() == \
            "You're chatting with Ann from our team"
        assert any(n.startswith("You're now chatting with Ann")
                   for n in widget_texts(shopper, "chat-notice"))

        send_without_answer(shopper, "is the blue one still in stock?")
        staff.locator("#turns li.user", has_text="is the blue one still in stock?").wait_for()

        staff.get_by_label("Reply to the shopper").fill("Yes - we have it in blue, size M.")
        staff.get_by_role("button", name="Send").click()
        staff.locator("#turns li.staff", has_text="we have it in blue").wait_for()
        shopper.get_by_test_id("staff-message").filter(has_text="we have it in blue").wait_for()
        assert "Ann (shop team)" in shopper.locator("#shopbot-widget .sbw-from").last.inner_text()
        screenshot(shopper, "handoff-shopper.png")
        screenshot(staff, "handoff-console.png")
        if os.environ.get("SHOPBOT_README_SCREENSHOT") == "1":
            save_readme_screenshot(staff, INBOX_SCREENSHOT)

        staff.get_by_role("button", name="Hand back to the bot").click()
        staff.get_by_text("Closed: the bot has the conversation.").wait_for()
        shopper.get_by_test_id("chat-notice").filter(has_text="handed you back").wait_for()
        shopper.wait_for_function(
            f"() => {WIDGET}.querySelector('[data-testid=chat-with-person]').hidden")
        say(shopper, shop.query)
        assert shopper.get_by_test_id("chat-product-card").count() > 0

        # The conversation, found by its outcome, turn by turn.
        staff.get_by_role("link", name="Conversations").click()
        staff.get_by_label("Outcome").select_option("handoff")
        staff.get_by_role("button", name="Search").click()
        row = staff.locator("#conversations tr", has_text=shopper_label)
        # (what the shopper wrote to Ann was no intent the bot knows: NLU fell back on it)
        assert row.locator(".badge").all_inner_texts() == [
            "found products", "fell back", "handed off"]
        row.get_by_role("link").click()
        assert staff.locator("li.staff", has_text="we have it in blue").count() == 1
        assert staff.locator("li.user", has_text="is the blue one still in stock?").count() == 1

        # Insights: the charts moved by exactly what this conversation did (the tests before
        # this one chatted on the same shop today: compare with the charts at the start).
        after = charts(staff, web)
        today = time.strftime("%Y-%m-%d", time.gmtime())
        for dataset, added in ((0, 1), (1, 3)):  # one more conversation, three messages
            assert chart_value(after["daily"], today, dataset) == \
                chart_value(before["daily"], today, dataset) + added
        query = " ".join(shop.query.split()).lower()
        assert chart_value(after["top_searches"], query) == \
            chart_value(before["top_searches"], query) + 1
        assert chart_value(after["funnel"], "Shown") == chart_value(before["funnel"], "Shown") + 1
        assert after["fallback"] is not None
        screenshot(staff, "insights.png")
        if os.environ.get("SHOPBOT_README_SCREENSHOT") == "1":
            save_readme_screenshot(staff, INSIGHTS_SCREENSHOT)
