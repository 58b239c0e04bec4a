"""Spend caps on both backends: a request reserves its price with its seconds, keeps it
when the video is posted, gets it back when it fails; caps hold under races, across
connections and processes; a failover re-prices a job only if the new price fits."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bot.quota import QuotaExceeded, QuotaSettings
from bot.store import Store
from tests.store.test_store import GUILD, NOW, PROJECT, new_job, to_succeeded

CAP = 2_000_000  # $2.00
PRICE = 250_000  # $0.25 a video


def capped(**changes: object) -> QuotaSettings:
    values: dict[str, object] = {"seconds": 100_000, "spend_micros": CAP}
    values.update(changes)
    return QuotaSettings(**values)  # type: ignore[arg-type]


async def test_spend_is_reserved_kept_and_refunded(store: Store) -> None:
    quota = capped()
    kept, _ = await store.reserve(new_job(price_micros=PRICE), quota, now=NOW)
    failed, _ = await store.reserve(new_job(price_micros=PRICE), quota, now=NOW)
    usage = await store.usage(GUILD, 10, quota, now=NOW)
    assert (usage.guild_spent, usage.guild_spend_remaining) == (2 * PRICE, CAP - 2 * PRICE)
    await to_succeeded(store, kept)
    assert await store.mark_delivered(kept.id, 1)
    assert await store.fail_job(failed.id, "x", "failed")
    usage = await store.usage(GUILD, 10, quota, now=NOW)
    assert usage.guild_spent == PRICE and usage.member_spent == PRICE
    money = {r.job_id: sum(x.money_micros or 0 for x in await store.ledger_rows(r.job_id))
             for r in await store.ledger_rows() if r.job_id}
    assert money == {kept.id: PRICE, failed.id: 0}
    commit = [r for r in await store.ledger_rows(kept.id) if r.kind == "commit"]
    assert commit[0].cost == 0.25


async def test_the_spend_cap_refuses_the_request_that_would_pass_it(store: Store) -> None:
    quota = capped()
    for _ in range(8):
        await store.reserve(new_job(price_micros=PRICE), quota, now=NOW)
    with pytest.raises(QuotaExceeded) as info:
        await store.reserve(new_job(price_micros=1), quota, now=NOW)
    assert (info.value.reason, info.value.remaining, info.value.limit) == ("spend", 0, CAP)
    assert (await store.usage(GUILD, None, quota, now=NOW)).guild_spent == CAP
    # Seconds still count too: both caps hold when both are set.
    with pytest.raises(QuotaExceeded) as info:
        await store.reserve(new_job(guild_id=2, seconds=8, price_micros=1),
                            capped(seconds=4), now=NOW)
    assert info.value.reason == "guild"


async def test_member_spend_and_unknown_prices(store: Store) -> None:
    quota = capped(member_spend_micros=PRICE * 2)
    for user in (1, 1, 2):
        await store.reserve(new_job(user_id=user, price_micros=PRICE), quota, now=NOW)
    with pytest.raises(QuotaExceeded) as info:
        await store.reserve(new_job(user_id=1, price_micros=PRICE), quota, now=NOW)
    assert (info.value.reason, info.value.remaining) == ("member_spend", 0)
    assert (await store.usage(GUILD, 2, quota, now=NOW)).member_spend_remaining == PRICE
    with pytest.raises(QuotaExceeded) as info:  # a price nobody knows cannot be checked
        await store.reserve(new_job(user_id=3, price_per_second=None, price_micros=None),
                            quota, now=NOW)
    assert info.value.reason == "price_unknown"
    # Without a spend cap, an unknown price is no obstacle.
    await store.reserve(new_job(user_id=3, price_per_second=None), QuotaSettings(seconds=99),
                        now=NOW)


async def test_a_cap_set_and_read_back(store: Store) -> None:
    await store.set_quota(GUILD, capped(member_spend_micros=500_000), by_user=1)
    quota = await store.get_quota(GUILD, 120)
    assert (quota.spend_micros, quota.member_spend_micros) == (CAP, 500_000)
    await store.set_quota(GUILD, QuotaSettings(seconds=60), by_user=1)
    assert (await store.get_quota(GUILD, 120)).spend_micros is None


async def test_a_failover_moves_only_at_a_price_that_fits(store: Store) -> None:
    await store.set_quota(GUILD, capped(), by_user=1)
    quota = await store.get_quota(GUILD, 120)
    job, _ = await store.reserve(new_job(price_micros=PRICE), quota)
    await store.reserve(new_job(price_micros=CAP - 2 * PRICE), quota)  # $0.25 left
    with pytest.raises(QuotaExceeded) as info:  # $0.25 + $0.25 left < $0.60
        await store.move_to_provider(job.id, "fal", "sora-2", 600_000, ["sandbox"],
                                     default_seconds=120)
    assert info.value.reason == "spend"
    assert (await store.job(job.id)).provider == "sandbox"  # type: ignore[union-attr]
    with pytest.raises(QuotaExceeded) as info:
        await store.move_to_provider(job.id, "replicate", "sora-2", None, ["sandbox"],
                                     default_seconds=120)
    assert info.value.reason == "price_unknown"
    assert await store.move_to_provider(job.id, "fal", "sora-2", 2 * PRICE, ["sandbox"],
                                        default_seconds=120)
    moved = await store.job(job.id)
    assert moved is not None and (moved.provider, moved.price_micros) == ("fal", 2 * PRICE)
    assert (await store.usage(GUILD, None, quota)).guild_spent == CAP
    assert await store.fail_job(job.id, "x", "failed")
    assert sum(r.money_micros or 0 for r in await store.ledger_rows(job.id)) == 0


async def test_race_200_requests_never_pass_the_spend_cap(store: Store) -> None:
    quota = capped(member_spend_micros=CAP // 2)
    results = await asyncio.gather(
        *(store.reserve(new_job(user_id=i % 4, price_micros=PRICE), quota) for i in range(200)),
        return_exceptions=True,
    )
    granted = [r[0] for r in results if isinstance(r, tuple)]
    assert len(granted) == 8
    assert max(Counter(j.user_id for j in granted).values()) <= 4
    assert {r.reason for r in results if isinstance(r, QuotaExceeded)} <= {
        "spend", "member_spend"}
    assert (await store.usage(GUILD, None, quota)).guild_spent == CAP


_WORKER = """
import asyncio, sys, time
from bot.quota import QuotaExceeded, QuotaSettings
from bot.store import NewJob, Store

async def main(target, start, worker):
    store = await Store.open(target)
    await asyncio.sleep(max(0.0, start - time.time()))
    new = [NewJob(guild_id=1, user_id=worker * 1000 + i, provider="fal", model="m",
                  mode="text-to-video", prompt="p", duration=4, orientation="landscape",
                  seconds=4, price_micros=250_000) for i in range(100)]
    quota = QuotaSettings(seconds=100_000, spend_micros=int(sys.argv[4]))
    results = await asyncio.gather(*(store.reserve(n, quota) for n in new), return_exceptions=True)
    await store.close()
    bad = [r for r in results if not isinstance(r, (tuple, QuotaExceeded))]
    assert not bad, bad
    print(sum(isinstance(r, tuple) for r in results))

asyncio.run(main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3])))
"""


async def test_race_two_processes_never_overspend(db_target: str | Path) -> None:
    """Two OS processes, 100 requests of $0.25 each, a $5.00 cap: exactly 20 granted."""
    path = str(db_target)
    await (await Store.open(path)).close()  # migrate first
    start = time.time() + 1.5
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WORKER, path, str(start), str(worker), "5000000",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            cwd=PROJECT)
        for worker in (1, 2)
    ]
    outputs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sum(int(out.decode()) for out, _ in outputs) == 20
    check = await Store.open(path)
    try:
        spent = sum(r.money_micros or 0 for r in await check.ledger_rows())
        assert spent == 5_000_000
    finally:
        await check.close()
