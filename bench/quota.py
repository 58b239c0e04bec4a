"""Quota reservations under a race: throughput and overspend.

1000 requests race for one guild's budget through the bot's own store (``Store.reserve``:
the quota check and the job insert all-or-nothing; the reservations waiting at one
moment share one transaction, a savepoint each), first all
at once from one process, then split between two processes on the same database file
(timed from a common start once each process has connected).
The guild's budget admits 250 four-second jobs and each member's cap 25; half the requests
come from one member, so both limits are reached and most requests are refused. Overspend
is anything reserved beyond either limit; the ledger must agree with the jobs.

With ``--database-url postgresql://...`` (a user that may create databases) the same
race runs on PostgreSQL, in one process and then split between three, each in a fresh
database that is dropped afterwards.

    python -m bench.quota [--requests 1000] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.common import ROOT, Report, machine_note
from bot.store import NewJob, QuotaExceeded, QuotaSettings, Store

GUILD = 1
SECONDS = 4
MEMBERS = 10
QUOTA = QuotaSettings(seconds=1000, period="day", member_seconds=100)


def new_job(index: int) -> NewJob:
    # Half the requests come from one eager member (the member cap stops them), the rest
    # from ten others (together they reach the guild budget).
    user = 100 if index % 2 == 0 else 101 + (index // 2) % MEMBERS
    return NewJob(guild_id=GUILD, channel_id=10, user_id=user,
                  provider="apixo", model="sora-2", mode="text-to-video",
                  prompt=f"race {index}", duration=SECONDS, orientation="landscape",
                  seconds=SECONDS, price_per_second=0.09)


async def race(db: Path | str, indexes: range,
               start_at: float | None = None) -> tuple[int, int, float]:
    """Reserve concurrently (from ``start_at``, a wall-clock time, once the store is open);
    returns (accepted, refused, seconds taken)."""
    store = await Store.open(db)
    if start_at is not None:
        await asyncio.sleep(max(0.0, start_at - time.time()))
    try:
        async def one(index: int) -> bool:
            try:
                await store.reserve(new_job(index), QUOTA)
            except QuotaExceeded:
                return False
            return True

        start = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in indexes))
        return sum(results), len(results) - sum(results), time.perf_counter() - start
    finally:
        await store.close()


async def overspend(db: Path | str) -> tuple[int, int, int]:
    """(seconds reserved, guild overspend, worst member overspend) from the database."""
    store = await Store.open(db)
    try:
        jobs = await store.jobs_for(GUILD, None, limit=1_000_000)
        ledger = sum(row.seconds for row in await store.ledger_rows())
    finally:
        await store.close()
    total = sum(j.seconds for j in jobs if j.charge.value in ("reserved", "committed"))
    per_member: dict[int | None, int] = {}
    for job in jobs:
        per_member[job.user_id] = per_member.get(job.user_id, 0) + job.seconds
    members = list(per_member.items())
    if ledger != total:
        raise AssertionError(f"the ledger ({ledger} s) disagrees with the jobs ({total} s)")
    assert QUOTA.member_seconds is not None
    worst = max((s - QUOTA.member_seconds for _, s in members), default=0)
    return total, max(0, total - QUOTA.seconds), max(0, worst)


async def processes(db: Path | str, requests: int, count: int = 2) -> float:
    """Seconds from a common start (after every process has started) to the last done."""
    await (await Store.open(db)).close()  # migrated once, before the race
    bounds = [requests * i // count for i in range(count + 1)]
    start_at = time.time() + 1.5 * count  # after every process has imported and connected
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.quota", "--worker", str(db), str(lo), str(hi),
            str(start_at), cwd=ROOT, stdout=asyncio.subprocess.PIPE)
        for lo, hi in itertools.pairwise(bounds)
    ]
    last = start_at
    for proc in procs:
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        if proc.returncode != 0:
            raise RuntimeError("a racing process failed")
        last = max(last, float(json.loads(out)["finished"]))
    return last - start_at


@contextlib.asynccontextmanager
async def fresh_databases(url: str, count: int) -> AsyncIterator[list[str]]:
    """``count`` new PostgreSQL databases on the server of ``url``, dropped afterwards."""
    import asyncpg

    names = [f"bench_quota_{os.getpid()}_{i}" for i in range(count)]
    parts = urlsplit(url)
    admin = await asyncpg.connect(url)
    try:
        for name in names:
            await admin.execute(f"CREATE DATABASE {name}")
        yield [urlunsplit(parts._replace(path=f"/{name}")) for name in names]
    finally:
        for name in names:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def measure(work: Path, requests: int = 1000, database_url: str | None = None) -> Report:
    if database_url is None:
        report = Report("Quota reservations")
        await scenarios(report, work / "one.sqlite3", work / "two.sqlite3", requests, 2)
        return report
    report = Report("Quota reservations on PostgreSQL")
    async with fresh_databases(database_url, 2) as (one, many):
        await scenarios(report, one, many, requests, 3)
    return report


async def scenarios(report: Report, one: Path | str, many: Path | str, requests: int,
                    count: int) -> None:
    procs = {2: "two", 3: "three"}.get(count, str(count)) + " processes"
    accepted, refused, took = await race(one, range(requests))
    total, guild_over, member_over = await overspend(one)
    report.add(f"reservations per second, {requests} racing in one process",
               f"{requests / took:,.0f}/s ({accepted} accepted, {refused} refused)")
    report.add("overspend, one process", f"{guild_over} s guild, {member_over} s member "
               f"({total} s reserved of {QUOTA.seconds})", "0", guild_over + member_over == 0)
    raced = await processes(many, requests, count)
    total, guild_over, member_over = await overspend(many)
    report.add(f"reservations per second, {requests} racing in {procs}",
               f"{requests / raced:,.0f}/s (from a common start, once each has connected)")
    report.add(f"overspend, {procs}", f"{guild_over} s guild, {member_over} s member "
               f"({total} s reserved of {QUOTA.seconds})", "0", guild_over + member_over == 0)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--worker"]:
        db, lo, hi, start_at = args[1], int(args[2]), int(args[3]), float(args[4])
        accepted, refused, _ = asyncio.run(race(db, range(lo, hi), start_at))
        print(json.dumps({"accepted": accepted, "refused": refused, "finished": time.time()}))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.quota")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--database-url", help="race on PostgreSQL (fresh databases there)")
    parsed = parser.parse_args(args)
    with tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp:
        report = asyncio.run(measure(Path(tmp), parsed.requests, parsed.database_url))
    print(report.table())
    print(f"\n{machine_note()}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
