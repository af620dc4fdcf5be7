"""Fault injection for kill tests only: hold a process still at a named point.

A test that must prove what survives a crash at an exact moment (checkout between the order
insert and the commit, say) starts the process with ``SHOPBOT_FAULT_PAUSE`` set to
``"<name>:<seconds>"`` (several as a comma-separated list). When the code reaches
:func:`pause_point` of that name it logs ``fault pause <name>`` at WARNING, flushes the log so
the test sees the line at once, and sleeps; the test then kills the process mid-sleep.

Never set the variable in a real shop: a paused checkout holds the shop's write lock.
Unset (always, outside those tests), a pause point is one environment lookup.
"""

from __future__ import annotations

import logging
import os
import sys
import time

ENV_VAR = "SHOPBOT_FAULT_PAUSE"

logger = logging.getLogger("shopbot.faults")


def pause_point(name: str) -> None:
    """Sleep here if ``SHOPBOT_FAULT_PAUSE`` names this point (kill tests only); else nothing."""
    spec = os.environ.get(ENV_VAR)
    if not spec:
        return
    seconds = pauses(spec).get(name)
    if seconds is None:
        return
    logger.warning("fault pause %s (sleeping %g s; kill tests only)", name, seconds)
    _flush_logs()
    time.sleep(seconds)


def pauses(spec: str) -> dict[str, float]:
    """``"a.b:60,c:1.5"`` as ``{"a.b": 60.0, "c": 1.5}``; malformed entries are skipped
    (with a warning), so a typo never stops the process it was meant to pause."""
    found: dict[str, float] = {}
    for entry in spec.split(","):
        name, _, seconds = entry.strip().rpartition(":")
        try:
            value = float(seconds)
        except ValueError:
            value = -1.0
        if not name or not value >= 0:
            logger.warning("ignoring malformed %s entry %r", ENV_VAR, entry[:80])
            continue
        found[name.strip()] = value
    return found


def _flush_logs() -> None:
    """Push the pause line out before sleeping: the killing test waits to read it."""
    seen = set()
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if id(handler) not in seen:
                seen.add(id(handler))
                handler.flush()
        current = current.parent if current.propagate else None
    for stream in (sys.stderr, sys.stdout):
        stream.flush()
