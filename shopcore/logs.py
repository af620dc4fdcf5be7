"""One logging set-up for every process and command of the bot."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def setup_logging(verbose: bool = False) -> None:
    """INFO with ``verbose`` (servers, long commands), WARNING otherwise (quiet commands)."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=FORMAT)
