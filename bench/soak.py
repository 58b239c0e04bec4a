"""Soak: the real bot for a long while at a steady rate of jobs, watching for anything
that grows.

    python -m bench.soak [--minutes 10] [--rate 20] [--warmup-minutes 2] [--sample-s 5]
                         [--database sqlite|postgres] [--plot soak.png]

``python -m bot`` (a subprocess, so its memory and descriptors are its own) runs against
the fake Discord and the APIXO emulator on 127.0.0.1, with callbacks (``PUBLIC_BASE_URL``)
and metrics on. Members ask for a 4-second video ``--rate`` times a minute; of the
provider's tasks about one in eight fails (refunded), callbacks are by turns delivered,
lost (the poll picks the result up) or sent three times, and every three minutes the
provider goes down for five seconds and comes back with its tasks. Every ``--sample-s``
seconds: the bot's resident memory (VmRSS, /proc), its open descriptors, its asyncio
tasks (its own metric) and its database connections (PostgreSQL: its sessions in
``pg_stat_activity``; SQLite: its descriptors open on the database files). After the
warm-up each series is judged by its least-squares slope and by the difference between
the means of the last and the first fifth. At the end the sending stops, every job
settles, and the books must balance: each job posted exactly once or failed and
refunded, the ledger agreeing, nothing left running, no task paid twice.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import MIB, Report, free_port, machine_note, start_bot
from bench.memory import tree_rss
from bench.soak_plot import draw
from bot.store import Store
from tests.fakes.apixo import FakeApixo
from tests.fakes.fake_discord import FakeDiscord

RSS_GROWTH_MB = 5.0
MODES = ("normal", "normal", "drop", "duplicate")  # callbacks, by turns


def slope_per_minute(times: list[float], values: list[float]) -> float:
    n = len(times)
    if n < 2:
        return 0.0
    mt, mv = sum(times) / n, sum(values) / n
    var = sum((t - mt) ** 2 for t in times)
    return 0.0 if var == 0 else sum((t - mt) * (v - mv) for t, v in zip(times, values,
                                                                       strict=True)) / var * 60


def fifths(values: list[float]) -> float:
    """Mean of the last fifth minus mean of the first fifth."""
    k = max(1, len(values) // 5)
    return sum(values[-k:]) / k - sum(values[:k]) / k


class Sampler:
    def __init__(self, pid: int, metrics_url: str, database: str, db_files: list[Path]):
        self.pid, self.metrics_url = pid, metrics_url
        self.database, self.db_files = database, [str(p) for p in db_files]
        self.times: list[float] = []
        self.series: dict[str, list[float]] = {"resident memory (MB)": [],
                                               "open descriptors": [], "asyncio tasks": [],
                                               "database connections": []}

    async def sample(self, at: float, http: aiohttp.ClientSession) -> None:
        fds = os.listdir(f"/proc/{self.pid}/fd")
        tasks = await self._tasks(http)
        self.times.append(at)
        self.series["resident memory (MB)"].append(tree_rss(self.pid) / MIB)
        self.series["open descriptors"].append(float(len(fds)))
        self.series["asyncio tasks"].append(tasks)
        self.series["database connections"].append(await self._connections(fds))

    async def _tasks(self, http: aiohttp.ClientSession) -> float:
        async with http.get(self.metrics_url) as resp:
            for line in (await resp.text()).splitlines():
                if line.startswith("videobot_asyncio_tasks "):
                    return float(line.split()[1])
        return float("nan")

    async def _connections(self, fds: list[str]) -> float:
        if self.database.startswith("postgresql://"):
            import asyncpg

            conn = await asyncpg.connect(self.database)
            try:
                count = await conn.fetchval(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid()")
            finally:
                await conn.close()
            return float(count)
        count = 0
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{self.pid}/fd/{fd}")
            except OSError:
                continue
            count += any(target.startswith(f) for f in self.db_files)
        return float(count)


async def traffic(fd: Any, fake: FakeApixo, guild: int, channel: int, members: list[int],
                  rate: float, until: float, counter: list[int]) -> None:
    """Commands at a steady rate; the emulator's mix changes as they go."""
    rng = random.Random(42)
    gap = 60.0 / rate
    seen: set[str] = set()
    next_at = time.monotonic()
    while time.monotonic() < until:
        fake.callback_mode = MODES[counter[0] % len(MODES)]
        for task_id, task in list(fake.tasks.items()):
            if task_id not in seen:
                seen.add(task_id)
                if rng.random() < 0.125:
                    task.outcome = "Timeout"  # the provider fails it (refunded)
        payload = fd.slash("video", {"prompt": f"soak {counter[0]}", "duration": 4},
                           guild_id=guild, channel_id=channel,
                           user_id=members[counter[0] % len(members)])
        await fd.send_interaction(payload, timeout=30)
        counter[0] += 1
        next_at += gap
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


async def outages(fake: FakeApixo, every_s: float, until: float) -> None:
    while time.monotonic() + every_s < until:
        await asyncio.sleep(every_s)
        await fake.restart(5.0)


async def books(database: str, fd: Any, channel: int, fake: FakeApixo) -> dict[str, int]:
    """Every job posted exactly once or refunded, the ledger agreeing, nothing left
    running, no provider task paid twice."""
    store = await Store.open(database)
    try:
        all_jobs = await _all_jobs(store)
        posted: dict[str, int] = {}
        for message in fd.messages(channel, source="channel"):
            if message.attachments and message.embeds:
                job_id = str(message.embeds[0]["footer"]["text"]).removeprefix("job ")
                posted[job_id] = posted.get(job_id, 0) + 1
        counts = {"jobs": len(all_jobs), "delivered": 0, "refunded": 0, "lost": 0,
                  "duplicated": 0, "unbalanced": 0,
                  "unfinished": await store.count_unfinished()}
        for job in all_jobs:
            balance = await store.ledger_balance(job.id)
            copies = posted.get(job.id, 0)
            counts["duplicated"] += max(0, copies - 1)
            if job.state.value == "delivered" and copies == 1:
                counts["delivered"] += 1
                counts["unbalanced"] += balance != job.seconds
            elif job.state.value in ("failed", "cancelled") and copies == 0 \
                    and job.charge.value == "refunded":
                counts["refunded"] += 1
                counts["unbalanced"] += balance != 0
            else:
                counts["lost"] += 1
        task_ids = [j.task_id for j in all_jobs if j.task_id]
        counts["paid_twice"] = len(task_ids) - len(set(task_ids)) + max(
            0, fake.submits_accepted - len(task_ids))
        return counts
    finally:
        await store.close()


async def _all_jobs(store: Store) -> list[Any]:
    async with store._tx(write=False) as db:
        ids = [r["id"] for r in await db.rows("SELECT id FROM jobs")]
    return [job for job in [await store.job(i) for i in ids] if job is not None]


async def measure(work: Path, minutes: float, rate: float, warmup: float, sample_s: float,
                  database: str, plot: Path) -> Report:
    report = Report(f"Soak ({minutes:g} min, {rate:g} jobs a minute, {database})")
    server = None
    async with FakeApixo(queue_s=2.0, task_s=8.0) as fake, FakeDiscord() as fd:
        guild = fd.add_guild("Soak")
        channel = fd.text_channels(guild)[0]
        members = [fd.add_member(guild, name=f"member{i}") for i in range(6)]
        port, metrics = free_port(), free_port()
        settings = {
            "PROVIDER": "apixo", "MODEL": "sora-2", "APIXO_API_KEY": fake.api_key,
            "APIXO_BASE_URL": fake.api_base, "DEFAULT_QUOTA_SECONDS": "10000000",
            "POLL_FIRST_S": "3", "POLL_INTERVAL_S": "3", "JOB_LEASE_S": "10",
            "WEBHOOK_PORT": str(port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "METRICS_PORT": str(metrics), "METRICS_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING",
        }
        target = str(work / "bot.sqlite3")
        if database == "postgres":
            from tests.pgserver import start_server

            server = await asyncio.to_thread(start_server)
            target = server.fresh_url()
            settings["DATABASE_URL"] = target
        bot = await start_bot(fd, work, settings)
        counter = [0]
        try:
            await fd.wait_until_connected(10)
            start = time.monotonic()
            until = start + minutes * 60
            sampler = Sampler(bot.pid, f"http://127.0.0.1:{metrics}/metrics", target,
                              [work / "bot.sqlite3"])
            sender = asyncio.create_task(traffic(fd, fake, guild, channel, members, rate,
                                                 until, counter))
            downs = asyncio.create_task(outages(fake, 180.0, until))
            async with aiohttp.ClientSession() as http:
                while time.monotonic() < until:
                    await sampler.sample(time.monotonic() - start, http)
                    print(f"  {sampler.times[-1] / 60:5.1f} min: " + ", ".join(
                        f"{k} {v[-1]:.1f}" for k, v in sampler.series.items()),
                        file=sys.stderr)
                    await asyncio.sleep(sample_s)
                await sender
                downs.cancel()
                settled = await settle(target, counter[0], within=180)
                await sampler.sample(time.monotonic() - start, http)
            result = await books(target, fd, channel, fake)
        finally:
            await bot.stop()
            if server is not None:
                await asyncio.to_thread(server.stop)
    judge(report, sampler, warmup * 60, result, settled)
    notes = {name: f"slope {slope_per_minute(*_after(sampler, warmup * 60, name)):+.2f}/min"
             for name in sampler.series}
    draw(plot, report.title, sampler.times, sampler.series, warmup * 60, notes)
    report.notes.append(f"Picture: {plot}")
    return report


def _after(sampler: Sampler, warmup_s: float, name: str) -> tuple[list[float], list[float]]:
    pairs = [(t, v) for t, v in zip(sampler.times, sampler.series[name], strict=True)
             if t >= warmup_s]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def judge(report: Report, sampler: Sampler, warmup_s: float, result: dict[str, int],
          settled: bool) -> None:
    for name in sampler.series:
        times, values = _after(sampler, warmup_s, name)
        slope, growth = slope_per_minute(times, values), fifths(values)
        if name.startswith("resident"):
            ok = growth <= RSS_GROWTH_MB
            target = f"growth <= {RSS_GROWTH_MB:g} MB"
        else:  # counts: back where they were, give or take the traffic of a moment
            ok = growth <= max(3.0, 0.1 * max(values, default=0))
            target = "no growth (last fifth vs first)"
        report.add(f"{name} after warm-up", f"{min(values, default=0):.1f}-"
                   f"{max(values, default=0):.1f}; last fifth {growth:+.1f} vs first; "
                   f"slope {slope:+.2f}/min", target, ok)
    report.add("jobs", f"{result['jobs']}: {result['delivered']} posted once, "
               f"{result['refunded']} refunded", "every job posted once or refunded",
               result["lost"] == 0 and result["duplicated"] == 0 and settled)
    report.add("books", f"{result['unbalanced']} unbalanced, {result['paid_twice']} paid "
               f"twice, {result['unfinished']} unfinished", "0",
               result["unbalanced"] + result["paid_twice"] + result["unfinished"] == 0)


async def settle(database: str, count: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        store = await Store.open(database)
        try:
            if await store.count_unfinished() == 0:
                return True
        finally:
            await store.close()
        await asyncio.sleep(1.0)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0, help="jobs a minute")
    parser.add_argument("--warmup-minutes", type=float, default=2.0)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--plot", type=Path, default=Path("soak.png"))
    args = parser.parse_args(argv)
    import tempfile

    plot = args.plot.resolve()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        report = asyncio.run(measure(Path(tmp), args.minutes, args.rate, args.warmup_minutes,
                                     args.sample_s, args.database, plot))
    print(report.table())
    print(f"\n{machine_note()}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
