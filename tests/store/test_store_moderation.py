"""The store's moderation part: settings, blocklist, blocked members, the rule snapshot,
job look-ups for /jobs and /cancel, /forget-me, and the 0002 migration."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import bot.store.migrate as migrate_module
from bot.moderation.policy import GuildPolicy
from bot.quota import QuotaSettings
from bot.store import DELETED_PROMPT, JobState, NewJob, Store, migrations

GUILD, OTHER_GUILD, USER, OTHER_USER = 1001, 1002, 10, 11
NOW = 1_710_000_000.0
QUOTA = QuotaSettings(seconds=1000)


def new_job(**changes: Any) -> NewJob:
    fields: dict[str, Any] = {
        "guild_id": GUILD, "channel_id": 55, "user_id": USER, "provider": "sandbox",
        "model": "sora-2", "mode": "text-to-video", "prompt": "a cat surfing", "duration": 4,
        "orientation": "landscape", "seconds": 4, "price_per_second": 0.1,
        "context": {"interaction_token": "t", "image_url": "https://cdn.example/i.png"},
    }
    fields.update(changes)
    return NewJob(**fields)


# -- settings ---------------------------------------------------------------------------------


async def test_a_guild_without_settings_has_the_defaults(store: Store) -> None:
    policy = await store.get_policy(GUILD)
    assert policy == GuildPolicy() and policy.is_default


async def test_settings_round_trip_per_guild(store: Store) -> None:
    wanted = GuildPolicy(channels=(5, 6), roles=(7,), models=("sora-2",), max_duration=8,
                         cooldown_s=30, max_queued=2, audit_channel_id=9)
    before, after = await store.edit_policy(GUILD, lambda _: wanted, USER, now=NOW)
    assert before == GuildPolicy() and after == wanted
    assert await store.get_policy(GUILD) == wanted
    assert await store.get_policy(OTHER_GUILD) == GuildPolicy()
    _, again = await store.edit_policy(
        GUILD, lambda p: p.model_copy(update={"cooldown_s": 0}), USER
    )
    assert again == wanted.model_copy(update={"cooldown_s": 0})


async def test_a_failing_edit_changes_nothing(store: Store) -> None:
    await store.edit_policy(GUILD, lambda p: p.model_copy(update={"cooldown_s": 5}), USER)

    def refuse(policy: GuildPolicy) -> GuildPolicy:
        raise ValueError("no")

    with pytest.raises(ValueError):
        await store.edit_policy(GUILD, refuse, USER)
    assert (await store.get_policy(GUILD)).cooldown_s == 5


# -- the blocklist ----------------------------------------------------------------------------


async def test_blocklist_add_list_remove(store: Store) -> None:
    status, word = await store.add_block_entry(GUILD, "word", "Bad Word", "bad word", USER,
                                               limit=10, now=NOW)
    assert status == "added" and word is not None
    assert (word.kind, word.value, word.key, word.added_by) == ("word", "Bad Word",
                                                                "bad word", USER)
    status, _ = await store.add_block_entry(GUILD, "word", "BAD  word", "bad word", USER,
                                            limit=10)
    assert status == "duplicate"  # same normalised key
    status, pat = await store.add_block_entry(GUILD, "pattern", "b+", "b+", USER, limit=10)
    assert status == "added" and pat is not None
    status, _ = await store.add_block_entry(OTHER_GUILD, "word", "bad", "bad", USER, limit=10)
    assert status == "added"
    assert [(e.kind, e.key) for e in await store.block_entries(GUILD)] == [
        ("word", "bad word"), ("pattern", "b+")]
    removed = await store.remove_block_entry(GUILD, "bad   WORD", ["bad word"])  # by key
    assert removed is not None and removed.id == word.id
    assert await store.remove_block_entry(GUILD, "nothing", ["nothing"]) is None
    removed = await store.remove_block_entry(GUILD, "b+")  # by value
    assert removed is not None and removed.kind == "pattern"
    assert await store.block_entries(GUILD) == []
    assert len(await store.block_entries(OTHER_GUILD)) == 1


async def test_the_blocklist_has_a_size_limit(store: Store) -> None:
    for n in range(3):
        status, _ = await store.add_block_entry(GUILD, "word", f"w{n}", f"w{n}", USER, limit=3)
        assert status == "added"
    status, entry = await store.add_block_entry(GUILD, "word", "w9", "w9", USER, limit=3)
    assert (status, entry) == ("full", None)


# -- blocked members and the snapshot ---------------------------------------------------------


async def test_block_and_unblock(store: Store) -> None:
    assert await store.block_member(GUILD, USER, OTHER_USER, "spam", now=NOW)
    assert not await store.block_member(GUILD, USER, OTHER_USER, "spam again")
    (blocked,) = await store.blocked_members(GUILD)
    assert (blocked.user_id, blocked.reason, blocked.blocked_by) == (USER, "spam again",
                                                                     OTHER_USER)
    assert await store.blocked_members(OTHER_GUILD) == []
    assert (await store.rule_snapshot(GUILD, USER)).blocked is not None
    assert (await store.rule_snapshot(OTHER_GUILD, USER)).blocked is None
    assert await store.unblock_member(GUILD, USER)
    assert not await store.unblock_member(GUILD, USER)
    assert (await store.rule_snapshot(GUILD, USER)).blocked is None


async def test_the_snapshot_has_the_members_latest_and_unfinished_jobs(store: Store) -> None:
    empty = await store.rule_snapshot(GUILD, USER)
    assert (empty.last_request_at, empty.unfinished, empty.entries) == (None, 0, ())
    first, _ = await store.reserve(new_job(), QUOTA, now=NOW)
    await store.reserve(new_job(), QUOTA, now=NOW + 5)
    await store.reserve(new_job(user_id=OTHER_USER), QUOTA, now=NOW + 9)
    await store.reserve(new_job(guild_id=OTHER_GUILD), QUOTA, now=NOW + 9)
    await store.fail_job(first.id, "x", "failed")
    await store.add_block_entry(GUILD, "pattern", "b+", "b+", USER, limit=10)
    snapshot = await store.rule_snapshot(GUILD, USER)
    assert snapshot.last_request_at == NOW + 5
    assert snapshot.unfinished == 1  # the failed one is finished
    assert snapshot.has_patterns


# -- /jobs and /cancel look-ups ---------------------------------------------------------------


async def test_find_jobs_by_id_prefix(store: Store) -> None:
    job, _ = await store.reserve(new_job(), QUOTA, job_id="abcdef" + "0" * 26, now=NOW)
    await store.reserve(new_job(), QUOTA, job_id="abcd99" + "0" * 26, now=NOW)
    await store.reserve(new_job(guild_id=OTHER_GUILD), QUOTA, job_id="abcdee" + "0" * 26)
    assert [j.id for j in await store.find_jobs(GUILD, "abcdef")] == [job.id]
    assert [j.id for j in await store.find_jobs(GUILD, "ABCDEF")] == [job.id]
    assert len(await store.find_jobs(GUILD, "abcd")) == 2
    assert await store.find_jobs(GUILD, "abcdef", user_id=OTHER_USER) == []
    assert await store.find_jobs(GUILD, "abcdee") == []  # another guild's


async def test_unfinished_for_a_member_or_the_guild(store: Store) -> None:
    mine, _ = await store.reserve(new_job(), QUOTA, now=NOW)
    theirs, _ = await store.reserve(new_job(user_id=OTHER_USER), QUOTA, now=NOW + 1)
    done, _ = await store.reserve(new_job(), QUOTA, now=NOW + 2)
    await store.cancel_job(done.id, "stop", refund=True)
    assert [j.id for j in await store.unfinished_for(GUILD, USER)] == [mine.id]
    assert [j.id for j in await store.unfinished_for(GUILD, None)] == [theirs.id, mine.id]


# -- /forget-me -------------------------------------------------------------------------------


async def test_forget_member_replaces_prompts_and_keeps_the_figures(store: Store) -> None:
    delivered, _ = await store.reserve(new_job(prompt="my secret", image_path="/tmp/i.png"),
                                       QUOTA, now=NOW)
    await store.mark_submitting(delivered.id)
    await store.mark_submitted(delivered.id, "task")
    await store.mark_succeeded(delivered.id, "https://cdn.example/v.mp4")
    await store.mark_delivered(delivered.id, 77)
    failed, _ = await store.reserve(new_job(prompt="another secret"), QUOTA, now=NOW)
    await store.fail_job(failed.id, "policy", "The provider refused 'another secret'")
    running, _ = await store.reserve(new_job(prompt="still running"), QUOTA, now=NOW)
    others, _ = await store.reserve(new_job(user_id=OTHER_USER, prompt="not mine"), QUOTA,
                                    now=NOW)
    elsewhere, _ = await store.reserve(new_job(guild_id=OTHER_GUILD, prompt="elsewhere"),
                                       QUOTA, now=NOW)
    await store.cancel_job(elsewhere.id, "stop", refund=True)
    ledger_before = await store.ledger_rows()
    report_before = await store.usage_report(GUILD, QUOTA, now=NOW + 1)

    result = await store.forget_member(USER, now=NOW + 10)
    assert result.prompts == 3 and result.unfinished == 1
    assert result.image_paths == ["/tmp/i.png"]
    for job_id in (delivered.id, failed.id, elsewhere.id):
        job = await store.job(job_id)
        assert job is not None and job.prompt == DELETED_PROMPT
        assert job.prompt_deleted_at == NOW + 10 and job.image_path is None
        assert job.error_message is None and "image_url" not in job.context
        assert job.user_id == USER
    delivered_now = await store.job(delivered.id)
    assert delivered_now is not None and delivered_now.state is JobState.DELIVERED
    assert delivered_now.seconds == 4 and delivered_now.message_id == 77
    still = await store.job(running.id)
    assert still is not None and still.prompt == "still running"  # needed until it ends
    kept = await store.job(others.id)
    assert kept is not None and kept.prompt == "not mine"
    assert await store.ledger_rows() == ledger_before
    assert await store.usage_report(GUILD, QUOTA, now=NOW + 1) == report_before

    again = await store.forget_member(USER, now=NOW + 20)
    assert again.prompts == 0 and again.image_paths == []
    job = await store.job(delivered.id)
    assert job is not None and job.prompt_deleted_at == NOW + 10  # the first time stays


# -- the migration ----------------------------------------------------------------------------


async def test_0002_migrates_a_version_1_database(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bot.sqlite3"
    first = [m for m in migrations() if m[0] == 1]
    monkeypatch.setattr(migrate_module, "migrations", lambda _dialect: first)
    old = await Store.open(path)
    async with old._tx() as db:
        await db.execute(
            "INSERT INTO jobs (id, token_hash, guild_id, user_id, provider, model, mode, prompt,"
            " duration, orientation, state, charge, seconds, context, created_at, updated_at)"
            " VALUES ('j1', 'h', ?, ?, 'sandbox', 'sora-2', 'text-to-video', 'old prompt', 4,"
            " 'landscape', 'delivered', 'committed', 4, ?, ?, ?)",
            (GUILD, USER, json.dumps({}), NOW, NOW),
        )
    await old.close()
    monkeypatch.undo()
    store = await Store.open(path)
    try:
        job = await store.job("j1")
        assert job is not None and job.prompt == "old prompt" and job.prompt_deleted_at is None
        assert (await store.rule_snapshot(GUILD, USER)).last_request_at == NOW
    finally:
        await store.close()
    with sqlite3.connect(path) as plain:
        tables = {r[0] for r in plain.execute("SELECT name FROM sqlite_master")}
        assert {"guild_settings", "blocklist", "blocked_members"} <= tables
        assert plain.execute("PRAGMA user_version").fetchone()[0] == migrations()[-1][0]
