"""Fault injection, at length: every crash point and every storm, many times over.

    python -m bench.faults [--rounds 3]

* The job service killed with SIGKILL at each point of a job's life, then restarted
  (tests/jobs/crash_harness.py, one process per start), ``rounds`` times per point.
* The real bot (in this process, against the fake Discord and the APIXO emulator, all on
  127.0.0.1) with 10 jobs per round under: submit 429 storms, status 5xx/429 storms with
  timeouts, uncertain submits, callbacks lost / repeated / reordered and replayed / forged,
  Discord answering 429, 500 or 503 to the video post or losing its answer, and the
  database write-locked by another process for 3 s twice.

After each run: lost (a job neither delivered nor failed with its seconds refunded and a
message), duplicated (a second video message, or a second paid task), overspent (seconds
charged beyond what was delivered, or a ledger that disagrees). Exits non-zero if any is
not zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import ROOT, Report, quiet_logs, run_report
from bot.store import Store
from tests.bot.support import World
from tests.fakes.apixo import FakeApixo
from tests.fakes.fake_discord.bodies import ApiError
from tests.faults.support import Books, books, fault_world, settle, take_write_lock
from tests.jobs.crash_harness import CRASH_POINTS

JOBS = 10


@dataclass
class Tally:
    runs: int = 0
    jobs: int = 0
    delivered: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    overspent: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{self.runs} runs, {self.jobs} jobs in {self.seconds:.0f} s; lost {self.lost},"
                f" duplicated {self.duplicated}, overspent {self.overspent}")

    def add(self, result: Books, paid_twice: int = 0) -> None:
        self.runs += 1
        self.jobs += result.delivered + result.failed + result.lost
        self.delivered += result.delivered
        self.failed += result.failed
        self.lost += result.lost
        self.duplicated += result.duplicated + paid_twice
        self.overspent += result.overspent + result.unbalanced


# -- crash and restart ----------------------------------------------------------------------


async def harness(work: Path, fake: FakeApixo, *extra: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.jobs.crash_harness", "--db", str(work / "bot.sqlite3"),
        "--work", str(work / "work"), "--posts", str(work / "posts.jsonl"),
        "--base-url", fake.api_base, "--key", fake.api_key, *extra, cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(proc.wait(), timeout=60)


async def crash_once(point: str, work: Path) -> tuple[Books, int]:
    work.mkdir(parents=True)
    async with FakeApixo(queue_s=0.1, task_s=0.4) as fake:
        code = await harness(work, fake, "--request", "--crash-at", point)
        if code != -signal.SIGKILL:
            raise RuntimeError(f"the harness was not killed at {point} (exit {code})")
        for _ in range(2):  # restart, then once more: the second finds nothing to do
            if await harness(work, fake) != 0:
                raise RuntimeError(f"a restart after {point} failed")
        posts_file = work / "posts.jsonl"
        posts = [json.loads(line) for line in posts_file.read_text().splitlines()] \
            if posts_file.exists() else []
        store = await Store.open(work / "bot.sqlite3")
        try:
            jobs = await store.jobs_for(1, None, limit=10)
            lost = duplicated = overspent = unbalanced = delivered = failed = 0
            for job in jobs:
                copies = sum(1 for p in posts if p["job"] == job.id)
                duplicated += max(0, copies - 1)
                balance = await store.ledger_balance(job.id)
                if job.state.value == "delivered" and copies:
                    delivered += 1
                    unbalanced += balance != job.seconds
                elif job.state.value == "failed" and not copies and job.error_message:
                    failed += 1
                    overspent += max(0, balance)
                    unbalanced += balance != 0
                else:
                    lost += 1
            paid_twice = max(0, len(fake.requests_to("POST", "/api/v1/generateTask")) - 1)
            return Books(delivered, failed, lost, duplicated, overspent, unbalanced), paid_twice
        finally:
            await store.close()


# -- storms against the real bot ------------------------------------------------------------


async def ask(w: World, count: int) -> None:
    for index in range(count):
        await w.command("video", {"prompt": f"fault run {index}", "duration": 4})


async def submit_429_storm(w: World, fake: FakeApixo) -> None:
    fake.fail_submits_with_429, fake.retry_after = JOBS * 2, 0.05
    await ask(w, JOBS)


async def status_storm(w: World, fake: FakeApixo) -> None:
    fake.status_5xx, fake.status_429s, fake.retry_after = 20, 10, 0.05
    fake.status_delay_s = 1.5
    await ask(w, JOBS)
    await asyncio.sleep(4)
    fake.status_delay_s = 0.0


async def uncertain_submits(w: World, fake: FakeApixo) -> None:
    fake.submit_5xx_after_create = True
    await ask(w, JOBS // 2)
    await fake.wait_until(lambda: fake.submits_accepted >= JOBS // 2, within=30)
    fake.submit_5xx_after_create = False
    fake.submit_delay_s = 2.0
    await ask(w, JOBS // 2)


async def callbacks_lost(w: World, fake: FakeApixo) -> None:
    fake.callback_mode = "drop"
    await ask(w, JOBS)


async def callbacks_repeated(w: World, fake: FakeApixo) -> None:
    fake.callback_mode, fake.callback_duplicates = "duplicate", 5
    await ask(w, JOBS)


async def callbacks_reordered(w: World, fake: FakeApixo) -> None:
    fake.callback_mode = "early"
    await ask(w, JOBS)
    await settle(w, JOBS, within=60)
    sent = list(reversed(fake.callbacks_sent))
    async with aiohttp.ClientSession() as client:
        for url in sorted({c.url for c in sent}):
            for callback in sent:
                async with client.post(url, json=callback.payload) as resp:
                    await resp.read()


async def callbacks_forged(w: World, fake: FakeApixo) -> None:
    fake.callback_mode, fake.task_s = "drop", 3.0
    await ask(w, JOBS)
    await fake.wait_until(lambda: fake.submits_accepted >= JOBS, within=30)
    base = f"http://127.0.0.1:{w.bot.webhook.port}/callbacks"
    forged = {"code": 200, "message": "success", "data": {
        "taskId": "task_forged", "state": "success",
        "resultJson": json.dumps({"resultUrls": ["http://127.0.0.1:9/evil.mp4"]})}}
    async with aiohttp.ClientSession() as client:
        for job in await w.bot.store.jobs_for(w.guild, None, limit=100):
            token = w.bot.jobs.token_for(job.id)
            for url in (f"{base}/apixo/{token}", f"{base}/apixo/{token[::-1]}",
                        f"{base}/aivideoapi/{token}"):
                for _ in range(10):
                    async with client.post(url, json=forged) as resp:
                        await resp.read()


def discord_errors(status: int) -> Callable[[World, FakeApixo], Awaitable[None]]:
    async def scenario(w: World, fake: FakeApixo) -> None:
        w.fd.fail_next_message_posts(JOBS, status=status, retry_after=0.2)
        await ask(w, JOBS)

    return scenario


async def discord_answer_lost(w: World, fake: FakeApixo) -> None:
    create = w.fd.store.create
    count = {"n": 0}

    def create_then_fail(*args: Any, **kw: Any) -> Any:
        message = create(*args, **kw)
        if message.attachments:
            count["n"] += 1
            if count["n"] % 2:
                raise ApiError(503 if count["n"] % 4 == 1 else 500, 0, "answer lost")
        return message

    w.fd.store.create = create_then_fail  # type: ignore[method-assign]
    await ask(w, JOBS)


async def database_locked(w: World, fake: FakeApixo) -> None:
    fake.task_s = 1.0
    await ask(w, JOBS // 2)
    for _ in range(2):
        other = sqlite3.connect(w.bot.settings.database_path, timeout=0,
                                isolation_level=None)
        try:
            await take_write_lock(other)
            await ask(w, JOBS // 4)
            await asyncio.sleep(3.0)
        finally:
            other.rollback()
            other.close()
        await asyncio.sleep(0.5)


def expected_jobs(name: str) -> int:
    return JOBS // 2 + 2 * (JOBS // 4) if name == "database locked 3 s, twice" else JOBS


SCENARIOS: dict[str, tuple[Callable[[World, FakeApixo], Awaitable[None]], dict[str, Any]]] = {
    "provider 429 storm on submit": (submit_429_storm, {}),
    "provider 5xx/429 storm and timeouts on status": (status_storm, {}),
    "uncertain submits (5xx after create, timeout)": (uncertain_submits, {}),
    "callbacks lost": (callbacks_lost, {"callbacks": True}),
    "callbacks repeated x5": (callbacks_repeated, {"callbacks": True, "poll_first_s": 30.0,
                                                   "poll_interval_s": 30.0}),
    "callbacks early, then all replayed reversed": (
        callbacks_reordered, {"callbacks": True, "poll_first_s": 30.0, "poll_interval_s": 30.0}),
    "callbacks forged (300 per round)": (callbacks_forged, {"callbacks": True}),
    "Discord 429 on video posts": (discord_errors(429), {}),
    "Discord 500 on video posts": (discord_errors(500), {}),
    "Discord 503 on video posts": (discord_errors(503), {}),
    "Discord posts, then its answer is lost": (discord_answer_lost, {}),
    "database locked 3 s, twice": (database_locked, {}),
}


async def storm_once(name: str, work: Path) -> tuple[Books, int]:
    scenario, options = SCENARIOS[name]
    work.mkdir(parents=True)
    async with fault_world(work, **options) as (w, fake):
        await scenario(w, fake)
        jobs = await settle(w, expected_jobs(name), within=120)
        result = await books(w, jobs)
        tasks = {j.task_id for j in jobs if j.task_id}
        paid_twice = max(0, len([t for t in fake.tasks.values() if t.id not in tasks])
                         - sum(1 for j in jobs if j.error_code == "submit_uncertain"))
        return result, paid_twice


async def measure(work: Path, rounds: int) -> Report:
    tallies: dict[str, Tally] = {}
    for point in CRASH_POINTS:
        tally = tallies.setdefault(f"SIGKILL at {point}, restart", Tally())
        for index in range(rounds):
            start = time.monotonic()
            result, paid_twice = await crash_once(point, work / f"crash-{point}-{index}")
            tally.add(result, paid_twice)
            tally.seconds += time.monotonic() - start
        print(f"  SIGKILL at {point}: {tally.summary()}", file=sys.stderr)
    for name in SCENARIOS:
        tally = tallies.setdefault(name, Tally())
        for index in range(rounds):
            start = time.monotonic()
            result, paid_twice = await storm_once(name, work / f"storm-{len(tallies)}-{index}")
            tally.add(result, paid_twice)
            tally.seconds += time.monotonic() - start
        print(f"  {name}: {tally.summary()}", file=sys.stderr)
    report = Report("Fault injection")
    total = Tally()
    for name, tally in tallies.items():
        clean = tally.lost + tally.duplicated + tally.overspent == 0
        report.add(name, f"{tally.runs} runs, {tally.jobs} jobs: {tally.delivered} delivered, "
                   f"{tally.failed} refunded; lost {tally.lost}, duplicated "
                   f"{tally.duplicated}, overspent {tally.overspent}", "0 / 0 / 0", clean)
        for key in ("runs", "jobs", "delivered", "failed", "lost", "duplicated", "overspent"):
            setattr(total, key, getattr(total, key) + getattr(tally, key))
    report.add("all faults", f"{total.runs} runs, {total.jobs} jobs: lost {total.lost}, "
               f"duplicated {total.duplicated}, overspent {total.overspent}", "0 / 0 / 0",
               total.lost + total.duplicated + total.overspent == 0)
    report.notes.append(
        "lost: neither delivered nor failed with a refund and a message; duplicated: a second "
        "video message or a second paid provider task; overspent: seconds charged beyond "
        "what was delivered, or a ledger that disagrees with the job.")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    quiet_logs()
    return run_report("faults", lambda tmp: measure(tmp, args.rounds))


if __name__ == "__main__":
    sys.exit(main())
