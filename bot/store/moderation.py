"""Moderation: guild settings, the blocklist, blocked members, job look-ups for /jobs and
/cancel, and /forget-me."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, Literal

from bot.moderation.policy import (
    BlockedMember,
    BlockEntry,
    EntryKind,
    ForgetResult,
    GuildPolicy,
    RuleSnapshot,
)
from bot.store.backend import LockSpace, Row, Tx
from bot.store.base import StoreBase, _job, _marks, _now
from bot.store.models import TERMINAL, UNFINISHED, Job

DELETED_PROMPT = "[deleted]"
FORGOTTEN_TASK = "sha256:"
AddStatus = Literal["added", "duplicate", "full"]


def _fingerprint(task_id: str | None) -> str | None:
    """A forgotten job's task id: its sha256 (idempotent), never the id itself."""
    if task_id is None or task_id.startswith(FORGOTTEN_TASK):
        return task_id
    return FORGOTTEN_TASK + hashlib.sha256(task_id.encode()).hexdigest()


def _ids(raw: str | None) -> tuple[Any, ...]:
    try:
        value = json.loads(raw or "[]")
    except ValueError:
        return ()
    return tuple(value) if isinstance(value, list) else ()


def _context(raw: str | None) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _policy(row: Row | None) -> GuildPolicy:
    if row is None:
        return GuildPolicy()
    return GuildPolicy(
        channels=tuple(int(c) for c in _ids(row["channels"])),
        roles=tuple(int(r) for r in _ids(row["roles"])),
        models=tuple(str(m) for m in _ids(row["models"])),
        max_duration=row["max_duration"],
        cooldown_s=row["cooldown_s"],
        max_queued=row["max_queued"],
        audit_channel_id=row["audit_channel_id"],
    )


def _entry(row: Row) -> BlockEntry:
    return BlockEntry.model_validate(
        {k: row[k] for k in ("id", "kind", "value", "key", "added_by", "added_at")}
    )


def _blocked(row: Row) -> BlockedMember:
    return BlockedMember.model_validate(
        {k: row[k] for k in ("user_id", "reason", "blocked_by", "blocked_at")}
    )


class ModerationMixin(StoreBase):
    # -- guild settings --

    @staticmethod
    async def _policy_in(db: Tx, guild_id: int) -> GuildPolicy:
        return _policy(await db.one("SELECT * FROM guild_settings WHERE guild_id = ?",
                                    (guild_id,)))

    async def get_policy(self, guild_id: int) -> GuildPolicy:
        async with self._tx(write=False) as db:
            return await self._policy_in(db, guild_id)

    async def edit_policy(
        self, guild_id: int, change: Callable[[GuildPolicy], GuildPolicy],
        by_user: int | None, now: float | None = None,
    ) -> tuple[GuildPolicy, GuildPolicy]:
        """Apply ``change`` to the guild's settings atomically; returns (before, after).

        ``change`` runs inside the write transaction: it must be quick and may raise to
        abort (nothing is written then).
        """
        async with self._tx() as db:
            await db.lock(LockSpace.GUILD_SETTINGS, guild_id)
            before = await self._policy_in(db, guild_id)
            after = change(before)
            await db.execute(
                "INSERT INTO guild_settings (guild_id, channels, roles, models, max_duration,"
                " cooldown_s, max_queued, audit_channel_id, updated_at, updated_by)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET"
                " channels = excluded.channels, roles = excluded.roles, models = excluded.models,"
                " max_duration = excluded.max_duration, cooldown_s = excluded.cooldown_s,"
                " max_queued = excluded.max_queued, audit_channel_id = excluded.audit_channel_id,"
                " updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                (guild_id, json.dumps(list(after.channels)), json.dumps(list(after.roles)),
                 json.dumps(list(after.models)), after.max_duration, after.cooldown_s,
                 after.max_queued, after.audit_channel_id, _now(now), by_user),
            )
        return before, after

    # -- the blocklist --

    async def block_entries(self, guild_id: int) -> list[BlockEntry]:
        """Words first, then patterns, each oldest first."""
        async with self._tx(write=False) as db:
            rows = await db.rows(
                "SELECT * FROM blocklist WHERE guild_id = ? ORDER BY kind DESC, id", (guild_id,)
            )
        return [_entry(r) for r in rows]

    async def add_block_entry(
        self, guild_id: int, kind: EntryKind, value: str, key: str, by_user: int | None,
        *, limit: int, now: float | None = None,
    ) -> tuple[AddStatus, BlockEntry | None]:
        async with self._tx() as db:
            await db.lock(LockSpace.GUILD_SETTINGS, guild_id)
            count = int(await db.scalar(
                "SELECT COUNT(*) FROM blocklist WHERE guild_id = ?", (guild_id,)
            ))
            if count >= limit:
                return "full", None
            row = await db.one(
                "INSERT INTO blocklist (guild_id, kind, value, key, added_by, added_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING *",
                (guild_id, kind, value, key, by_user, _now(now)),
            )
        if row is None:
            return "duplicate", None
        return "added", _entry(row)

    async def remove_block_entry(
        self, guild_id: int, value: str, keys: Sequence[str] = ()
    ) -> BlockEntry | None:
        """Remove the oldest entry typed as ``value`` or stored as one of ``keys``."""
        async with self._tx() as db:
            await db.lock(LockSpace.GUILD_SETTINGS, guild_id)
            row = await db.one(
                f"SELECT * FROM blocklist WHERE guild_id = ? AND (value = ?"
                f" OR key IN ({_marks(len(keys)) or 'NULL'})) ORDER BY value != ?, id LIMIT 1",
                (guild_id, value, *keys, value),
            )
            if row is None:
                return None
            await db.execute("DELETE FROM blocklist WHERE id = ?", (row["id"],))
        return _entry(row)

    # -- blocked members --

    async def block_member(
        self, guild_id: int, user_id: int, by_user: int | None, reason: str | None = None,
        now: float | None = None,
    ) -> bool:
        """Block a member; False (the reason updated) if they were already blocked."""
        async with self._tx() as db:
            await db.lock(LockSpace.GUILD_SETTINGS, guild_id)
            existed = await db.one(
                "SELECT 1 AS x FROM blocked_members WHERE guild_id = ? AND user_id = ?",
                (guild_id, user_id),
            )
            await db.execute(
                "INSERT INTO blocked_members (guild_id, user_id, reason, blocked_by, blocked_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id, user_id) DO UPDATE SET"
                " reason = excluded.reason, blocked_by = excluded.blocked_by",
                (guild_id, user_id, reason, by_user, _now(now)),
            )
        return existed is None

    async def unblock_member(self, guild_id: int, user_id: int) -> bool:
        async with self._tx() as db:
            return await db.execute(
                "DELETE FROM blocked_members WHERE guild_id = ? AND user_id = ?",
                (guild_id, user_id),
            ) == 1

    async def blocked_members(self, guild_id: int) -> list[BlockedMember]:
        async with self._tx(write=False) as db:
            rows = await db.rows(
                "SELECT * FROM blocked_members WHERE guild_id = ? ORDER BY blocked_at",
                (guild_id,),
            )
        return [_blocked(r) for r in rows]

    # -- the rule check's inputs, in one read --

    async def rule_snapshot(self, guild_id: int, user_id: int) -> RuleSnapshot:
        async with self._tx(write=False) as db:
            policy = await self._policy_in(db, guild_id)
            entries = await db.rows(
                "SELECT * FROM blocklist WHERE guild_id = ? ORDER BY kind DESC, id",
                (guild_id,),
            )
            blocked = await db.one(
                "SELECT * FROM blocked_members WHERE guild_id = ? AND user_id = ?",
                (guild_id, user_id),
            )
            last = await db.scalar(
                "SELECT MAX(created_at) FROM jobs WHERE guild_id = ? AND user_id = ?",
                (guild_id, user_id),
            )
            unfinished = await db.scalar(
                f"SELECT COUNT(*) FROM jobs WHERE guild_id = ? AND user_id = ?"
                f" AND state IN ({_marks(len(UNFINISHED))})", (guild_id, user_id, *UNFINISHED),
            )
        return RuleSnapshot(
            policy=policy, entries=tuple(_entry(r) for r in entries),
            blocked=None if blocked is None else _blocked(blocked),
            last_request_at=last, unfinished=int(unfinished),
        )

    # -- jobs for /jobs and /cancel --

    async def find_jobs(
        self, guild_id: int, id_prefix: str, user_id: int | None = None, limit: int = 2
    ) -> list[Job]:
        """The guild's jobs whose id starts with ``id_prefix`` (a member's only, if given)."""
        sql = "SELECT * FROM jobs WHERE guild_id = ? AND substr(id, 1, ?) = ?"
        args: list[Any] = [guild_id, len(id_prefix), id_prefix.lower()]
        if user_id is not None:
            sql += " AND user_id = ?"
            args.append(user_id)
        async with self._tx(write=False) as db:
            rows = await db.rows(sql + " ORDER BY created_at DESC LIMIT ?", [*args, limit])
        return [_job(r) for r in rows]

    async def unfinished_for(
        self, guild_id: int, user_id: int | None, limit: int = 25
    ) -> list[Job]:
        """A guild's (or one member's) unfinished jobs, newest first."""
        sql = (f"SELECT * FROM jobs WHERE guild_id = ? AND state IN "
               f"({_marks(len(UNFINISHED))})")
        args: list[Any] = [guild_id, *UNFINISHED]
        if user_id is not None:
            sql += " AND user_id = ?"
            args.append(user_id)
        async with self._tx(write=False) as db:
            rows = await db.rows(sql + " ORDER BY created_at DESC LIMIT ?", [*args, limit])
        return [_job(r) for r in rows]

    # -- /forget-me --

    async def forget_member(self, user_id: int, now: float | None = None) -> ForgetResult:
        """Replace the member's prompts (in every guild) with "[deleted]".

        Finished jobs only: an unfinished job still needs its prompt (and image) until it
        ends. Seconds, costs, states and the ledger stay; so does user_id (quota caps
        count it). Error texts go too (a provider may quote the prompt), as does the
        image's URL. Returns the image files the caller must delete.
        """
        now = _now(now)
        terminal = tuple(TERMINAL)
        async with self._tx() as db:
            where = f"user_id = ? AND state IN ({_marks(len(terminal))})"
            rows = await db.rows(
                f"SELECT id, image_path, context, prompt_deleted_at, task_id, task_hint"
                f" FROM jobs WHERE {where} ORDER BY id{db.for_update}", (user_id, *terminal),
            )
            images = [str(r["image_path"]) for r in rows if r["image_path"]]
            changed = sum(1 for r in rows if r["prompt_deleted_at"] is None)
            await db.execute(
                f"UPDATE jobs SET prompt = ?, error_message = NULL, image_path = NULL,"
                f" prompt_deleted_at = COALESCE(prompt_deleted_at, ?) WHERE {where}",
                (DELETED_PROMPT, now, user_id, *terminal),
            )
            for row in rows:  # the image's URL leaves the context (the rest stays)
                context = _context(row["context"])
                if "image_url" in context:
                    del context["image_url"]
                    await db.execute("UPDATE jobs SET context = ? WHERE id = ?",
                                     (json.dumps(context), row["id"]))
            # A task id may carry the prompt (the sandbox's does): keep only a fingerprint,
            # which still matches the provider's own record of the task.
            for r in rows:
                if r["task_id"] or r["task_hint"]:
                    await db.execute(
                        "UPDATE jobs SET task_id = ?, task_hint = ? WHERE id = ?",
                        (_fingerprint(r["task_id"]), _fingerprint(r["task_hint"]), r["id"]),
                    )
            unfinished = await db.scalar(
                f"SELECT COUNT(*) FROM jobs WHERE user_id = ?"
                f" AND state IN ({_marks(len(UNFINISHED))})", (user_id, *UNFINISHED),
            )
        return ForgetResult(prompts=changed, image_paths=images, unfinished=int(unfinished))
