"""The store: migrations, reservations (and their races), job transitions, the ledger."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import sys
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import bot.store.base as store_module
from bot.quota import QuotaExceeded, QuotaSettings
from bot.store import Charge, Job, JobState, NewJob, Store, migrations, split_sql
from bot.store.base import BUSY_TIMEOUT_MS

NOW = datetime(2024, 3, 13, 12, 0, tzinfo=UTC).timestamp()  # a Wednesday, noon UTC
DAY_END = datetime(2024, 3, 14, tzinfo=UTC).timestamp()
GUILD = 1001
PROJECT = Path(__file__).resolve().parents[2]


def new_job(**changes: Any) -> NewJob:
    fields: dict[str, Any] = {
        "guild_id": GUILD, "channel_id": 55, "user_id": 10, "provider": "sandbox",
        "model": "sora-2", "mode": "text-to-video", "prompt": "a cat surfing", "duration": 4,
        "orientation": "landscape", "seconds": 4, "price_per_second": 0.1,
        "context": {"interaction": "abc"},
    }
    fields.update(changes)
    return NewJob(**fields)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "data" / "bot.sqlite3")
    yield opened
    await opened.close()


async def table_count(store: Store, table: str) -> int:
    async with store._tx(write=False) as db:
        return int(await store._scalar(db, f"SELECT COUNT(*) FROM {table}"))


async def pragma(store: Store, name: str) -> Any:
    async with store._db.execute(f"PRAGMA {name}") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return row[0]


async def to_succeeded(store: Store, job: Job, task_id: str = "task-1") -> None:
    assert await store.mark_submitting(job.id)
    assert await store.mark_submitted(job.id, task_id)
    assert await store.mark_succeeded(job.id, "https://cdn.example/v.mp4")


# -- opening and migrations -----------------------------------------------------------


def test_migrations_are_found_as_package_data() -> None:
    found = migrations()
    assert found[0][:2] == (1, "0001_initial.sql")
    assert [n for n, _, _ in found] == sorted(n for n, _, _ in found)


async def test_open_creates_dir_and_sets_pragmas(tmp_path: Path, store: Store) -> None:
    assert (tmp_path / "data" / "bot.sqlite3").exists()
    assert await pragma(store, "journal_mode") == "wal"
    assert await pragma(store, "foreign_keys") == 1
    assert await pragma(store, "busy_timeout") == BUSY_TIMEOUT_MS == 30_000
    assert await pragma(store, "user_version") == migrations()[-1][0]
    assert await store.ping()


async def test_migrations_apply_once_and_reopen_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    first = await Store.open(path)
    job, _ = await first.reserve(new_job(), QuotaSettings(seconds=100), now=NOW)
    await first.set_meta("k", "v")
    await first.close()
    for _ in range(2):  # CREATE TABLE would fail if a migration ran again
        again = await Store.open(path)
        assert await pragma(again, "user_version") == migrations()[-1][0]
        assert await again.get_meta("k") == "v"
        assert (await again.job(job.id)) is not None
        await again.close()
    with sqlite3.connect(path) as plain:  # WAL is a property of the file
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_later_migrations_run_in_order_each_in_its_own_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bot.sqlite3"
    await (await Store.open(path)).close()
    base = migrations()
    n = base[-1][0] + 1
    extra = [
        (n, f"{n:04d}_notes.sql", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n"
         "INSERT INTO notes (body) VALUES ('semi;colon');"),
        (n + 1, f"{n + 1:04d}_broken.sql",
         "CREATE TABLE broken (id INTEGER);\nINSERT INTO nowhere VALUES (1);"),
    ]
    monkeypatch.setattr(store_module, "migrations", lambda: [*base, *extra])
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        await Store.open(path)
    with sqlite3.connect(path) as plain:
        assert plain.execute("PRAGMA user_version").fetchone()[0] == n
        assert plain.execute("SELECT body FROM notes").fetchall() == [("semi;colon",)]
        tables = {r[0] for r in plain.execute("SELECT name FROM sqlite_master")}
        assert "broken" not in tables  # 0003 rolled back as a whole
    monkeypatch.setattr(store_module, "migrations", lambda: [*base, extra[0]])
    reopened = await Store.open(path)  # the notes migration is not applied twice
    assert await pragma(reopened, "user_version") == n
    await reopened.close()


def test_split_sql_keeps_strings_comments_and_triggers_whole() -> None:
    script = textwrap.dedent("""
        -- a comment; with a semicolon
        CREATE TABLE a (x TEXT DEFAULT 'x;y');
        CREATE TRIGGER t AFTER INSERT ON a BEGIN
            UPDATE a SET x = 'z;' WHERE rowid = new.rowid;
        END;
        -- trailing comment
    """)
    statements = split_sql(script)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    with pytest.raises(ValueError, match="incomplete"):
        split_sql("CREATE TABLE b (x INTEGER)")


# -- reservations ------------------------------------------------------------------


async def test_reserve_records_job_token_hash_and_ledger(store: Store) -> None:
    job, token = await store.reserve(new_job(seconds=8), QuotaSettings(seconds=120), now=NOW)
    assert len(token) == 32  # token_urlsafe(24): 192 bits
    assert job.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert job.state is JobState.RESERVED and job.charge is Charge.RESERVED
    assert (job.guild_id, job.user_id, job.seconds, job.created_at) == (GUILD, 10, 8, NOW)
    assert job.context == {"interaction": "abc"}
    rows = await store.ledger_rows(job.id)
    assert [(r.kind, r.seconds, r.guild_id, r.user_id) for r in rows] == [
        ("reserve", 8, GUILD, 10)
    ]
    assert await store.ledger_balance(job.id) == 8
    async with store._tx(write=False) as db:  # the plain token is nowhere in the file
        dump = [tuple(r) for r in await store._rows(db, "SELECT * FROM jobs")]
    assert token not in repr(dump)


async def test_reserve_accepts_caller_chosen_id_and_token(store: Store) -> None:
    job, token = await store.reserve(
        new_job(), QuotaSettings(seconds=120), job_id="j-1", token="derived-token"
    )
    assert (job.id, token) == ("j-1", "derived-token")
    assert (await store.job_by_token("derived-token")) == job


async def test_guild_refusal_writes_nothing(store: Store) -> None:
    quota = QuotaSettings(seconds=10)
    await store.reserve(new_job(seconds=8), quota, now=NOW)
    jobs, ledger = await table_count(store, "jobs"), await table_count(store, "ledger")
    with pytest.raises(QuotaExceeded) as refused:
        await store.reserve(new_job(seconds=4), quota, now=NOW + 5)
    assert (refused.value.reason, refused.value.remaining, refused.value.limit) == ("guild", 2, 10)
    assert refused.value.resets_at == DAY_END
    assert await table_count(store, "jobs") == jobs
    assert await table_count(store, "ledger") == ledger
    # two seconds still fit
    await store.reserve(new_job(seconds=2), quota, now=NOW + 6)


async def test_member_refusal(store: Store) -> None:
    quota = QuotaSettings(seconds=100, period="week", member_seconds=8)
    await store.reserve(new_job(user_id=1, seconds=8), quota, now=NOW)
    with pytest.raises(QuotaExceeded) as refused:
        await store.reserve(new_job(user_id=1, seconds=4), quota, now=NOW)
    assert (refused.value.reason, refused.value.remaining, refused.value.limit) == ("member", 0, 8)
    assert refused.value.resets_at == datetime(2024, 3, 18, tzinfo=UTC).timestamp()
    await store.reserve(new_job(user_id=2, seconds=8), quota, now=NOW)  # others unaffected
    assert await table_count(store, "jobs") == 2


async def test_concurrent_refusal_and_release(store: Store) -> None:
    quota = QuotaSettings(seconds=100, concurrent=2)
    first, _ = await store.reserve(new_job(), quota, now=NOW)
    await store.reserve(new_job(), quota, now=NOW)
    with pytest.raises(QuotaExceeded) as refused:
        await store.reserve(new_job(), quota, now=NOW)
    assert (refused.value.reason, refused.value.remaining, refused.value.limit) == (
        "concurrent", 0, 2,
    )
    assert refused.value.resets_at == DAY_END
    assert await store.fail_job(first.id, "x", "boom")
    await store.reserve(new_job(), quota, now=NOW)


async def test_guildless_jobs_are_refused_writing_nothing(store: Store) -> None:
    with pytest.raises(ValueError, match="needs a server"):
        await store.reserve(new_job(guild_id=None, seconds=12), QuotaSettings(seconds=0))
    assert await store.jobs_for(None, None) == []


async def test_usage_window_rolls_over(store: Store) -> None:
    quota = QuotaSettings(seconds=10)
    await store.reserve(new_job(seconds=8), quota, now=NOW)
    tomorrow = NOW + 86400
    usage = await store.usage(GUILD, 10, quota, now=tomorrow)
    assert (usage.guild_used, usage.guild_remaining) == (0, 10)
    await store.reserve(new_job(seconds=8), quota, now=tomorrow)


async def test_usage_fields(store: Store) -> None:
    quota = QuotaSettings(seconds=60, member_seconds=20)
    await store.reserve(new_job(user_id=1, seconds=8), quota, now=NOW)
    await store.reserve(new_job(user_id=2, seconds=12), quota, now=NOW)
    usage = await store.usage(GUILD, 1, quota, now=NOW + 1)
    assert usage.period == "day"
    assert (usage.window_start, usage.resets_at) == (DAY_END - 86400, DAY_END)
    assert (usage.guild_used, usage.guild_limit, usage.guild_remaining) == (20, 60, 40)
    assert (usage.member_used, usage.member_limit, usage.member_remaining) == (8, 20, 12)
    assert usage.in_progress == 2
    anonymous = await store.usage(GUILD, None, QuotaSettings(seconds=60), now=NOW + 1)
    assert (anonymous.member_used, anonymous.member_limit, anonymous.member_remaining) == (
        None, None, None,
    )


# -- races --------------------------------------------------------------------------


async def test_race_200_reservations_exact_budget(store: Store) -> None:
    quota = QuotaSettings(seconds=120)
    started = time.perf_counter()
    results = await asyncio.gather(
        *(store.reserve(new_job(user_id=i, seconds=4), quota) for i in range(200)),
        return_exceptions=True,
    )
    elapsed = time.perf_counter() - started
    granted = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert (len(granted), len(refused)) == (30, 170), results
    assert {r.reason for r in refused} == {"guild"}
    assert {r.remaining for r in refused} == {0}
    ledger = await store.ledger_rows()
    assert sum(r.seconds for r in ledger) == 120
    assert (await store.usage(GUILD, None, quota)).guild_used == 120
    print(f"\n200 concurrent reserves: 30 granted, 170 refused in {elapsed:.3f}s")


async def test_race_member_caps_across_five_members(store: Store) -> None:
    quota = QuotaSettings(seconds=120, member_seconds=20)
    results = await asyncio.gather(
        *(store.reserve(new_job(user_id=i % 5, seconds=4), quota) for i in range(200)),
        return_exceptions=True,
    )
    granted = [r[0] for r in results if isinstance(r, tuple)]
    assert len(granted) == 25
    assert Counter(j.user_id for j in granted) == {u: 5 for u in range(5)}
    assert {r.reason for r in results if isinstance(r, QuotaExceeded)} == {"member"}
    assert sum(r.seconds for r in await store.ledger_rows()) == 100
    # member caps summing past the guild budget: the guild budget still holds exactly
    quota = QuotaSettings(seconds=120, member_seconds=32)
    results = await asyncio.gather(
        *(store.reserve(new_job(guild_id=7, user_id=i % 5, seconds=4), quota)
          for i in range(200)),
        return_exceptions=True,
    )
    granted = [r[0] for r in results if isinstance(r, tuple)]
    assert len(granted) == 30
    assert max(Counter(j.user_id for j in granted).values()) <= 8
    assert (await store.usage(7, None, quota)).guild_used == 120


async def test_race_two_connections_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    one, two = await Store.open(path), await Store.open(path)
    try:
        quota = QuotaSettings(seconds=120)

        async def attempt(i: int) -> tuple[Job, str]:
            await asyncio.sleep((i // 10) * 0.001)  # waves, so the connections interleave
            return await (one if i % 2 else two).reserve(new_job(user_id=i, seconds=4), quota)

        results = await asyncio.gather(*(attempt(i) for i in range(200)), return_exceptions=True)
        assert not [r for r in results if not isinstance(r, tuple | QuotaExceeded)], results
        assert sum(isinstance(r, tuple) for r in results) == 30
        by_store = Counter(i % 2 for i, r in enumerate(results) if isinstance(r, tuple))
        print(f"\ntwo connections: granted {by_store[1]} + {by_store[0]} = 30")
        for each in (one, two):
            assert sum(r.seconds for r in await each.ledger_rows()) == 120
            assert (await each.usage(GUILD, None, quota)).guild_used == 120
    finally:
        await one.close()
        await two.close()


_WORKER = """
import asyncio, sys, time
from bot.quota import QuotaExceeded, QuotaSettings
from bot.store import NewJob, Store

async def main(path, start, worker):
    store = await Store.open(path)
    await asyncio.sleep(max(0.0, start - time.time()))
    new = [NewJob(guild_id=1, user_id=worker * 1000 + i, provider="sandbox", model="m",
                  mode="text-to-video", prompt="p", duration=4, orientation="landscape",
                  seconds=4) for i in range(100)]
    quota = QuotaSettings(seconds=int(sys.argv[4]))
    results = await asyncio.gather(*(store.reserve(n, quota) for n in new), return_exceptions=True)
    await store.close()
    bad = [r for r in results if not isinstance(r, (tuple, QuotaExceeded))]
    assert not bad, bad
    print(sum(isinstance(r, tuple) for r in results))

asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
"""


@pytest.mark.parametrize("budget", [120, 600])
async def test_race_two_processes_on_one_file(tmp_path: Path, budget: int) -> None:
    """Two OS processes, 100 reservations of 4 s each, one budget: never overspent."""
    path = tmp_path / "bot.sqlite3"
    await (await Store.open(path)).close()  # migrate first
    start = time.time() + 1.5
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WORKER, str(path), str(start), str(worker), str(budget),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=PROJECT,
        )
        for worker in (1, 2)
    ]
    outputs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    granted = [int(out.decode()) for out, _ in outputs]
    assert sum(granted) == budget // 4
    with sqlite3.connect(path) as plain:
        assert plain.execute("SELECT SUM(seconds) FROM ledger").fetchone()[0] == budget
        assert plain.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == budget // 4
    print(f"\ntwo processes, budget {budget}: granted {granted[0]} + {granted[1]}")


async def test_race_concurrent_limit(store: Store) -> None:
    quota = QuotaSettings(seconds=10_000, concurrent=3)
    results = await asyncio.gather(
        *(store.reserve(new_job(), quota) for _ in range(50)), return_exceptions=True
    )
    assert sum(isinstance(r, tuple) for r in results) == 3
    assert {r.reason for r in results if isinstance(r, QuotaExceeded)} == {"concurrent"}
    assert await store.count_unfinished() == 3


async def test_fail_job_refunds_exactly_once_under_concurrency(store: Store) -> None:
    job, _ = await store.reserve(new_job(seconds=8), QuotaSettings(seconds=120))
    outcomes = await asyncio.gather(
        store.fail_job(job.id, "provider_failed", "The provider failed."),
        store.fail_job(job.id, "timeout", "Timed out."),
    )
    assert sorted(outcomes) == [False, True]
    failed = await store.job(job.id)
    assert failed is not None
    assert (failed.state, failed.charge) == (JobState.FAILED, Charge.REFUNDED)
    assert failed.finished_at is not None
    rows = await store.ledger_rows(job.id)
    assert [(r.kind, r.seconds) for r in rows] == [("reserve", 8), ("refund", -8)]
    assert await store.ledger_balance(job.id) == 0
    assert not await store.fail_job(job.id, "again", "again")
    assert len(await store.ledger_rows(job.id)) == 2


# -- transitions -------------------------------------------------------------------


async def test_full_lifecycle_commits_on_delivery(store: Store) -> None:
    quota = QuotaSettings(seconds=120)
    job, _ = await store.reserve(new_job(seconds=8, price_per_second=0.09), quota, now=NOW)
    await to_succeeded(store, job)
    assert await store.set_video_path(job.id, Path("/tmp/v.mp4"))
    assert await store.mark_delivered(job.id, 987654321)
    done = await store.job(job.id)
    assert done is not None
    assert (done.state, done.charge, done.message_id) == (JobState.DELIVERED, Charge.COMMITTED,
                                                          987654321)
    assert (done.task_id, done.video_url, done.video_path) == (
        "task-1", "https://cdn.example/v.mp4", "/tmp/v.mp4",
    )
    assert done.submitted_at is not None and done.finished_at is not None
    rows = await store.ledger_rows(job.id)
    assert [(r.kind, r.seconds, r.cost) for r in rows] == [
        ("reserve", 8, None), ("commit", 0, 0.72),
    ]
    assert await store.ledger_balance(job.id) == 8
    assert (await store.usage(GUILD, None, quota, now=NOW)).guild_used == 8
    assert not await store.mark_delivered(job.id, 1)  # once only
    assert not await store.fail_job(job.id, "late", "late")
    assert await store.ledger_balance(job.id) == 8


async def test_failed_job_gives_seconds_back(store: Store) -> None:
    quota = QuotaSettings(seconds=12)
    job, _ = await store.reserve(new_job(seconds=12), quota, now=NOW)
    await to_succeeded(store, job)
    assert (await store.usage(GUILD, 10, quota, now=NOW)).guild_remaining == 0
    assert await store.fail_job(job.id, "delivery_failed", "Could not post.")
    after = await store.usage(GUILD, 10, quota, now=NOW)
    assert (after.guild_used, after.guild_remaining, after.member_used) == (0, 12, 0)
    await store.reserve(new_job(seconds=12), quota, now=NOW)


async def test_transitions_refuse_wrong_from_states(store: Store) -> None:
    job, _ = await store.reserve(new_job(), QuotaSettings(seconds=120))
    assert not await store.mark_submitted(job.id, "t")  # reserved, not submitting
    assert not await store.mark_succeeded(job.id, "u")
    assert not await store.mark_delivered(job.id, 1)
    assert await store.mark_submitting(job.id)
    assert not await store.mark_submitting(job.id)
    assert await store.mark_submitted(job.id, "t")
    assert await store.mark_submitted(job.id, "t")  # idempotent with the same task id
    assert not await store.mark_submitted(job.id, "other")
    assert not await store.mark_delivered(job.id, 1)
    unchanged = await store.job(job.id)
    assert unchanged is not None
    assert (unchanged.state, unchanged.task_id, unchanged.message_id) == (
        JobState.SUBMITTED, "t", None,
    )
    for name in ("mark_submitting", "mark_succeeded", "mark_delivered", "fail_job"):
        method = getattr(store, name)
        args = {"mark_submitting": (), "mark_succeeded": ("u",), "mark_delivered": (1,),
                "fail_job": ("c", "m")}[name]
        assert not await method("no-such-job", *args)
    assert not await store.cancel_job("no-such-job", "r", refund=True)


async def test_cancel_with_and_without_refund(store: Store) -> None:
    quota = QuotaSettings(seconds=120)
    refunded, _ = await store.reserve(new_job(seconds=8), quota)
    kept, _ = await store.reserve(new_job(seconds=4, price_per_second=None), quota)
    await store.mark_submitting(kept.id)
    assert await store.cancel_job(refunded.id, "member cancelled", refund=True)
    assert await store.cancel_job(kept.id, "stopped waiting", refund=False)
    assert not await store.cancel_job(kept.id, "again", refund=True)
    a, b = await store.job(refunded.id), await store.job(kept.id)
    assert a is not None and b is not None
    assert (a.state, a.charge, a.error_message) == (JobState.CANCELLED, Charge.REFUNDED,
                                                    "member cancelled")
    assert (b.state, b.charge) == (JobState.CANCELLED, Charge.COMMITTED)
    assert await store.ledger_balance(refunded.id) == 0
    assert await store.ledger_balance(kept.id) == 4
    assert [r.kind for r in await store.ledger_rows(kept.id)] == ["reserve", "commit"]
    assert (await store.usage(GUILD, None, quota)).guild_used == 4


async def test_field_setters_and_context_merge(store: Store) -> None:
    new = new_job(context={"a": 1, "b": {"x": 1}})
    job, _ = await store.reserve(new, QuotaSettings(seconds=60))
    assert await store.update_context(job.id, {"b": {"y": 2}, "c": [1, 2]})
    assert await store.set_task_hint(job.id, "hint-1")
    assert await store.set_error(job.id, "slow", "Still waiting.")
    assert not await store.update_context("missing", {"a": 2})
    got = await store.job(job.id)
    assert got is not None
    assert got.context == {"a": 1, "b": {"y": 2}, "c": [1, 2]}
    assert (got.task_hint, got.error_code, got.error_message) == (
        "hint-1", "slow", "Still waiting.",
    )
    assert got.state is JobState.RESERVED  # set_error does not change the state


async def test_token_lookup(store: Store) -> None:
    job, token = await store.reserve(new_job(), QuotaSettings(seconds=60))
    other, other_token = await store.reserve(new_job(), QuotaSettings(seconds=60))
    assert (await store.job_by_token(token)) == job
    assert (await store.job_by_token(other_token)) == other
    for wrong in ("", token[:-1], token + "x", token.upper(), job.id, job.token_hash,
                  "x" * 10_000, "\udcff\x00; DROP TABLE jobs", "é" * 40):
        assert await store.job_by_token(wrong) is None, wrong


async def test_listing_queries(store: Store) -> None:
    quota = QuotaSettings(seconds=1000)
    first, _ = await store.reserve(new_job(user_id=1), quota, now=NOW)
    second, _ = await store.reserve(new_job(user_id=2, provider="apixo"), quota, now=NOW + 1)
    third, _ = await store.reserve(new_job(user_id=1), quota, now=NOW + 2)
    await store.fail_job(second.id, "x", "y")
    assert [j.id for j in await store.unfinished_jobs()] == [first.id, third.id]
    assert [j.id for j in await store.jobs_for(GUILD, None, 10)] == [third.id, second.id, first.id]
    assert [j.id for j in await store.jobs_for(GUILD, 1, 1)] == [third.id]
    assert await store.jobs_for(999, None, 10) == []
    assert await store.count_unfinished() == 2
    assert await store.count_unfinished("apixo") == 0
    assert await store.count_unfinished("sandbox") == 2


# -- quota settings, reset, reports ----------------------------------------------------


async def test_get_and_set_quota(store: Store) -> None:
    assert await store.get_quota(GUILD, 120) == QuotaSettings(seconds=120, period="day")
    settings = QuotaSettings(seconds=300, period="month", member_seconds=60, concurrent=2)
    await store.set_quota(GUILD, settings, by_user=42, now=NOW)
    assert await store.get_quota(GUILD, 120) == settings
    await store.reset_usage(GUILD, 42, now=NOW + 1)
    await store.set_quota(GUILD, QuotaSettings(seconds=10), by_user=43, now=NOW + 2)
    assert await store.get_quota(GUILD, 120) == QuotaSettings(seconds=10)
    async with store._tx(write=False) as db:
        row = await store._one(db, "SELECT * FROM guild_quota WHERE guild_id = ?", (GUILD,))
    assert (row["reset_at"], row["updated_by"], row["updated_at"]) == (NOW + 1, 43, NOW + 2)


@pytest.mark.parametrize("with_row", [True, False])
async def test_reset_usage_restores_budget(store: Store, with_row: bool) -> None:
    quota = QuotaSettings(seconds=8)
    if with_row:
        await store.set_quota(GUILD, quota, by_user=42, now=NOW - 10)
    await store.reserve(new_job(seconds=8), quota, now=NOW)
    with pytest.raises(QuotaExceeded):
        await store.reserve(new_job(seconds=4), quota, now=NOW + 1)
    await store.reset_usage(GUILD, by_user=42, now=NOW + 2)
    usage = await store.usage(GUILD, 10, quota, now=NOW + 3)
    assert (usage.window_start, usage.guild_used, usage.guild_remaining) == (NOW + 2, 0, 8)
    await store.reserve(new_job(seconds=8), quota, now=NOW + 3)
    reset = [r for r in await store.ledger_rows() if r.kind == "reset"]
    assert [(r.guild_id, r.user_id, r.seconds, r.note, r.job_id) for r in reset] == [
        (GUILD, 42, 0, "reset by 42", None)
    ]
    # the reset only matters within its period: tomorrow counts from midnight
    assert (await store.usage(GUILD, 10, quota, now=NOW + 86400)).window_start == DAY_END


async def test_usage_report(store: Store) -> None:
    quota = QuotaSettings(seconds=1000)
    await store.reserve(new_job(user_id=1, seconds=12, price_per_second=0.1), quota, now=NOW)
    await store.reserve(new_job(user_id=1, seconds=4, price_per_second=0.1), quota, now=NOW)
    two, _ = await store.reserve(
        new_job(user_id=2, seconds=8, price_per_second=0.1), quota, now=NOW
    )
    failed, _ = await store.reserve(new_job(user_id=3, seconds=12), quota, now=NOW)
    await store.reserve(new_job(user_id=4, seconds=8, price_per_second=None), quota, now=NOW)
    await store.reserve(new_job(user_id=5, seconds=4, price_per_second=0.1), quota, now=NOW)
    await store.reserve(new_job(user_id=9, seconds=4), quota, now=NOW - 86400)  # yesterday
    await store.reserve(new_job(guild_id=2, user_id=1, seconds=4), quota, now=NOW)  # elsewhere
    await to_succeeded(store, two)
    await store.mark_delivered(two.id, 5)
    await store.fail_job(failed.id, "x", "y")

    report = await store.usage_report(GUILD, quota, now=NOW + 10, top_n=3)
    assert report.window_start == DAY_END - 86400
    assert (report.total_seconds, report.jobs, report.delivered, report.failed) == (36, 6, 1, 1)
    assert report.total_cost == pytest.approx(2.8)  # 28 priced seconds; user 4's price unknown
    assert [(m.user_id, m.seconds, m.jobs) for m in report.top] == [(1, 16, 2), (2, 8, 1),
                                                                      (4, 8, 1)]
    assert [m.cost for m in report.top] == [pytest.approx(1.6), pytest.approx(0.8), None]
    full = await store.usage_report(GUILD, quota, now=NOW + 10, top_n=10)
    assert [(m.user_id, m.seconds, m.cost) for m in full.top][-2:] == [(5, 4, 0.4), (3, 0, 0.0)]
    empty = await store.usage_report(404, quota, now=NOW)
    assert (empty.total_seconds, empty.total_cost, empty.jobs, empty.top) == (0, 0.0, 0, [])


# -- meta and health -----------------------------------------------------------------


async def test_meta_and_ping(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "bot.sqlite3")
    assert await store.get_meta("commands_hash") is None
    await store.set_meta("commands_hash", "abc")
    await store.set_meta("commands_hash", "def")
    assert await store.get_meta("commands_hash") == "def"
    assert await store.meta_setdefault("secret", "first") == "first"
    assert await store.meta_setdefault("secret", "second") == "first"
    assert await store.ping()
    await store.close()
    await store.close()  # closing twice is harmless
    assert not await store.ping()


async def test_cancelled_callers_leave_no_open_transaction(store: Store) -> None:
    """Tasks cancelled at any await inside a transaction roll it back cleanly."""
    quota = QuotaSettings(seconds=10_000)
    for delay in (0, 0.0005, 0.001, 0.002, 0.004):
        tasks = [asyncio.create_task(store.reserve(new_job(), quota)) for _ in range(20)]
        await asyncio.sleep(delay)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        job, _ = await store.reserve(new_job(), quota)  # the connection is usable
        assert await store.fail_job(job.id, "x", "y")
    ledger = sum(r.seconds for r in await store.ledger_rows())
    assert ledger == (await store.usage(GUILD, None, quota)).guild_used
    assert not store._db.in_transaction
