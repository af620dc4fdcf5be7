"""The shop's own data and rules: orders, carts, profiles, tickets, the interaction log and
"forget me", on the shop database of :mod:`shopcore.db`. Demo data lives apart in ``demo``.

:class:`shop.records.ShopRecords` opens them all from settings; the action server, the CLI
and the tests use that one entry point.
"""
