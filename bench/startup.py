"""Start-up: from starting ``python -m bot`` to commands synced and the gateway ready.

Each run starts the bot on a fresh SQLite database against a fresh fake Discord (so the
global command list is new and is synced). Ready: the bot's /healthz answers 200 (the
database answers and discord.py has processed READY); synced: the fake stored the bulk
command PUT. The figure is the later of the two, from just before the process was
started; the median of three runs, with the spread.

    python -m bench.startup [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.common import Report, run_report, start_bot
from tests.fakes.apixo import FakeApixo
from tests.fakes.fake_discord import FakeDiscord

STARTUP_TARGET_S = 2.0


async def once(work: Path) -> tuple[float, float]:
    """(seconds to ready, seconds to synced) from just before the process started."""
    async with FakeApixo() as fake, FakeDiscord() as fd:
        guild = fd.add_guild("Bench")
        fd.add_member(guild, name="member")
        bot = await start_bot(fd, work, {
            "PROVIDER": "apixo", "MODEL": "sora-2", "APIXO_API_KEY": fake.api_key,
            "APIXO_BASE_URL": fake.api_base,
        })
        try:
            await fd.wait_for(lambda: fd.global_syncs, 30)
            return (bot.healthy_at - bot.spawned_at,
                    fd.global_syncs[0].at - bot.spawned_at)
        finally:
            await bot.stop()


async def measure(work: Path, runs: int = 3) -> Report:
    report = Report("Start-up")
    totals: list[float] = []
    for run in range(runs):
        ready, synced = await once(work / f"run-{run}")
        totals.append(max(ready, synced))
        print(f"  start-up #{run + 1}: ready {ready:.2f} s, synced {synced:.2f} s",
              file=sys.stderr)
    ordered = sorted(totals)
    mid = ordered[len(ordered) // 2]
    report.add("start-up to commands synced and gateway ready (SQLite)",
               f"{mid:.2f} s median, spread {ordered[0]:.2f}-{ordered[-1]:.2f} s",
               f"< {STARTUP_TARGET_S:.0f} s", mid < STARTUP_TARGET_S)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    return run_report("startup", lambda tmp: measure(tmp, args.runs))


if __name__ == "__main__":
    sys.exit(main())
