"""Quota reservations under a race: throughput and overspend.

1000 requests race for one guild's budget through the bot's own store (``Store.reserve``:
the quota check and the job insert in one ``BEGIN IMMEDIATE`` transaction), first all
at once from one process, then split between two processes on the same database file.
The guild's budget admits 250 four-second jobs and each member's cap 25; half the requests
come from one member, so both limits are reached and most requests are refused. Overspend
is anything reserved beyond either limit; the ledger must agree with the jobs.

    python -m bench.quota [--requests 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

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


async def race(db: Path, indexes: range) -> tuple[int, int, float]:
    """Reserve concurrently; returns (accepted, refused, seconds taken)."""
    store = await Store.open(db)
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


def overspend(db: Path) -> tuple[int, int, int]:
    """(seconds reserved, guild overspend, worst member overspend) from the database."""
    with sqlite3.connect(db) as con:
        total = con.execute("SELECT COALESCE(SUM(seconds), 0) FROM jobs WHERE charge IN"
                            " ('reserved', 'committed')").fetchone()[0]
        ledger = con.execute("SELECT COALESCE(SUM(seconds), 0) FROM ledger").fetchone()[0]
        members = con.execute("SELECT user_id, SUM(seconds) FROM jobs GROUP BY user_id").fetchall()
    if ledger != total:
        raise AssertionError(f"the ledger ({ledger} s) disagrees with the jobs ({total} s)")
    assert QUOTA.member_seconds is not None
    worst = max((s - QUOTA.member_seconds for _, s in members), default=0)
    return total, max(0, total - QUOTA.seconds), max(0, worst)


async def two_processes(db: Path, requests: int) -> float:
    half = requests // 2
    await (await Store.open(db)).close()  # migrated once, before the race
    start = time.perf_counter()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.quota", "--worker", str(db), str(lo), str(hi),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE)
        for lo, hi in ((0, half), (half, requests))
    ]
    for proc in procs:
        await asyncio.wait_for(proc.communicate(), 120)
        if proc.returncode != 0:
            raise RuntimeError("a racing process failed")
    return time.perf_counter() - start


async def measure(work: Path, requests: int = 1000) -> Report:
    report = Report("Quota reservations")
    one = work / "one.sqlite3"
    accepted, refused, took = await race(one, range(requests))
    total, guild_over, member_over = overspend(one)
    report.add(f"reservations per second, {requests} racing in one process",
               f"{requests / took:,.0f}/s ({accepted} accepted, {refused} refused)")
    report.add("overspend, one process", f"{guild_over} s guild, {member_over} s member "
               f"({total} s reserved of {QUOTA.seconds})", "0", guild_over + member_over == 0)
    two = work / "two.sqlite3"
    took = await two_processes(two, requests)
    total, guild_over, member_over = overspend(two)
    report.add(f"reservations per second, {requests} racing in two processes",
               f"{requests / took:,.0f}/s (with process start-up)")
    report.add("overspend, two processes", f"{guild_over} s guild, {member_over} s member "
               f"({total} s reserved of {QUOTA.seconds})", "0", guild_over + member_over == 0)
    return report


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--worker"]:
        db, lo, hi = Path(args[1]), int(args[2]), int(args[3])
        accepted, refused, _ = asyncio.run(race(db, range(lo, hi)))
        print(json.dumps({"accepted": accepted, "refused": refused}))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.quota")
    parser.add_argument("--requests", type=int, default=1000)
    parsed = parser.parse_args(args)
    with tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp:
        report = asyncio.run(measure(Path(tmp), parsed.requests))
    print(report.table())
    print(f"\n{machine_note()}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
