"""Running the rules against the store, before any charge.

``RuleGate.admit`` reads the guild's rules and the member's record in one transaction and
checks them (in a worker thread when the guild has patterns, so a slow pattern cannot stall
the event loop). It holds a lock per member until the caller has reserved the job, so two
quick requests cannot both slip under a cooldown or a per-member limit, also when they
land on two processes sharing one database.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.errors import Refusal
from bot.moderation.blocklist import ENTRIES_MAX, BadTerm, check_pattern, word_key
from bot.moderation.policy import BlockEntry, EntryKind
from bot.moderation.rules import RequestFacts, check_request
from bot.store import DatabaseUnavailable, Store

log = logging.getLogger(__name__)

# The per-member lock in the database outlives a crashed holder by at most this long.
MEMBER_LOCK_S = 30.0
MEMBER_LOCK_WAIT_S = 10.0


class RuleGate:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._owner = uuid.uuid4().hex  # this process, as the member locks name it
        self._locks: weakref.WeakValueDictionary[tuple[int, int], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def _lock(self, guild_id: int, user_id: int) -> asyncio.Lock:
        key = (guild_id, user_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    async def check(self, facts: RequestFacts, now: float | None = None) -> None:
        """Raise RuleRefusal if a rule refuses (no lock: for a one-off check)."""
        snapshot = await self._store.rule_snapshot(facts.guild_id, facts.user_id)
        moment = time.time() if now is None else now
        if snapshot.has_patterns:
            await asyncio.to_thread(check_request, facts, snapshot, moment)
        else:
            check_request(facts, snapshot, moment)

    @asynccontextmanager
    async def admit(self, facts: RequestFacts, now: float | None = None) -> AsyncIterator[None]:
        """Check the rules, then hold the member's lock while the caller reserves: in this
        process, and in the database so that processes sharing it take turns too."""
        lock = self._lock(facts.guild_id, facts.user_id)
        async with lock, self._member_lock(facts.guild_id, facts.user_id):
            await self.check(facts, now)
            yield

    @asynccontextmanager
    async def _member_lock(self, guild_id: int, user_id: int) -> AsyncIterator[None]:
        deadline = time.monotonic() + MEMBER_LOCK_WAIT_S
        delay = 0.02
        while not await self._store.lock_member(guild_id, user_id, self._owner, MEMBER_LOCK_S):
            if time.monotonic() > deadline:
                raise Refusal("Your previous request is still being checked; please try "
                              "again in a moment.")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)
        try:
            yield
        finally:
            try:
                await asyncio.shield(self._store.unlock_member(guild_id, user_id, self._owner))
            except DatabaseUnavailable:
                # The request's own outcome stands (it may have been reserved); the lock
                # runs out by itself after MEMBER_LOCK_S.
                log.warning("could not release a member's lock: the database is away")

    async def add_term(
        self, guild_id: int, kind: EntryKind, term: str, by_user: int | None
    ) -> BlockEntry:
        """Validate and store a blocked word or pattern; Refusal says why not."""
        try:
            if kind == "pattern":
                key = await asyncio.to_thread(check_pattern, term)
            else:
                key = word_key(term)
        except BadTerm as exc:
            raise Refusal(exc.user_message) from None
        status, entry = await self._store.add_block_entry(
            guild_id, kind, term.strip(), key, by_user, limit=ENTRIES_MAX
        )
        if status == "full":
            raise Refusal(f"The blocklist is full ({ENTRIES_MAX} entries); remove some first.")
        if entry is None:
            raise Refusal("That is already on the blocklist.")
        return entry
