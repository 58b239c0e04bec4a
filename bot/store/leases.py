"""Scale-out state: job leases, provider slots, member locks and served images.

A job belongs to the process whose ``owner`` id holds its lease (``lease_until``); the
owner renews it while it works, and a lease not renewed in time may be claimed by any
live process, which resumes the job from its stored state. A provider model's
concurrent-task slots are a flag on the job row (``slot``), taken in a transaction under
the model's lock and first come, first served, so the limit holds across processes and a
slot belongs to its job, never to one process's memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from bot.store.backend import Listener, LockSpace
from bot.store.base import StoreBase, _marks, _now
from bot.store.models import UNFINISHED, JobState

# Served images: kept this long, and never more than this many (the oldest go first).
IMAGE_KEEP_S = 6 * 3600
IMAGE_KEEP_COUNT = 500
# States in which a job can hold a slot: waiting to send, sending, at the provider.
_SLOT_STATES = (JobState.RESERVED, JobState.SUBMITTING, JobState.SUBMITTED)


def _model_key(provider: str, model: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{provider}/{model}".encode()).digest()[:8], "big")


class LeasesMixin(StoreBase):
    # -- leases --

    async def claim_job(
        self, job_id: str, owner: str, lease_s: float, now: float | None = None
    ) -> bool:
        """Take (or keep) an unfinished job's lease unless a live peer holds it."""
        now = _now(now)
        async with self._tx() as db:
            return await db.execute(
                "UPDATE jobs SET owner = ?, lease_until = ? WHERE id = ?"
                f" AND state IN ({_marks(4)})"
                " AND (owner IS NULL OR owner = ? OR lease_until IS NULL OR lease_until < ?)",
                (owner, now + lease_s, job_id, *UNFINISHED, owner, now),
            ) == 1

    async def renew_leases(
        self, owner: str, lease_s: float, job_ids: set[str] | list[str],
        now: float | None = None,
    ) -> set[str]:
        """Extend ``owner``'s leases on ``job_ids`` (the jobs it is running: an orphaned
        job's lease is left to run out); returns the ids of those it still holds."""
        now = _now(now)
        ids = sorted(job_ids)
        held: set[str] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            async with self._tx() as db:
                rows = await db.rows(
                    f"UPDATE jobs SET lease_until = ? WHERE owner = ? AND id IN"
                    f" ({_marks(len(chunk))}) AND state IN ({_marks(4)}) RETURNING id",
                    (now + lease_s, owner, *chunk, *UNFINISHED),
                )
            held.update(str(r["id"]) for r in rows)
        return held

    async def jobs_held(self, owner: str) -> set[str]:
        """The unfinished jobs whose lease ``owner`` holds (live or run out)."""
        async with self._tx(write=False) as db:
            rows = await db.rows(
                f"SELECT id FROM jobs WHERE owner = ? AND state IN ({_marks(4)})",
                (owner, *UNFINISHED),
            )
        return {str(r["id"]) for r in rows}

    async def release_leases(self, owner: str, job_ids: list[str] | None = None) -> int:
        """Give up leases (all of ``owner``'s, or only ``job_ids``) so a peer takes over."""
        sql, args = "UPDATE jobs SET owner = NULL, lease_until = NULL WHERE owner = ?", [owner]
        if job_ids is not None:
            if not job_ids:
                return 0
            sql += f" AND id IN ({_marks(len(job_ids))})"
            args += job_ids
        async with self._tx() as db:
            return await db.execute(sql, args)

    async def release_every_lease(self) -> int:
        """At the start of the one process a SQLite file serves: whatever held a lease
        before is gone, so every unfinished job is free to resume at once."""
        async with self._tx() as db:
            return await db.execute(
                "UPDATE jobs SET owner = NULL, lease_until = NULL WHERE owner IS NOT NULL"
            )

    async def claimable_jobs(self, now: float | None = None, limit: int = 100) -> list[str]:
        """Unfinished jobs nobody holds (or whose lease ran out), oldest first."""
        now = _now(now)
        async with self._tx(write=False) as db:
            rows = await db.rows(
                f"SELECT id FROM jobs WHERE state IN ({_marks(4)})"
                " AND (owner IS NULL OR lease_until IS NULL OR lease_until < ?)"
                " ORDER BY created_at, rowid LIMIT ?",
                (*UNFINISHED, now, limit),
            )
        return [str(r["id"]) for r in rows]

    async def leases_held(self, owner: str) -> int:
        async with self._tx(write=False) as db:
            return int(await db.scalar(
                f"SELECT COUNT(*) FROM jobs WHERE owner = ? AND state IN ({_marks(4)})",
                (owner, *UNFINISHED),
            ))

    # -- provider slots --

    async def take_slot(self, job_id: str, limit: int) -> bool:
        """Give the job one of its model's ``limit`` slots if one is free and no job that
        asked earlier is still waiting for one. True also when it already holds one."""
        async with self._tx() as db:
            job = await db.one(
                "SELECT provider, model, slot, state, created_at, rowid FROM jobs WHERE id = ?",
                (job_id,),
            )
            if job is None or job["state"] not in _SLOT_STATES:
                return False
            if job["slot"]:
                return True
            await db.lock(LockSpace.SLOTS, _model_key(job["provider"], job["model"]))
            same = "provider = ? AND model = ?"
            used = int(await db.scalar(
                f"SELECT COUNT(*) FROM jobs WHERE {same} AND slot = 1"
                f" AND state IN ({_marks(3)})",
                (job["provider"], job["model"], *_SLOT_STATES),
            ))
            ahead = await self._waiting_ahead(db, job)
            if used + ahead >= max(1, limit):
                return False
            return await db.execute(
                "UPDATE jobs SET slot = 1 WHERE id = ? AND slot = 0", (job_id,)
            ) == 1

    @staticmethod
    async def _waiting_ahead(db: Any, job: dict[str, Any]) -> int:
        return int(await db.scalar(
            "SELECT COUNT(*) FROM jobs WHERE provider = ? AND model = ? AND slot = 0"
            " AND state = 'reserved' AND (created_at < ? OR (created_at = ? AND rowid < ?))",
            (job["provider"], job["model"], job["created_at"], job["created_at"], job["rowid"]),
        ))

    async def release_slot(self, job_id: str) -> bool:
        async with self._tx() as db:
            return await db.execute(
                "UPDATE jobs SET slot = 0 WHERE id = ? AND slot = 1", (job_id,)
            ) == 1

    async def waiting_jobs(self, provider: str, model: str) -> list[str]:
        """The jobs waiting for one of the model's slots, first in line first."""
        async with self._tx(write=False) as db:
            rows = await db.rows(
                "SELECT id FROM jobs WHERE provider = ? AND model = ? AND slot = 0"
                " AND state = 'reserved' ORDER BY created_at, rowid", (provider, model),
            )
        return [str(r["id"]) for r in rows]

    async def slots_in_use(self, provider: str, model: str) -> int:
        async with self._tx(write=False) as db:
            return int(await db.scalar(
                "SELECT COUNT(*) FROM jobs WHERE provider = ? AND model = ? AND slot = 1"
                f" AND state IN ({_marks(3)})",
                (provider, model, *_SLOT_STATES),
            ))

    # -- wake-ups across processes --

    async def listen(self, channel: str, listener: Listener) -> None:
        await self.backend.listen(channel, listener)

    async def notify(self, channel: str, payload: str = "") -> None:
        await self.backend.notify(channel, payload)

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """``callback()`` when wake-ups resume after the database was away."""
        self.backend.on_reconnect(callback)

    async def hold_identity(self, name: str) -> None:
        """Hold this process's identity for its life (IdentityInUse if a live process
        holds it): on PostgreSQL a session lock, on SQLite a lock on a file beside it."""
        await self.backend.hold_identity(name)

    # -- the per-member lock --

    async def lock_member(
        self, guild_id: int, user_id: int, owner: str, hold_s: float, now: float | None = None
    ) -> bool:
        """Take the member's lock for at most ``hold_s`` seconds; False while another
        holder's lock is live."""
        now = _now(now)
        async with self._tx() as db:
            return await db.execute(
                "INSERT INTO member_locks (guild_id, user_id, owner, until) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (guild_id, user_id) DO UPDATE SET owner = excluded.owner,"
                " until = excluded.until WHERE member_locks.until < ?",
                (guild_id, user_id, owner, now + hold_s, now),
            ) == 1

    async def unlock_member(self, guild_id: int, user_id: int, owner: str) -> None:
        async with self._tx() as db:
            await db.execute(
                "DELETE FROM member_locks WHERE guild_id = ? AND user_id = ? AND owner = ?",
                (guild_id, user_id, owner),
            )

    # -- images providers fetch by URL --

    async def put_image(
        self, name: str, data: bytes, mime: str, job_id: str | None = None,
        now: float | None = None,
    ) -> None:
        now = _now(now)
        async with self._tx() as db:
            await db.execute("DELETE FROM served_images WHERE created_at < ?",
                             (now - IMAGE_KEEP_S,))
            await db.execute(
                "DELETE FROM served_images WHERE name IN (SELECT name FROM served_images"
                " ORDER BY created_at DESC LIMIT -1 OFFSET ?)"
                if db.dialect == "sqlite" else
                "DELETE FROM served_images WHERE name IN (SELECT name FROM served_images"
                " ORDER BY created_at DESC OFFSET ?)",
                (IMAGE_KEEP_COUNT - 1,),
            )
            await db.execute(
                "INSERT INTO served_images (name, job_id, mime, data, created_at)"
                " VALUES (?, ?, ?, ?, ?)", (name, job_id, mime, data, now),
            )

    async def get_image(self, name: str, now: float | None = None) -> tuple[bytes, str] | None:
        async with self._tx(write=False) as db:
            row = await db.one(
                "SELECT data, mime FROM served_images WHERE name = ? AND created_at >= ?",
                (name, _now(now) - IMAGE_KEEP_S),
            )
        return None if row is None else (bytes(row["data"]), str(row["mime"]))
