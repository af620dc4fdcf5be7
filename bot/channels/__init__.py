"""Messaging channels for Rasa: Telegram, Messenger, Slack, Twilio (SMS/WhatsApp), a signed
webhook, and the REST channel with channel linking.

Rasa imports the platform modules (``telegram``, ``messenger``, ``slack``, ``twilio``,
``webhook``, ``rest``) from ``credentials.yml``; they run in ``.venv-rasa`` (Python 3.10)
and share ``base`` (signature gate, background handling, photos, linking, replies). The
logic underneath lives in modules that never import Rasa, so the app's test suite
(``.venv``, no Rasa) can test it directly:

- ``inbound``: what a webhook becomes (namespaced sender, text or photo), de-duplication.
- ``config``: credentials with ``${VAR:-default}`` references, the shop-wide settings.
- ``signatures``: each platform's request signature check (and signing, for callbacks).
- ``render``: bot messages (text, buttons, product cards, cart) as each platform's API calls.
- ``photos``: allow-listed, size-limited photo downloads (stored like web uploads by
  :mod:`shopcore.uploads`).

Link codes and sender aliases (two chats, one shopper) are :mod:`shopcore.links`; settings,
ids and the reply payloads they render are the rest of :mod:`shopcore`.

See docs/channels.md for how to configure each platform.
"""
