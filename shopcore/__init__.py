"""What both virtualenvs share: settings and paths, ids, money, reply payloads, the shop
database layer (schema, engine, channel links) and photo uploads.

Rasa's side (``bot/``, Python 3.10, pydantic 1, SQLAlchemy 1.4) and the app's side
(actions, web server, CLI: Python 3.11, pydantic 2, SQLAlchemy 2) both import this package,
so it is written for both and imports nothing else of ours.
"""
