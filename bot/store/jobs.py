"""Jobs: the atomic reservation and the state machine's compare-and-set steps."""

from __future__ import annotations

import hmac
import json
import os
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from bot.quota import (
    QuotaSettings,
    check_reservation,
    job_cost,
)
from bot.store.base import StoreBase, _job, _marks, _now, _token_hash
from bot.store.models import _ENDABLE, UNFINISHED, Charge, Job, JobState, NewJob


class JobsMixin(StoreBase):
    # -- jobs --

    async def reserve(
        self, new: NewJob, quota: QuotaSettings, now: float | None = None, *,
        job_id: str | None = None, token: str | None = None,
    ) -> tuple[Job, str]:
        """Check the limits and record the job with its seconds reserved, atomically.

        Returns the job and its callback token (returned only here; only its sha256 is
        kept). Raises QuotaExceeded, having written nothing, when a limit refuses.
        ``job_id`` and ``token`` let the caller choose them (e.g. a token it can derive
        again after a restart); by default a uuid4 hex and 192 random bits.
        """
        if new.guild_id is None:  # no server: no quota would apply, so nothing is taken
            raise ValueError("a job needs a server: guild_id is None")
        now = _now(now)
        token = secrets.token_urlsafe(24) if token is None else token
        job_id = uuid.uuid4().hex if job_id is None else job_id
        async with self._tx() as db:
            if new.guild_id is not None:
                window = await self._window(db, new.guild_id, quota, now)
                member_used = None
                if quota.member_seconds is not None and new.user_id is not None:
                    member_used = await self._used(db, new.guild_id, window, new.user_id)
                refusal = check_reservation(
                    quota, new.seconds,
                    guild_used=await self._used(db, new.guild_id, window),
                    member_used=member_used,
                    in_progress=await self._in_progress(db, new.guild_id)
                    if quota.concurrent is not None else 0,
                    resets_at=window[1],
                )
                if refusal is not None:
                    raise refusal
            await db.execute(
                "INSERT INTO jobs (id, token_hash, guild_id, channel_id, user_id, provider, model,"
                " mode, prompt, duration, orientation, image_path, state, charge, seconds,"
                " price_per_second, context, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'reserved', 'reserved',"
                " ?, ?, ?, ?, ?)",
                (job_id, _token_hash(token), new.guild_id, new.channel_id, new.user_id,
                 str(new.provider), str(new.model), str(new.mode), new.prompt, new.duration,
                 str(new.orientation), new.image_path, new.seconds, new.price_per_second,
                 json.dumps(new.context), now, now),
            )
            row = await self._one(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))
            await self._ledger(db, row, "reserve", new.seconds, now)
        return _job(row), token

    async def job(self, job_id: str) -> Job | None:
        async with self._tx(write=False) as db:
            row = await self._one(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else _job(row)

    async def job_by_token(self, token: str) -> Job | None:
        if not token or len(token) > 256:
            return None
        digest = _token_hash(token)
        async with self._tx(write=False) as db:
            row = await self._one(db, "SELECT * FROM jobs WHERE token_hash = ?", (digest,))
        if row is None or not hmac.compare_digest(str(row["token_hash"]), digest):
            return None
        return _job(row)

    async def _set(
        self, job_id: str, sets: dict[str, Any], from_states: Iterable[JobState] | None = None,
        now: float | None = None,
    ) -> bool:
        sets = {**sets, "updated_at": _now(now)}
        sql = f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?"
        args = [*sets.values(), job_id]
        if from_states is not None:
            states = tuple(from_states)
            sql += f" AND state IN ({_marks(len(states))})"
            args += states
        async with self._tx() as db:
            return await self._write(db, sql, args) == 1

    async def mark_submitting(self, job_id: str) -> bool:
        return await self._set(job_id, {"state": JobState.SUBMITTING}, [JobState.RESERVED])

    async def mark_submitted(self, job_id: str, task_id: str) -> bool:
        """submitting -> submitted; True again (changing nothing) for the same task id."""
        now = time.time()
        async with self._tx() as db:
            row = await self._one(db, "SELECT state, task_id FROM jobs WHERE id = ?", (job_id,))
            if row is None:
                return False
            if row["state"] == JobState.SUBMITTED:
                return bool(row["task_id"] == task_id)
            return await self._write(
                db, "UPDATE jobs SET state = 'submitted', task_id = ?, submitted_at = ?,"
                " updated_at = ? WHERE id = ? AND state = 'submitting'",
                (task_id, now, now, job_id),
            ) == 1

    async def mark_succeeded(self, job_id: str, video_url: str) -> bool:
        return await self._set(
            job_id, {"state": JobState.SUCCEEDED, "video_url": video_url}, [JobState.SUBMITTED]
        )

    async def mark_delivered(self, job_id: str, message_id: int | None) -> bool:
        """succeeded -> delivered; the reserved seconds become committed, with the cost."""
        return await self._end(job_id, JobState.DELIVERED, (JobState.SUCCEEDED,), refund=False,
                               message_id=message_id)

    async def fail_job(self, job_id: str, code: str, message: str) -> bool:
        """Any unfinished state -> failed and the seconds refunded, exactly once."""
        return await self._end(job_id, JobState.FAILED, _ENDABLE, refund=True,
                               code=code, message=message)

    async def cancel_job(
        self, job_id: str, reason: str, refund: bool, *, expected: JobState | None = None
    ) -> bool:
        """Unfinished -> cancelled. Without a refund the seconds are committed (spent).

        ``expected``: only from that state (the one the refund was decided on); False,
        changing nothing, when the job has moved on since.
        """
        states = _ENDABLE if expected is None else [s for s in _ENDABLE if s is expected]
        return await self._end(job_id, JobState.CANCELLED, states, refund=refund,
                               code="cancelled", message=reason)

    async def _end(
        self, job_id: str, state: JobState, from_states: Sequence[JobState], *, refund: bool,
        code: str | None = None, message: str | None = None, message_id: int | None = None,
    ) -> bool:
        now = time.time()
        async with self._tx() as db:
            row = await self._one(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))
            if row is None or row["state"] not in from_states:
                return False
            charge = row["charge"]
            if charge == Charge.RESERVED:
                charge = Charge.REFUNDED if refund else Charge.COMMITTED
            sets: dict[str, Any] = {"state": state, "charge": charge, "finished_at": now,
                                    "updated_at": now}
            if code is not None:
                sets |= {"error_code": code, "error_message": message}
            if message_id is not None:
                sets["message_id"] = message_id
            await db.execute(
                f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                (*sets.values(), job_id),
            )
            if charge == Charge.REFUNDED and row["charge"] == Charge.RESERVED:
                await self._ledger(db, row, "refund", -row["seconds"], now, note=code)
            elif charge == Charge.COMMITTED and row["charge"] == Charge.RESERVED:
                cost = job_cost(row["seconds"], row["price_per_second"])
                await self._ledger(db, row, "commit", 0, now, cost=cost, note=code)
        return True

    async def set_task_hint(self, job_id: str, task_id: str) -> bool:
        return await self._set(job_id, {"task_hint": task_id})

    async def set_video_path(self, job_id: str, path: str | os.PathLike[str]) -> bool:
        return await self._set(job_id, {"video_path": os.fspath(path)})

    async def set_error(self, job_id: str, code: str, message: str) -> bool:
        return await self._set(job_id, {"error_code": code, "error_message": message})

    async def update_context(self, job_id: str, patch: dict[str, Any]) -> bool:
        """Merge ``patch`` into the job's context (top-level keys replaced)."""
        async with self._tx() as db:
            row = await self._one(db, "SELECT * FROM jobs WHERE id = ?", (job_id,))
            if row is None:
                return False
            context = {**_job(row).context, **patch}
            await db.execute(
                "UPDATE jobs SET context = ?, updated_at = ? WHERE id = ?",
                (json.dumps(context), time.time(), job_id),
            )
        return True

    async def unfinished_jobs(self) -> list[Job]:
        """Jobs to resume after a restart, oldest first."""
        async with self._tx(write=False) as db:
            rows = await self._rows(
                db, f"SELECT * FROM jobs WHERE state IN ({_marks(4)})"
                " ORDER BY created_at, rowid", UNFINISHED,
            )
        return [_job(r) for r in rows]

    async def jobs_for(
        self, guild_id: int | None, user_id: int | None, limit: int = 10
    ) -> list[Job]:
        """A guild's (or one member's) latest jobs, newest first."""
        sql, args = "SELECT * FROM jobs WHERE guild_id IS ?", [guild_id]
        if user_id is not None:
            sql += " AND user_id = ?"
            args.append(user_id)
        async with self._tx(write=False) as db:
            rows = await self._rows(db, sql + " ORDER BY created_at DESC, rowid DESC LIMIT ?",
                                    [*args, limit])
        return [_job(r) for r in rows]

    async def count_unfinished(self, provider: str | None = None) -> int:
        sql = f"SELECT COUNT(*) FROM jobs WHERE state IN ({_marks(4)})"
        args: list[str] = [*UNFINISHED]
        if provider is not None:
            sql += " AND provider = ?"
            args.append(provider)
        async with self._tx(write=False) as db:
            return int(await self._scalar(db, sql, args))
