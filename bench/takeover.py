"""Takeover after SIGKILL: two sharded ``python -m bot`` processes on one PostgreSQL (the
embedded server the tests use), 20 jobs over two servers, one process killed while its
jobs run; the figure is the time until the survivor holds every job the dead one had.

    python -m bench.takeover            # 3 runs, the median and the spread
    python -m bench.takeover --runs 1

The goal (issue: scale-out) is at most JOB_LEASE_S + one poll interval.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import time
from pathlib import Path

from bench.common import Report, run_report
from tests.bot.test_scaleout import LEASE_S, all_jobs, burst, settle, two_shards
from tests.pgserver import server, stop_server

POLL_INTERVAL_S = 0.3  # what process_env sets


async def one_takeover(work: Path) -> float:
    async with two_shards(work, server().fresh_url(), task_s=1.5) as cluster:
        fd, fake, guilds, procs, store = (cluster.fd, cluster.fake, cluster.guilds,
                                          cluster.procs, cluster.store)
        await burst(fd, guilds, 10)
        await fd.wait_for(lambda: len(fake.tasks) >= 4, 60)
        victim = f":{procs[1].proc.pid}:"
        held = {j.id for j in await all_jobs(store, guilds)
                if not j.terminal and j.owner and victim in j.owner}
        procs[1].proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await procs[1].proc.wait()
        while time.monotonic() - killed < 60:
            mine = [j for j in await all_jobs(store, guilds) if j.id in held]
            if all(j.terminal or (j.owner and victim not in j.owner) for j in mine):
                break
            await asyncio.sleep(0.02)
        took = time.monotonic() - killed
        await settle(store, guilds, 20, 120)
        return took


async def measure(work: Path, runs: int = 3) -> Report:
    report = Report("Takeover after SIGKILL (two sharded processes, PostgreSQL)")
    times = []
    for n in range(runs):
        folder = work / f"run{n}"
        folder.mkdir(parents=True)
        times.append(await one_takeover(folder))
        print(f"  run {n + 1}: {times[-1]:.2f} s", file=sys.stderr)
    goal = LEASE_S + POLL_INTERVAL_S
    median = statistics.median(times)
    report.add(f"takeover after SIGKILL (median of {runs}; spread "
               f"{min(times):.2f}-{max(times):.2f} s)", f"{median:.2f} s",
               f"<= JOB_LEASE_S + poll = {goal:.1f} s", median <= goal)
    report.notes.append(f"JOB_LEASE_S={LEASE_S}, POLL_INTERVAL_S={POLL_INTERVAL_S}; "
                        "command: python -m bench.takeover")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.takeover")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        return run_report("takeover", lambda tmp: measure(tmp, args.runs))
    finally:
        stop_server()


if __name__ == "__main__":
    sys.exit(main())
