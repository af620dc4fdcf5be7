"""What counts as an id: sender ids (namespaced per messaging platform), product ids, and
order ids (``SB-123456``), with the one parser that finds an order id in free text."""

from __future__ import annotations

import re

MAX_ID_CHARS = 128  # longer sender or product ids are not ids
# Sender ids of messaging shoppers carry their platform ("telegram:42"); no other entry
# point may take such an id, or anyone could open a Telegram shopper's cart from the web.
CHANNEL_PREFIXES = ("telegram:", "messenger:", "slack:", "twilio:", "signed:")

ORDER_ID_EXAMPLE = "SB-123456"
ORDER_ID_HELP = (
    f"Order numbers look like {ORDER_ID_EXAMPLE} (SB and six digits); you'll find yours in "
    "the order confirmation email and under My Orders."
)
# "SB-100234", "sb 100234", "#SB100234", "SB:100234"; "#100234" and "order no. 100234" too.
_ORDER_ID_PATTERNS = (
    re.compile(r"(?<![a-z0-9])sb\s*[-_:#.]?\s*(\d{6})(?![\d])", re.IGNORECASE),
    re.compile(r"(?<![\w])#\s*(\d{6})(?![\d])"),
    re.compile(r"\border\b\s*(?:no\.?|num(?:ber)?|id)?\s*[:#]?\s*(\d{6})(?![\d])", re.IGNORECASE),
)


def valid_id(value: object) -> bool:
    """A sender or product id: short printable text (anything else is never looked up)."""
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS and value.isprintable()


def is_channel_sender(sender: str) -> bool:
    """Whether ``sender`` is a messaging platform's id (only that platform may use it)."""
    return sender.lower().startswith(CHANNEL_PREFIXES)


def short(sender_id: object) -> str:
    """A sender id safe to put in a log line (bounded, repr-escaped)."""
    return repr(str(sender_id)[:40])


def parse_order_id(text: object) -> str | None:
    """The first order id in free text, as ``SB-123456``; None when there is none."""
    if not isinstance(text, str):
        return None
    text = text[:2000]
    for pattern in _ORDER_ID_PATTERNS:
        match = pattern.search(text)
        if match:
            return f"SB-{match.group(1)}"
    return None
