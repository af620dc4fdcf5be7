"""Rasa's Redis ticket lock with every change made atomically, for several Rasa replicas.

Rasa's open-source ``RedisLockStore`` keeps one JSON ticket lock per conversation and
changes it by read-modify-write: fetch the lock, change it in memory, ``SET`` it back (rasa
#9213). Two replicas that take a message of the same conversation at the same moment both
read the lock before either writes it, both issue the *same* ticket number, both believe
they are being served, and process the two turns at once: the later tracker save drops the
other turn's events. The same race lets a replica finishing its turn overwrite a ticket
another replica has just issued.

This store keeps Rasa's lock format and semantics and makes each change a Redis
transaction (``WATCH`` the key, read, change, ``MULTI``/``EXEC``; retried when another
replica changed the key in between), so tickets are unique and served in order across
replicas. endpoints.yml names it as ``type: bot.locks.AtomicRedisLockStore``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)


class AtomicRedisLockStore(RedisLockStore):
    """``RedisLockStore`` whose ticket changes cannot interleave across processes."""

    def __init__(self, endpoint_config: EndpointConfig) -> None:
        super().__init__(host=endpoint_config.url or "localhost", **endpoint_config.kwargs)

    def _key(self, conversation_id: str) -> str:
        return self.key_prefix + conversation_id

    def _change(self, conversation_id: str,
                change: Callable[[TicketLock | None], tuple[TicketLock | None, Any]]) -> Any:
        """Apply ``change`` to the stored lock in one optimistic transaction.

        ``change`` gets the current lock (None when there is none) and returns the lock to
        store (None: delete it) and the value to return; it may run more than once."""
        key = self._key(conversation_id)
        result: list[Any] = []

        def transaction(pipe: Any) -> None:
            raw = pipe.get(key)
            lock = TicketLock.from_dict(json.loads(raw)) if raw else None
            stored, value = change(lock)
            pipe.multi()
            if stored is None:
                pipe.delete(key)
            else:
                pipe.set(key, stored.dumps())
            result[:] = [value]

        self.red.transaction(transaction, key)
        return result[0]

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        def issue(lock: TicketLock | None) -> tuple[TicketLock, int]:
            lock = lock or self.create_lock(conversation_id)
            return lock, lock.issue_ticket(lock_lifetime)

        try:
            return self._change(conversation_id, issue)
        except Exception as error:  # Rasa's callers expect LockError for any failure
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error

    def update_lock(self, conversation_id: str) -> None:
        def drop_expired(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is not None:
                lock.remove_expired_tickets()
            return lock, None

        self._change(conversation_id, drop_expired)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        def finish(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is not None:
                lock.remove_ticket_for(ticket_number)
            return lock, None

        self._change(conversation_id, finish)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Give the ticket back and delete the lock if nobody waits, in one step (Rasa does
        it in two, so a ticket issued in between could be deleted with the lock)."""

        def finish_and_maybe_delete(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is None:
                return None, None
            lock.remove_ticket_for(ticket_number)
            return (lock if lock.is_someone_waiting() else None), None

        self._change(conversation_id, finish_and_maybe_delete)
