"""Bot messages as each platform's API calls: text, buttons, product cards, cart, photos.

Rasa hands an output channel one message dict at a time (``text``, ``buttons``, ``image``,
``custom``). :class:`Reply` reads it once - the ``custom`` payload with the one parser of
:mod:`shopcore.payloads` (cards come with their own intro sentence, so the numbered list of
the plain text is not shown twice; the cart is shown as its text), relative photo URLs made
absolute with the shop's public URL - and the ``*_calls`` / ``*_messages`` functions turn it
into what each platform accepts:

- Telegram: one photo per product with its caption and inline buttons (text when there is
  no public photo URL), buttons as an inline keyboard.
- Messenger: products as a generic template (carousel), buttons as quick replies.
- Slack: products as blocks (section + thumbnail + Details button), buttons as an actions block.
- SMS / WhatsApp (Twilio): plain text, one numbered line and link per product.
- Generic webhook: the message as Rasa made it, with absolute URLs.

The "Details" button of a card sends "tell me about the second one", which the bot
already understands, so no platform needs its own intents. Pure functions, no Rasa.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from shopcore.payloads import Cart, ProductCard, ProductCards, parse_payload
from shopcore.text import clip

logger = logging.getLogger(__name__)

MAX_CARDS = 10  # Messenger's carousel limit; search pages are 5
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
            "ninth", "tenth")
TELEGRAM_TEXT = 4096
TELEGRAM_CAPTION = 1024
TELEGRAM_CALLBACK_BYTES = 64
MESSENGER_TEXT = 2000
MESSENGER_TITLE = 80
MESSENGER_BUTTON = 20
MESSENGER_QUICK_REPLIES = 13
SLACK_TEXT = 3000
SMS_TEXT = 1600


def split_text(text: str, limit: int) -> list[str]:
    """Text in pieces of at most ``limit`` characters, cut at paragraph or line ends."""
    text = text.strip()
    pieces: list[str] = []
    while len(text) > limit:
        cut = max(text.rfind("\n\n", 0, limit), text.rfind("\n", 0, limit))
        if cut <= 0:
            cut = text.rfind(" ", 0, limit)
        if cut <= 0:
            cut = limit
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        pieces.append(text)
    return pieces


@dataclass(frozen=True)
class Links:
    """Absolute URLs for platforms: photos and product pages live on the shop's web server."""

    public_url: str = ""
    product_url: str = ""  # template with {id}, e.g. https://shop.example/p/{id}

    def absolute(self, url: object) -> str:
        """An absolute http(s) URL for ``url``, or '' when none can be made."""
        if not isinstance(url, str) or not url:
            return ""
        if url.startswith(("https://", "http://")):
            return url
        if url.startswith("/") and self.public_url:
            return self.public_url.rstrip("/") + url
        return ""

    def product(self, product_id: str) -> str:
        if not self.product_url or not product_id:
            return ""
        return self.product_url.replace("{id}", quote(product_id, safe=""))


@dataclass(frozen=True)
class Button:
    title: str
    payload: str = ""
    url: str = ""


@dataclass(frozen=True)
class Card:
    """One product as every platform shows it: the payload's card, numbered, with links."""

    position: int  # 1-based, as the shopper says "the second one"
    product: ProductCard
    image_url: str  # absolute, or '' when the shop has no public URL
    url: str  # product page, or ''

    @property
    def product_id(self) -> str:
        return self.product.id

    @property
    def name(self) -> str:
        return self.product.name

    @property
    def price_text(self) -> str:
        return self.product.price_text

    @property
    def subtitle(self) -> str:
        return " · ".join(part for part in (self.product.brand, self.price_text) if part)

    @property
    def details_payload(self) -> str:
        if self.position <= len(ORDINALS):
            return f"tell me about the {ORDINALS[self.position - 1]} one"
        return f"tell me about number {self.position}"


@dataclass(frozen=True)
class Reply:
    """One bot message, read once for every renderer."""

    text: str = ""
    buttons: tuple[Button, ...] = ()
    cards: tuple[Card, ...] = ()
    cart: str = ""
    image: str = ""
    unknown: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_message(cls, message: Mapping[str, Any], links: Links) -> Reply:
        text = message.get("text") if isinstance(message.get("text"), str) else ""
        raw_buttons = message.get("buttons") or message.get("quick_replies") or []
        buttons = tuple(b for b in map(_button, raw_buttons if isinstance(raw_buttons, list)
                                       else []) if b is not None)
        custom = message.get("custom")
        payload = parse_payload(custom)
        cards: tuple[Card, ...] = ()
        cart = ""
        unknown: Mapping[str, Any] = {}
        text = (text or "").strip()
        if isinstance(payload, ProductCards) and payload.products:
            cards = read_cards(payload, links)
            text = payload.intro  # the plain text is the same intro plus a numbered list
        elif isinstance(payload, Cart):
            cart, text = payload.text(), ""  # the cart's text starts with its intro
        elif payload is None and isinstance(custom, Mapping):
            unknown = custom
        return cls(text=text, buttons=buttons, cards=cards, cart=cart,
                   image=links.absolute(message.get("image")), unknown=unknown)

    @property
    def plain_text(self) -> str:
        """Text plus the cart, for platforms that get them in one message."""
        return "\n\n".join(part for part in (self.text, self.cart) if part)

    @property
    def empty(self) -> bool:
        return not (self.plain_text or self.buttons or self.cards or self.image)


def _button(raw: object) -> Button | None:
    if not isinstance(raw, Mapping):
        return None
    title = str(raw.get("title") or "").strip()
    payload = str(raw.get("payload") or "").strip()
    url = str(raw.get("url") or "").strip()
    if not title or not (payload or url):
        return None
    return Button(title=title, payload=payload or title, url=url)


def read_cards(cards: ProductCards, links: Links) -> tuple[Card, ...]:
    """The payload's product cards, numbered as the shopper sees them, with absolute URLs."""
    return tuple(
        Card(position=n, product=product, image_url=links.absolute(product.image_url),
             url=links.product(product.id))
        for n, product in enumerate(cards.products[:MAX_CARDS], start=1))


def _card_text(card: Card) -> str:
    return "\n".join(part for part in (card.name, card.subtitle) if part)


# -- Telegram ---------------------------------------------------------------------------------

def _telegram_button(button: Button) -> dict[str, str]:
    if button.url:
        return {"text": button.title, "url": button.url}
    data = button.payload
    if len(data.encode()) > TELEGRAM_CALLBACK_BYTES:
        data = button.title.encode()[:TELEGRAM_CALLBACK_BYTES].decode(errors="ignore")
    return {"text": button.title, "callback_data": data}


def telegram_calls(reply: Reply, chat_id: int | str) -> list[tuple[str, dict[str, Any]]]:
    """Bot API calls (method, parameters) that show ``reply`` in a Telegram chat."""
    calls: list[tuple[str, dict[str, Any]]] = []
    pieces = split_text(reply.plain_text, TELEGRAM_TEXT)
    for index, piece in enumerate(pieces):
        params: dict[str, Any] = {"chat_id": chat_id, "text": piece}
        if reply.buttons and index == len(pieces) - 1:
            params["reply_markup"] = {
                "inline_keyboard": [[_telegram_button(b)] for b in reply.buttons]}
        calls.append(("sendMessage", params))
    if reply.buttons and not pieces:
        calls.append(("sendMessage", {"chat_id": chat_id, "text": "Choose one:", "reply_markup": {
            "inline_keyboard": [[_telegram_button(b)] for b in reply.buttons]}}))
    for card in reply.cards:
        row = [{"text": "Details", "callback_data": card.details_payload}]
        if card.url:
            row.append({"text": "View", "url": card.url})
        markup = {"inline_keyboard": [row]}
        caption = clip(_card_text(card), TELEGRAM_CAPTION)
        if card.image_url:
            calls.append(("sendPhoto", {"chat_id": chat_id, "photo": card.image_url,
                                        "caption": caption, "reply_markup": markup}))
        else:
            calls.append(("sendMessage", {"chat_id": chat_id, "text": caption,
                                          "reply_markup": markup}))
    if reply.image:
        calls.append(("sendPhoto", {"chat_id": chat_id, "photo": reply.image}))
    return calls


# -- Messenger --------------------------------------------------------------------------------

def _messenger_element(card: Card) -> dict[str, Any]:
    buttons: list[dict[str, str]] = [
        {"type": "postback", "title": "Details", "payload": card.details_payload}]
    element: dict[str, Any] = {"title": clip(card.name, MESSENGER_TITLE),
                               "subtitle": clip(card.subtitle, MESSENGER_TITLE)}
    if card.image_url:
        element["image_url"] = card.image_url
    if card.url:
        buttons.append({"type": "web_url", "title": "View", "url": card.url})
        element["default_action"] = {"type": "web_url", "url": card.url}
    element["buttons"] = buttons
    return element


def messenger_messages(reply: Reply) -> list[dict[str, Any]]:
    """Send API ``message`` objects that show ``reply`` in Messenger."""
    messages: list[dict[str, Any]] = []
    pieces = split_text(reply.plain_text, MESSENGER_TEXT)
    quick = [b for b in reply.buttons if not b.url][:MESSENGER_QUICK_REPLIES]
    links = [b for b in reply.buttons if b.url]
    if links:
        pieces = split_text("\n".join([reply.plain_text, *(f"{b.title}: {b.url}" for b in links)]),
                            MESSENGER_TEXT)
    if quick and not pieces:
        pieces = ["Choose one:"]
    for index, piece in enumerate(pieces):
        message: dict[str, Any] = {"text": piece}
        if quick and index == len(pieces) - 1:
            message["quick_replies"] = [
                {"content_type": "text", "title": clip(b.title, MESSENGER_BUTTON),
                 "payload": b.payload} for b in quick]
        messages.append(message)
    if reply.cards:
        messages.append({"attachment": {"type": "template", "payload": {
            "template_type": "generic",
            "elements": [_messenger_element(card) for card in reply.cards]}}})
    if reply.image:
        messages.append({"attachment": {"type": "image", "payload": {"url": reply.image}}})
    return messages


# -- Slack ------------------------------------------------------------------------------------

def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_card_blocks(card: Card) -> list[dict[str, Any]]:
    name = slack_escape(card.name).replace("|", "/")
    title = f"*<{card.url}|{name}>*" if card.url else f"*{name}*"
    section: dict[str, Any] = {"type": "section", "text": {
        "type": "mrkdwn", "text": clip(f"{title}\n{slack_escape(card.subtitle)}", SLACK_TEXT)}}
    if card.image_url:
        section["accessory"] = {"type": "image", "image_url": card.image_url,
                                "alt_text": clip(card.name, 200)}
    details = {"type": "button", "text": {"type": "plain_text", "text": "Details"},
               "value": card.details_payload, "action_id": f"details_{card.position}"}
    return [section, {"type": "actions", "elements": [details]}]


def slack_messages(reply: Reply) -> list[dict[str, Any]]:
    """``chat.postMessage`` bodies (without ``channel``) that show ``reply`` in Slack."""
    messages: list[dict[str, Any]] = []
    text = reply.plain_text
    if text or reply.buttons:
        message: dict[str, Any] = {"text": slack_escape(clip(text or "Choose one:", 40_000))}
        if reply.buttons:
            elements = []
            for index, button in enumerate(reply.buttons[:25]):
                element: dict[str, Any] = {
                    "type": "button", "action_id": f"button_{index}",
                    "text": {"type": "plain_text", "text": clip(button.title, 75)}}
                if button.url:
                    element["url"] = button.url
                else:
                    element["value"] = clip(button.payload, 2000)
                elements.append(element)
            message["blocks"] = [
                {"type": "section", "text": {"type": "mrkdwn",
                                             "text": slack_escape(clip(text or "Choose one:",
                                                                       SLACK_TEXT))}},
                {"type": "actions", "elements": elements}]
        messages.append(message)
    if reply.cards:
        blocks = [block for card in reply.cards for block in _slack_card_blocks(card)]
        names = ", ".join(card.name for card in reply.cards)
        messages.append({"text": slack_escape(clip(names, 3000)), "blocks": blocks})
    if reply.image:
        messages.append({"text": "Photo", "blocks": [
            {"type": "image", "image_url": reply.image, "alt_text": "photo"}]})
    return messages


# -- SMS and WhatsApp (Twilio) ----------------------------------------------------------------

def sms_text(reply: Reply) -> str:
    """Everything in ``reply`` as plain text: numbered products with links, button choices."""
    parts = [reply.plain_text] if reply.plain_text else []
    if reply.buttons:
        parts.append("Reply with: " + " / ".join(b.title for b in reply.buttons))
    for card in reply.cards:
        line = f"{card.position}. {card.name}"
        if card.subtitle:
            line += f" - {card.subtitle}"
        if card.url:
            line += f"\n{card.url}"
        parts.append(line)
    if reply.cards:
        parts.append('Say "tell me about the first one" for details.')
    return "\n\n".join(parts)


def sms_messages(reply: Reply) -> list[dict[str, str]]:
    """Twilio Messages API form fields (without To/From): text, and a photo as media."""
    messages: list[dict[str, str]] = [{"Body": piece}
                                      for piece in split_text(sms_text(reply), SMS_TEXT)]
    if reply.image:
        messages.append({"Body": "", "MediaUrl": reply.image})
    return messages


# -- generic webhook --------------------------------------------------------------------------

def webhook_message(message: Mapping[str, Any], links: Links) -> dict[str, Any]:
    """Rasa's message for the callback URL: the usual keys, photo and product URLs absolute."""
    out: dict[str, Any] = {}
    for key in ("text", "buttons", "quick_replies", "image", "attachment", "custom"):
        value = message.get(key)
        if value:
            out[key] = value
    if "image" in out:
        out["image"] = links.absolute(out["image"]) or out["image"]
    custom = out.get("custom")
    if isinstance(custom, Mapping) and custom.get("type") == "product_cards":
        products = []
        for raw in custom.get("products") or []:
            if isinstance(raw, Mapping):
                product = dict(raw)
                product["image_url"] = links.absolute(raw.get("image_url")) or raw.get(
                    "image_url")
                product["url"] = links.product(str(raw.get("id") or "")) or None
                products.append(product)
        out["custom"] = {**custom, "products": products}
    return out
