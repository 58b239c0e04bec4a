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

from bot.catalog.pricing import dollars
from bot.quota import (
    QuotaSettings,
    check_reservation,
    check_spend,
)
from bot.store import steps
from bot.store.backend import LockSpace, Row, Tx
from bot.store.base import (
    GuildQuota,
    StoreBase,
    _job,
    _marks,
    _now,
    _token_hash,
    in_progress_steps,
    ledger_steps,
    quota_steps,
    used_steps,
    window_steps,
)
from bot.store.models import _ENDABLE, UNFINISHED, Charge, Job, JobState, NewJob
from bot.store.steps import Steps


class JobsMixin(StoreBase):
    # -- jobs --

    async def reserve(
        self, new: NewJob, quota: QuotaSettings | GuildQuota, now: float | None = None, *,
        job_id: str | None = None, token: str | None = None,
    ) -> tuple[Job, str]:
        """Check the limits and record the job with its seconds reserved, atomically.

        ``quota`` is either the limits to apply, or ``GuildQuota(default_seconds)``: the
        guild's stored quota, read in this same transaction (so a moderator's change is
        never half-seen), else the default.

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
        plan = reserve_steps(new, quota, now, job_id, _token_hash(token))
        if self._batch is not None:  # grouped with the others waiting at this moment
            row = await self._batch.submit(plan, -1 if new.guild_id is None else new.guild_id)
        else:
            async with self._tx() as db:
                row = await steps.run(db, plan)
        return _job(row), token

    async def job(self, job_id: str) -> Job | None:
        async with self._tx(write=False) as db:
            row = await db.one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else _job(row)

    async def job_by_token(self, token: str) -> Job | None:
        if not token or len(token) > 256:
            return None
        digest = _token_hash(token)
        async with self._tx(write=False) as db:
            row = await db.one("SELECT * FROM jobs WHERE token_hash = ?", (digest,))
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
            return await db.execute(sql, args) == 1

    async def mark_submitting(self, job_id: str) -> bool:
        return await self._set(job_id, {"state": JobState.SUBMITTING}, [JobState.RESERVED])

    async def mark_submitted(self, job_id: str, task_id: str) -> bool:
        """submitting -> submitted; True again (changing nothing) for the same task id."""
        now = time.time()
        async with self._tx() as db:
            row = await db.one(
                "SELECT state, task_id FROM jobs WHERE id = ?" + db.for_update, (job_id,)
            )
            if row is None:
                return False
            if row["state"] == JobState.SUBMITTED:
                return bool(row["task_id"] == task_id)
            return await db.execute(
                "UPDATE jobs SET state = 'submitted', task_id = ?, submitted_at = ?,"
                " updated_at = ? WHERE id = ? AND state = 'submitting'",
                (task_id, now, now, job_id),
            ) == 1

    async def mark_succeeded(self, job_id: str, video_url: str) -> bool:
        # A finished render no longer occupies the provider: its slot goes with it.
        return await self._set(
            job_id, {"state": JobState.SUCCEEDED, "video_url": video_url, "slot": 0},
            [JobState.SUBMITTED],
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
            row = await db.one("SELECT * FROM jobs WHERE id = ?" + db.for_update, (job_id,))
            if row is None or row["state"] not in from_states:
                return False
            charge = row["charge"]
            if charge == Charge.RESERVED:
                charge = Charge.REFUNDED if refund else Charge.COMMITTED
            sets: dict[str, Any] = {"state": state, "charge": charge, "finished_at": now,
                                    "updated_at": now, "slot": 0, "owner": None,
                                    "lease_until": None}
            if code is not None:
                sets |= {"error_code": code, "error_message": message}
            if message_id is not None:
                sets["message_id"] = message_id
            await db.execute(
                f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                (*sets.values(), job_id),
            )
            price = row["price_micros"]
            if charge == Charge.REFUNDED and row["charge"] == Charge.RESERVED:
                await self._ledger(db, row, "refund", -row["seconds"], now, note=code,
                                   money=None if price is None else -price)
            elif charge == Charge.COMMITTED and row["charge"] == Charge.RESERVED:
                cost = None if price is None else dollars(price)
                await self._ledger(db, row, "commit", 0, now, cost=cost, note=code)
        return True

    async def move_to_provider(
        self, job_id: str, provider: str, model: str, price_micros: int | None,
        tried: list[str], *, audio: bool | None = None, default_seconds: int | None = None,
    ) -> bool:
        """A create the provider refused for certain (nothing was made): the job goes
        back to ``reserved`` on another provider's equivalent model, its slot given back.
        Its seconds stay reserved; its price becomes the new provider's, which must fit
        the guild's spend caps (raises QuotaExceeded, changing nothing, when it does not;
        ``default_seconds`` is the quota a guild without one has)."""
        now = time.time()
        async with self._tx() as db:
            first = await db.one("SELECT guild_id FROM jobs WHERE id = ?", (job_id,))
            if first is not None and first["guild_id"] is not None:
                await db.lock(LockSpace.QUOTA, first["guild_id"])  # as reservations do
            row = await db.one("SELECT * FROM jobs WHERE id = ?" + db.for_update, (job_id,))
            if row is None or row["state"] not in (JobState.RESERVED, JobState.SUBMITTING):
                return False
            if row["guild_id"] is not None and default_seconds is not None:
                await self._check_new_price(db, row, price_micros, default_seconds)
            context = {**_job(row).context, "providers_tried": tried}
            context["options"] = {**(context.get("options") or {}), "audio": audio}
            per_second = None if price_micros is None or not row["seconds"] else round(
                price_micros / row["seconds"] / 1_000_000, 6)
            moved = await db.execute(
                "UPDATE jobs SET provider = ?, model = ?, price_micros = ?, price_per_second = ?,"
                " state = 'reserved', slot = 0, task_hint = NULL, context = ?, updated_at = ?"
                " WHERE id = ?",
                (provider, model, price_micros, per_second, json.dumps(context), now, job_id),
            ) == 1
            if moved and price_micros != row["price_micros"]:
                change = (price_micros or 0) - (row["price_micros"] or 0)
                await self._ledger(db, row, "reserve", 0, now, note=f"moved to {provider}",
                                   money=change)
            return moved

    async def _check_new_price(self, db: Tx, row: Row, price: int | None,
                               default_seconds: int) -> None:
        """Raise QuotaExceeded unless the job, re-priced, fits the spend caps of the
        window it was asked in (its own old price no longer counts)."""
        quota = await self._quota_in(db, row["guild_id"], default_seconds)
        if not quota.caps_spend:
            return
        window = await self._window(db, row["guild_id"], quota, row["created_at"])
        used = await self._used(db, row["guild_id"], window, row["user_id"])
        old = row["price_micros"] or 0
        refusal = check_spend(
            quota, price, guild_spent=used.spent - old,
            member_spent=None if used.member_spent is None else used.member_spent - old,
            resets_at=window[1],
        )
        if refusal is not None:
            raise refusal

    async def set_task_hint(self, job_id: str, task_id: str) -> bool:
        return await self._set(job_id, {"task_hint": task_id})

    async def set_video_path(self, job_id: str, path: str | os.PathLike[str]) -> bool:
        return await self._set(job_id, {"video_path": os.fspath(path)})

    async def update_context(self, job_id: str, patch: dict[str, Any]) -> bool:
        """Merge ``patch`` into the job's context (top-level keys replaced)."""
        async with self._tx() as db:
            row = await db.one("SELECT * FROM jobs WHERE id = ?" + db.for_update, (job_id,))
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
            rows = await db.rows(
                f"SELECT * FROM jobs WHERE state IN ({_marks(4)})"
                " ORDER BY created_at, rowid", UNFINISHED,
            )
        return [_job(r) for r in rows]

    async def jobs_for(
        self, guild_id: int | None, user_id: int | None, limit: int = 10
    ) -> list[Job]:
        """A guild's (or one member's) latest jobs, newest first."""
        if guild_id is None:
            sql, args = "SELECT * FROM jobs WHERE guild_id IS NULL", []
        else:
            sql, args = "SELECT * FROM jobs WHERE guild_id = ?", [guild_id]
        if user_id is not None:
            sql += " AND user_id = ?"
            args.append(user_id)
        async with self._tx(write=False) as db:
            rows = await db.rows(sql + " ORDER BY created_at DESC, rowid DESC LIMIT ?",
                                 [*args, limit])
        return [_job(r) for r in rows]

    async def count_unfinished(self, provider: str | None = None) -> int:
        sql = f"SELECT COUNT(*) FROM jobs WHERE state IN ({_marks(4)})"
        args: list[str] = [*UNFINISHED]
        if provider is not None:
            sql += " AND provider = ?"
            args.append(provider)
        async with self._tx(write=False) as db:
            return int(await db.scalar(sql, args))


def reserve_steps(
    new: NewJob, quota: QuotaSettings | GuildQuota, now: float, job_id: str, token_hash: str,
) -> Steps[Row]:
    """The reservation: check the limits, insert the job and its ledger row; raises
    QuotaExceeded (the caller rolls back) when a limit refuses."""
    if new.guild_id is not None:
        # Serialises this guild's reservations across processes (PostgreSQL); member
        # caps count within the guild, so they are covered too.
        yield steps.lock(LockSpace.QUOTA, new.guild_id)
        if isinstance(quota, GuildQuota):
            quota = yield from quota_steps(new.guild_id, quota.default_seconds)
        window = yield from window_steps(new.guild_id, quota, now)
        capped = quota.member_seconds is not None or quota.member_spend_micros is not None
        used = yield from used_steps(new.guild_id, window, new.user_id if capped else None)
        in_progress = 0
        if quota.concurrent is not None:
            in_progress = yield from in_progress_steps(new.guild_id)
        refusal = check_reservation(
            quota, new.seconds, guild_used=used.seconds, member_used=used.member_seconds,
            in_progress=in_progress, resets_at=window[1], price=new.price_micros,
            guild_spent=used.spent, member_spent=used.member_spent,
        )
        if refusal is not None:
            raise refusal
    row = yield steps.one(
        "INSERT INTO jobs (id, token_hash, guild_id, channel_id, user_id, provider, model,"
        " mode, prompt, duration, orientation, image_path, state, charge, seconds,"
        " price_per_second, price_micros, context, created_at, updated_at, owner, lease_until)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'reserved', 'reserved',"
        " ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
        (job_id, token_hash, new.guild_id, new.channel_id, new.user_id,
         str(new.provider), str(new.model), str(new.mode), new.prompt, new.duration,
         str(new.orientation), new.image_path, new.seconds, new.price_per_second,
         new.price_micros, json.dumps(new.context), now, now, new.owner, new.lease_until),
    )
    assert row is not None
    yield from ledger_steps(row, "reserve", new.seconds, now, money=new.price_micros)
    result: Row = row
    return result
