"""Reservation races on both backends: one connection, several connections, several
processes; many members under caps. Zero overspend every time."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bot.quota import QuotaExceeded, QuotaSettings
from bot.store import Job, Store
from tests.store.test_store import GUILD, PROJECT, new_job, table_count


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


async def test_race_two_connections_on_one_database(db_target: str | Path) -> None:
    one, two = await Store.open(db_target), await Store.open(db_target)
    try:
        quota = QuotaSettings(seconds=120)

        async def attempt(i: int) -> tuple[Job, str]:
            await asyncio.sleep((i // 10) * 0.001)  # waves, so the connections interleave
            return await (one if i % 2 else two).reserve(new_job(user_id=i, seconds=4), quota)

        results = await asyncio.gather(*(attempt(i) for i in range(200)), return_exceptions=True)
        assert not [r for r in results if not isinstance(r, tuple | QuotaExceeded)], results
        assert sum(isinstance(r, tuple) for r in results) == 30
        by_store = Counter(i % 2 for i, r in enumerate(results) if isinstance(r, tuple))
        print(f"\n{one.dialect}, two connections: granted {by_store[1]} + {by_store[0]} = 30")
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

async def main(target, start, worker):
    store = await Store.open(target)
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
async def test_race_two_processes_on_one_database(db_target: str | Path, budget: int) -> None:
    """Two OS processes, 100 reservations of 4 s each, one budget: never overspent."""
    path = str(db_target)
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
    check = await Store.open(path)
    try:
        assert sum(r.seconds for r in await check.ledger_rows()) == budget
        assert await table_count(check, "jobs") == budget // 4
    finally:
        await check.close()
    print(f"\n{check.dialect}, two processes, budget {budget}: granted {granted[0]} + {granted[1]}")


async def test_race_concurrent_limit(store: Store) -> None:
    quota = QuotaSettings(seconds=10_000, concurrent=3)
    results = await asyncio.gather(
        *(store.reserve(new_job(), quota) for _ in range(50)), return_exceptions=True
    )
    assert sum(isinstance(r, tuple) for r in results) == 3
    assert {r.reason for r in results if isinstance(r, QuotaExceeded)} == {"concurrent"}
    assert await store.count_unfinished() == 3


async def test_a_failing_reservation_fails_alone(store: Store) -> None:
    """Reservations run together (one transaction on SQLite): one that breaks a
    constraint fails by itself, the others are kept."""
    quota = QuotaSettings(seconds=1000)
    results = await asyncio.gather(
        *(store.reserve(new_job(user_id=i), quota, job_id="same" if i < 2 else None)
          for i in range(6)),
        return_exceptions=True,
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 1 and not isinstance(failed[0], QuotaExceeded), results
    kept = [r[0] for r in results if isinstance(r, tuple)]
    assert len(kept) == 5 and sum(j.id == "same" for j in kept) == 1
    assert sum(r.seconds for r in await store.ledger_rows()) == 20
    assert await table_count(store, "jobs") == 5
