"""``python -m bot copy-db``: a populated SQLite database copied into an empty
PostgreSQL database and checked; a non-empty target and bad URLs refused in one line."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.moderation.policy import GuildPolicy
from bot.quota import QuotaSettings
from bot.store import Store
from tests.pgserver import PASSWORD, PgServer
from tests.store.test_store import GUILD, NOW, PROJECT, new_job, table_count

QUOTA = QuotaSettings(seconds=1000, period="week", member_seconds=200, concurrent=20)


async def populate(path: Path) -> None:
    store = await Store.open(path)
    try:
        await store.set_quota(GUILD, QUOTA, by_user=42, now=NOW - 100)
        jobs = [(await store.reserve(new_job(user_id=u % 3, seconds=4 + 4 * (u % 3)), QUOTA,
                                     now=NOW + u))[0] for u in range(12)]
        for job in jobs[:4]:
            assert await store.mark_submitting(job.id)
            assert await store.mark_submitted(job.id, f"task-{job.id}")
            assert await store.mark_succeeded(job.id, "https://cdn.example/v.mp4")
            assert await store.mark_delivered(job.id, 900 + len(job.id))
        assert await store.fail_job(jobs[4].id, "provider_failed", "The provider failed.")
        assert await store.cancel_job(jobs[5].id, "member cancelled", refund=False)
        await store.reserve(new_job(guild_id=GUILD + 1, seconds=12), QuotaSettings(seconds=60))
        await store.reset_usage(GUILD, 42, now=NOW + 50)
        await store.update_context(jobs[6].id, {"status_message": 77})
        await store.edit_policy(GUILD, lambda _: GuildPolicy(channels=(5,), cooldown_s=30), 42)
        await store.add_block_entry(GUILD, "word", "Bad Word", "bad word", 42, limit=50)
        await store.add_block_entry(GUILD, "pattern", "b.d", "b.d", 42, limit=50)
        await store.block_member(GUILD, 2, 42, "spam", now=NOW)
        await store.set_meta("global_commands_hash", "abc123")
        await store.forget_member(1, now=NOW + 60)
    finally:
        await store.close()


async def snapshot(store: Store) -> dict[str, object]:
    return {
        "jobs": await store.jobs_for(GUILD, None, 100),
        "dm": await store.jobs_for(None, None, 100),
        "unfinished": await store.unfinished_jobs(),
        "ledger": await store.ledger_rows(),
        "quota": await store.get_quota(GUILD, 1),
        "usage": await store.usage(GUILD, 1, QUOTA, now=NOW + 100),
        "report": await store.usage_report(GUILD, QUOTA, now=NOW + 100),
        "policy": await store.get_policy(GUILD),
        "blocklist": await store.block_entries(GUILD),
        "blocked": await store.blocked_members(GUILD),
        "meta": await store.get_meta("global_commands_hash"),
    }


async def copy_db(tmp_path: Path, to: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "DATABASE_URL")}
    env.update(DATABASE_PATH=str(tmp_path / "bot.sqlite3"), PYTHONPATH=str(PROJECT))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "copy-db", "--to", to, cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_copy_db_copies_everything_and_checks_it(tmp_path: Path,
                                                       pg_server: PgServer) -> None:
    await populate(tmp_path / "bot.sqlite3")
    url = pg_server.fresh_url()
    code, out, err = await copy_db(tmp_path, url)
    assert code == 0, out + err
    assert "copied      13 row(s) of jobs" in out and out.rstrip().splitlines()[-1].startswith(
        "done: ")
    assert PASSWORD not in out + err
    source, copy = await Store.open(tmp_path / "bot.sqlite3"), await Store.open(url)
    try:
        assert await snapshot(copy) == await snapshot(source)
        # the copy goes on where the source left off: ids continue, budgets hold
        job, _ = await copy.reserve(new_job(user_id=0, seconds=4), QUOTA, now=NOW + 70)
        ledger = await copy.ledger_rows(job.id)
        assert ledger[0].id == max(r.id for r in await source.ledger_rows()) + 1
        assert (await copy.jobs_for(GUILD, None, 1))[0].id == job.id
        _, entry = await copy.add_block_entry(GUILD, "word", "new", "new", 1, limit=50)
        assert entry is not None and entry.id == 3
    finally:
        await source.close()
        await copy.close()


async def test_copy_db_refuses_a_database_that_is_not_empty(tmp_path: Path,
                                                            pg_server: PgServer) -> None:
    await populate(tmp_path / "bot.sqlite3")
    url = pg_server.fresh_url()
    target = await Store.open(url)
    await target.set_meta("already", "here")
    await target.close()
    code, out, err = await copy_db(tmp_path, url)
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: --to: the database at 127.0.0.1:{pg_server.port}/{url.rsplit('/', 1)[1]} is"
        " not empty (meta has 1 row(s)); copy-db only fills an empty database"
    ]
    assert "Traceback" not in out + err and PASSWORD not in out + err
    target = await Store.open(url)
    try:
        assert await table_count(target, "jobs") == 0 and await table_count(target, "meta") == 1
    finally:
        await target.close()


async def test_copy_db_bad_targets_are_one_line(tmp_path: Path, pg_server: PgServer) -> None:
    await populate(tmp_path / "bot.sqlite3")
    for to, needle in [
        (f"mysql://root:{PASSWORD}@127.0.0.1/bot", "must be a postgresql:// URL"),
        (pg_server.url(pg_server.fresh_database(), password="no-" + PASSWORD), "password"),
    ]:
        code, out, err = await copy_db(tmp_path, to)
        assert code == 2, out + err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --to: ") and needle in lines[0]
        assert "Traceback" not in out + err and PASSWORD not in out + err
    (tmp_path / "bot.sqlite3").unlink()
    code, _, err = await copy_db(tmp_path, pg_server.fresh_url())
    assert code == 2 and err.startswith("error: DATABASE_PATH: there is no SQLite database")
