"""The PostgreSQL backend: migrations under a lock, Unix sockets, many connection pools
racing for one budget, and refusals (wrong password, unreachable server) as one line."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections import Counter
from pathlib import Path

import pytest

from bot.quota import QuotaExceeded, QuotaSettings
from bot.store import GuildQuota, Store, StoreUnavailable, migrations
from tests.bot.test_process import bot_env
from tests.fakes.fake_discord import FakeDiscord
from tests.pgserver import PASSWORD, PgServer
from tests.store.test_store import GUILD, PROJECT, new_job, table_count


async def test_processes_starting_together_apply_each_migration_once(
    pg_server: PgServer,
) -> None:
    url = pg_server.fresh_url()
    stores = await asyncio.gather(*(Store.open(url) for _ in range(6)))
    try:
        async with stores[0]._tx(write=False) as db:
            applied = await db.rows("SELECT version, name FROM schema_migrations ORDER BY 1")
        assert [(r["version"], r["name"]) for r in applied] == [
            m[:2] for m in migrations("postgres")
        ]
        assert all([await s.ping() for s in stores])
    finally:
        for store in stores:
            await store.close()
    again = await Store.open(url)  # reopening applies nothing twice
    await again.close()


async def test_a_unix_socket_url_works(pg_server: PgServer) -> None:
    url = pg_server.fresh_url(tcp=False)
    assert url.startswith("postgresql://postgres@/") and "?host=/" in url
    store = await Store.open(url)
    try:
        assert store.dialect == "postgres" and await store.ping()
        job, _ = await store.reserve(new_job(), QuotaSettings(seconds=10))
        assert await store.job(job.id) == job
    finally:
        await store.close()


async def test_four_pools_race_for_one_budget_with_member_caps(pg_server: PgServer) -> None:
    """Four stores (as four processes would have), ten connections each, 400 reservations
    under the guild's stored quota with member caps: nothing overspent."""
    url = pg_server.fresh_url()
    stores = [await Store.open(url) for _ in range(4)]
    try:
        await stores[0].set_quota(GUILD, QuotaSettings(seconds=200, member_seconds=24), 1)
        results = await asyncio.gather(
            *(stores[i % 4].reserve(new_job(user_id=i % 10, seconds=4), GuildQuota(5))
              for i in range(400)),
            return_exceptions=True,
        )
        assert not [r for r in results if not isinstance(r, tuple | QuotaExceeded)], results
        granted = [r[0] for r in results if isinstance(r, tuple)]
        assert len(granted) == 50  # 10 members x 24 s = 240 > 200: the guild budget binds
        assert max(Counter(j.user_id for j in granted).values()) <= 6
        assert sum(r.seconds for r in await stores[3].ledger_rows()) == 200
        assert await table_count(stores[2], "jobs") == 50
        per_pool = Counter(i % 4 for i, r in enumerate(results) if isinstance(r, tuple))
        print(f"\nfour pools: granted per pool {dict(per_pool)}")
    finally:
        for store in stores:
            await store.close()


async def test_three_processes_race_with_member_caps(pg_server: PgServer) -> None:
    """Three OS processes, each with its own pool, reserving under member caps."""
    url = pg_server.fresh_url()
    store = await Store.open(url)
    await store.set_quota(GUILD, QuotaSettings(seconds=1000, member_seconds=40), 1)
    script = (
        "import asyncio, sys\n"
        "from bot.store import GuildQuota, NewJob, QuotaExceeded, Store\n"
        "async def main():\n"
        "    store = await Store.open(sys.argv[1])\n"
        "    new = [NewJob(guild_id=1001, user_id=i % 5, provider='sandbox', model='m',\n"
        "                  mode='text-to-video', prompt='p', duration=4,\n"
        "                  orientation='landscape', seconds=4) for i in range(100)]\n"
        "    out = await asyncio.gather(*(store.reserve(n, GuildQuota(0)) for n in new),\n"
        "                               return_exceptions=True)\n"
        "    await store.close()\n"
        "    assert all(isinstance(r, (tuple, QuotaExceeded)) for r in out), out\n"
        "    print(sum(isinstance(r, tuple) for r in out))\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, url, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env, cwd=PROJECT) for _ in range(3)]
    outputs = [await asyncio.wait_for(p.communicate(), 120) for p in procs]
    try:
        assert [p.returncode for p in procs] == [0, 0, 0], outputs
        assert sum(int(out) for out, _ in outputs) == 50  # 5 members x 40 s / 4 s
        rows = await store.ledger_rows()
        assert sum(r.seconds for r in rows) == 200
        per_member = Counter(r.user_id for r in rows if r.kind == "reserve")
        assert per_member == {u: 10 for u in range(5)}
    finally:
        await store.close()


# -- refusals: one line, no password --------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_open_refusals_are_one_line_without_the_password(pg_server: PgServer) -> None:
    wrong = pg_server.url(password="wrong-" + PASSWORD)
    cases = {
        wrong: "refused the user's password",
        f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port()}/x": "cannot reach",
        pg_server.url("no_such_db"): "does not exist",
    }
    for url, needle in cases.items():
        with pytest.raises(StoreUnavailable) as refused:
            await Store.open(url)
        text = str(refused.value)
        assert text.startswith("DATABASE_URL: ") and needle in text, text
        assert "\n" not in text and PASSWORD not in text
        assert refused.value.__cause__ is None and refused.value.__suppress_context__


async def run_bot(env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", cwd=PROJECT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


@pytest.mark.parametrize("case", ["wrong-password", "unreachable", "malformed", "mysql"])
async def test_bot_stops_with_one_line_for_a_bad_database_url(
    tmp_path: Path, pg_server: PgServer, case: str
) -> None:
    url = {
        "wrong-password": pg_server.url(password="not-" + PASSWORD),
        "unreachable": f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port()}/bot",
        "malformed": f"postgresql://postgres:{PASSWORD}@127.0.0.1:port/bot",
        "mysql": f"mysql://root:{PASSWORD}@127.0.0.1/bot",
    }[case]
    async with FakeDiscord() as fd:
        code, output = await run_bot(bot_env(tmp_path, fd, DATABASE_URL=url))
    errors = [line for line in output.splitlines() if line.startswith("error")]
    assert code == 2, output
    assert len(errors) == 1 and errors[0].startswith("error: DATABASE_URL: "), output
    assert "Traceback" not in output and PASSWORD not in output
    assert not (tmp_path / "data" / "bot.sqlite3").exists()  # no silent fall-back


async def test_check_logs_in_to_the_database(tmp_path: Path, pg_server: PgServer) -> None:
    async def database_line(url: str) -> str:
        env = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "PROVIDER")}
        env.update(DATABASE_URL=url, DATABASE_PATH=str(tmp_path / "bot.sqlite3"))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "check", cwd=PROJECT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 90)
        text = (out + err).decode()
        assert PASSWORD not in text and "Traceback" not in text
        (line,) = [x.strip() for x in text.splitlines() if "database:" in x]
        return line

    good = await database_line(pg_server.url())
    assert good.startswith("ok  database: PostgreSQL 18"), good
    bad = await database_line(pg_server.url(password="x" + PASSWORD))
    assert bad == (f"PROBLEM  database: DATABASE_URL: the PostgreSQL server at 127.0.0.1:"
                   f"{pg_server.port}/postgres refused the user's password")
    assert not (tmp_path / "bot.sqlite3").exists()


async def test_callers_cancelled_while_their_batch_waits_leave_nothing(
    pg_server: PgServer,
) -> None:
    """Another process holds the guild's reservation lock; the batch waits for it; its
    callers give up; when the lock goes, their reservations are withdrawn again."""
    import asyncpg

    from bot.store.backend import LockSpace
    from bot.store.postgres import _fold

    url = pg_server.fresh_url()
    store = await Store.open(url)
    other = await asyncpg.connect(url)
    try:
        await other.execute("SELECT pg_advisory_lock($1, $2)", int(LockSpace.QUOTA),
                            _fold(GUILD))
        tasks = [asyncio.create_task(store.reserve(new_job(), QuotaSettings(seconds=100)))
                 for _ in range(5)]
        for _ in range(300):  # wait until the batch is blocked on the lock
            await asyncio.sleep(0.01)
            waiting = await other.fetchval(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            if waiting:
                break
        assert waiting
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await other.execute("SELECT pg_advisory_unlock_all()")
        job, _ = await store.reserve(new_job(), QuotaSettings(seconds=100))
        assert [j.id for j in await store.jobs_for(GUILD, None)] == [job.id]
        assert [(r.job_id, r.seconds) for r in await store.ledger_rows()] == [(job.id, 4)]
    finally:
        await other.close()
        await store.close()


async def test_a_batch_isolates_each_reservation_and_holds_each_guild_lock_once(
    pg_server: PgServer,
) -> None:
    """One batch: a refusal (no savepoint needed), a write that fails (only its own
    savepoint rolls back), good reservations around them; the guild lock is held to the
    end of the batch. A failing read fails the whole batch, writing nothing."""
    from bot.store import steps
    from bot.store.backend import LockSpace
    from bot.store.jobs import reserve_steps
    from bot.store.postgres import PostgresBackend

    url = pg_server.fresh_url()
    store = await Store.open(url)
    try:
        backend = store.backend
        assert isinstance(backend, PostgresBackend)
        quota = QuotaSettings(seconds=8)

        def good(job_id: str) -> steps.Steps[dict[str, object]]:
            return reserve_steps(new_job(), quota, 1000.0, job_id, f"hash-{job_id}")

        def failing_write() -> steps.Steps[dict[str, object]]:
            yield steps.lock(LockSpace.QUOTA, GUILD)
            yield steps.execute("INSERT INTO meta (key, value) VALUES ('written', 'x')")
            yield steps.one("INSERT INTO no_such_table VALUES (1) RETURNING *")
            raise AssertionError("unreachable")

        outcomes = await backend.run_batch(
            [good("a" * 32), failing_write(), good("b" * 32), good("c" * 32)])
        assert isinstance(outcomes[0], dict) and outcomes[0]["id"] == "a" * 32
        assert isinstance(outcomes[1], Exception) and not isinstance(outcomes[1], QuotaExceeded)
        assert isinstance(outcomes[2], dict) and outcomes[2]["id"] == "b" * 32
        assert isinstance(outcomes[3], QuotaExceeded)  # 8 s of budget: the third refused
        assert sorted(j.id for j in await store.jobs_for(GUILD, None)) == ["a" * 32, "b" * 32]
        assert await store.meta_setdefault("written", "no") == "no"  # rolled back with it
        assert sum(r.seconds for r in await store.ledger_rows()) == 8

        def failing_read() -> steps.Steps[dict[str, object]]:
            yield steps.one("SELECT * FROM no_such_table")
            raise AssertionError("unreachable")

        with pytest.raises(Exception, match="no_such_table"):
            await backend.run_batch([good("d" * 32), failing_read()])
        assert await table_count(store, "jobs") == 2  # "d" was not written either
    finally:
        await store.close()


@pytest.mark.parametrize(("raised", "full"), [
    ("DiskFullError", True), ("OutOfMemoryError", True),
    ("ReadOnlySQLTransactionError", False),
])
async def test_a_server_that_cannot_write_for_now_is_unavailable_not_a_fault(
    raised: str, full: bool
) -> None:
    """No room, or a standby after a failover: nothing was written, and the work waits
    for the database instead of failing (and refunding) a job."""
    import asyncpg

    from bot.store import DatabaseUnavailable
    from bot.store.postgres import _reachable

    with pytest.raises(DatabaseUnavailable) as info:
        async with _reachable("the database"):
            raise getattr(asyncpg.exceptions, raised)("no space left on device")
    assert info.value.full is full
    with pytest.raises(asyncpg.exceptions.UniqueViolationError):  # a fault of the SQL
        async with _reachable("the database"):
            raise asyncpg.exceptions.UniqueViolationError("duplicate key")
