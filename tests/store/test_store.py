"""The store on both backends: reservations (and their races across connections and
processes), job transitions, the ledger, quota settings and reports."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.quota import QuotaExceeded, QuotaSettings
from bot.store import Charge, GuildQuota, Job, JobState, NewJob, Store

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


async def table_count(store: Store, table: str) -> int:
    async with store._tx(write=False) as db:
        return int(await db.scalar(f"SELECT COUNT(*) FROM {table}"))


async def to_succeeded(store: Store, job: Job, task_id: str = "task-1") -> None:
    assert await store.mark_submitting(job.id)
    assert await store.mark_submitted(job.id, task_id)
    assert await store.mark_succeeded(job.id, "https://cdn.example/v.mp4")


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
        dump = [tuple(r.values()) for r in await db.rows("SELECT * FROM jobs")]
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
    assert not await store.update_context("missing", {"a": 2})
    got = await store.job(job.id)
    assert got is not None
    assert got.context == {"a": 1, "b": {"y": 2}, "c": [1, 2]}
    assert got.task_hint == "hint-1"
    assert got.state is JobState.RESERVED  # the setters do not change the state


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
        row = await db.one("SELECT * FROM guild_quota WHERE guild_id = ?", (GUILD,))
    assert row is not None
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


async def test_meta_and_ping(db_target: str | Path) -> None:
    store = await Store.open(db_target)
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


async def test_reserve_reads_the_guilds_quota_in_its_own_transaction(store: Store) -> None:
    await store.reserve(new_job(seconds=4), GuildQuota(8), now=NOW)  # no row: the default
    with pytest.raises(QuotaExceeded) as refused:
        await store.reserve(new_job(seconds=8), GuildQuota(8), now=NOW)
    assert (refused.value.reason, refused.value.limit) == ("guild", 8)
    await store.set_quota(GUILD, QuotaSettings(seconds=12, member_seconds=8), 42, now=NOW)
    await store.reserve(new_job(seconds=4), GuildQuota(8), now=NOW)  # the stored 12 s
    with pytest.raises(QuotaExceeded) as refused:
        await store.reserve(new_job(user_id=11, seconds=8), GuildQuota(1000), now=NOW)
    assert (refused.value.reason, refused.value.remaining, refused.value.limit) == (
        "guild", 4, 12)
    await store.set_quota(5, QuotaSettings(seconds=100, member_seconds=4), 42, now=NOW)
    await store.reserve(new_job(guild_id=5, seconds=4), GuildQuota(1000), now=NOW)
    with pytest.raises(QuotaExceeded) as refused:
        await store.reserve(new_job(guild_id=5, seconds=4), GuildQuota(1000), now=NOW)
    assert (refused.value.reason, refused.value.limit) == ("member", 4)
