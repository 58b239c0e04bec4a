"""Several ``python -m bot`` processes on one PostgreSQL, each running one gateway shard of
two: a process killed mid-run loses its jobs to the other after JOB_LEASE_S, a rolling
restart (SIGTERM each in turn) loses nothing, and the provider's concurrent-task limit
holds across the processes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.catalog import get_model
from bot.store import Job, JobState, Store
from tests.bot.support import settled_jobs
from tests.bot.test_process import Guild, Running, bot_env, bot_process, send, videos
from tests.bot.test_shards import guild_id_on_shard
from tests.fakes.apixo import FakeApixo
from tests.fakes.common import FakeProvider
from tests.fakes.fake_discord import FakeDiscord
from tests.pgserver import PgServer

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def backend() -> str:
    """These tests are PostgreSQL's own: they do not run once per backend."""
    return "postgres"
LEASE_S = 3.0
MODEL = "veo-3-1-fast"


MEMBERS: dict[int, list[int]] = {}


def shard_guild(fd: FakeDiscord, shard: int) -> Guild:
    gid = fd.add_guild(f"shard {shard}", guild_id=guild_id_on_shard(shard, 2, 11))
    MEMBERS[gid] = [fd.add_member(gid, name=f"m{i}") for i in range(4)]
    return Guild(gid, fd.text_channels(gid)[0], MEMBERS[gid][0], MEMBERS[gid][1])


def process_env(tmp_path: Path, fd: FakeDiscord, fake: FakeApixo, url: str,
                shard: int) -> dict[str, str]:
    env = bot_env(tmp_path / f"p{shard}", fd, fake, DATABASE_URL=url, SHARD_COUNT="2",
                  SHARD_IDS=str(shard), JOB_LEASE_S=str(LEASE_S), POLL_FIRST_S="0.2",
                  POLL_INTERVAL_S="0.3", DEFAULT_QUOTA_SECONDS="100000", MODEL=MODEL)
    env.pop("DATABASE_PATH", None)
    return env


def peak_concurrency(fake: FakeProvider) -> int:
    """The most tasks the provider was working on at one moment."""
    edges = sorted(
        [(t.created_mono, 1) for t in fake.tasks.values()]
        + [(t.created_mono + t.task_s, -1) for t in fake.tasks.values()]
    )
    peak = running = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


async def all_jobs(store: Store, guilds: list[Guild]) -> list[Job]:
    jobs: list[Job] = []
    for g in guilds:
        jobs += await store.jobs_for(g.id, None, limit=1000)
    return jobs


async def settle(store: Store, guilds: list[Guild], count: int, within: float) -> list[Job]:
    return await settled_jobs(lambda: all_jobs(store, guilds), count, within, every=0.2)


async def burst(fd: FakeDiscord, guilds: list[Guild], per_guild: int) -> None:
    for i in range(per_guild):
        for g in guilds:
            await send(fd, g, "video", {"prompt": f"fox {i}"}, user_id=MEMBERS[g.id][i % 4])


async def check_every_job_posted_once(
    fd: FakeDiscord, fake: FakeApixo, store: Store, jobs: list[Job], guilds: list[Guild]
) -> None:
    assert all(j.state is JobState.DELIVERED for j in jobs), sorted(j.state for j in jobs)
    posted = [m for g in guilds for m in videos(fd, g.channel)]
    assert len(posted) == len(jobs)  # one video message per job, none twice
    assert {j.message_id for j in jobs} == {m.id for m in posted}
    assert len(fake.tasks) == len(jobs)  # one provider task per job
    for job in jobs:
        assert await store.ledger_balance(job.id) == job.seconds  # charged exactly once
    limit = get_model("apixo", MODEL).max_concurrent
    assert peak_concurrency(fake) <= limit


@dataclass
class Cluster:
    fd: FakeDiscord
    fake: FakeApixo
    guilds: list[Guild]
    procs: list[Running]
    store: Store


@contextlib.asynccontextmanager
async def two_shards(work: Path, url: str, task_s: float) -> AsyncIterator[Cluster]:
    """The fake Discord with one server per shard, the APIXO emulator, and two bot
    processes (shards 0 and 1 of 2) on the PostgreSQL database at ``url``."""
    async with contextlib.AsyncExitStack() as stack:
        fd = await stack.enter_async_context(FakeDiscord())
        fake = await stack.enter_async_context(FakeApixo(queue_s=0.3, task_s=task_s))
        guilds = [shard_guild(fd, 0), shard_guild(fd, 1)]
        procs = [await stack.enter_async_context(bot_process(
            fd, process_env(work, fd, fake, url, shard), work / f"bot{shard}.log"))
            for shard in (0, 1)]
        store = await Store.open(url)
        stack.push_async_callback(store.close)
        yield Cluster(fd, fake, guilds, procs, store)


async def test_a_killed_process_loses_its_jobs_to_the_other(
    tmp_path: Path, pg_server: PgServer
) -> None:
    async with two_shards(tmp_path, pg_server.fresh_url(), task_s=1.2) as cluster:
        fd, fake, guilds, procs, store = (cluster.fd, cluster.fake, cluster.guilds,
                                          cluster.procs, cluster.store)
        await burst(fd, guilds, 20)  # 40 jobs over two servers, one per shard
        await fd.wait_for(lambda: len(fake.tasks) >= 6, 60)
        deadline = time.monotonic() + 30
        while len(await all_jobs(store, guilds)) < 40 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        victim_jobs = {j.id for j in await all_jobs(store, guilds)
                       if not j.terminal and j.guild_id == guilds[1].id}
        assert victim_jobs, "the second process had no unfinished job to lose"
        procs[1].proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await procs[1].proc.wait()
        # the survivor takes the jobs over once their leases run out
        victim = f":{procs[1].proc.pid}:"
        taken_at = None
        while taken_at is None and time.monotonic() - killed_at < 60:
            mine = [j for j in await all_jobs(store, guilds) if j.id in victim_jobs]
            if all(j.terminal or (j.owner is not None and victim not in j.owner)
                   for j in mine):
                taken_at = time.monotonic()
            await asyncio.sleep(0.05)
        assert taken_at is not None
        takeover = taken_at - killed_at
        print(f"takeover after SIGKILL: {takeover:.2f} s (JOB_LEASE_S={LEASE_S})")
        assert takeover <= LEASE_S + 5
        jobs = await settle(store, guilds, 40, 120)
        await check_every_job_posted_once(fd, fake, store, jobs, guilds)
        survivor = procs[0].text()
        assert "took over job" in survivor and "Traceback" not in survivor


async def test_a_rolling_restart_loses_nothing(tmp_path: Path, pg_server: PgServer) -> None:
    url = pg_server.fresh_url()
    async with contextlib.AsyncExitStack() as stack:
        fd = await stack.enter_async_context(FakeDiscord())
        fake = await stack.enter_async_context(FakeApixo(queue_s=0.3, task_s=1.5))
        guilds = [shard_guild(fd, 0), shard_guild(fd, 1)]
        store = await Store.open(url)
        stack.push_async_callback(store.close)
        running = {}
        for shard in (0, 1):
            running[shard] = await stack.enter_async_context(bot_process(
                fd, process_env(tmp_path, fd, fake, url, shard), tmp_path / f"a{shard}.log"))
        await burst(fd, guilds, 12)
        await fd.wait_for(lambda: len(fake.tasks) >= 4, 60)
        # Every request recorded before the restarts: stopping does not yet wait for a
        # command still being checked, which would be lost with its process.
        for _ in range(300):
            if len(await all_jobs(store, guilds)) >= 24:
                break
            await asyncio.sleep(0.1)
        for shard in (0, 1):  # restart each process in turn while jobs run
            old = running[shard]
            old.proc.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            assert await asyncio.wait_for(old.proc.wait(), 15) == 0
            print(f"process {shard} stopped {time.monotonic() - stopped_at:.2f} s after SIGTERM")
            assert "gave" in old.text() or "Traceback" not in old.text()
            running[shard] = await stack.enter_async_context(bot_process(
                fd, process_env(tmp_path, fd, fake, url, shard), tmp_path / f"b{shard}.log"))
        jobs = await settle(store, guilds, 24, 120)
        await check_every_job_posted_once(fd, fake, store, jobs, guilds)
        for shard in (0, 1):
            assert "Traceback" not in running[shard].text()
