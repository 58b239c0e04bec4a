"""Resident memory of the real bot: idle after start, and with 1000 and 2000 accepted
``/video`` jobs in flight.

One ``python -m bot`` on the APIXO emulator (every task renders for an hour, so jobs stay
in flight: 10 at the provider, the rest waiting in the bot). Resident memory is ``VmRSS``
of the bot process plus every process under it, read from /proc once the jobs are recorded
and their status edits have settled. The cost of an extra 1000 jobs is the difference
between the readings at 2000 and at 1000.

    python -m bench.memory
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from bench.common import MIB, Report, run_report, sqlite_count, start_bot
from tests.fakes.apixo import FakeApixo
from tests.fakes.fake_discord import FakeDiscord

IN_FLIGHT_TARGET = 80 * MIB
PER_1000_TARGET = 10 * MIB
UNFINISHED = ("SELECT COUNT(*) FROM jobs WHERE state IN"
              " ('reserved', 'submitting', 'submitted', 'succeeded')")


def tree_rss(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants, in bytes."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return total


async def measure(work: Path, batches: int = 2, per_batch: int = 1000) -> Report:
    report = Report("Resident memory")
    async with FakeApixo(queue_s=5, task_s=3600) as fake, FakeDiscord() as fd:
        guild = fd.add_guild("Bench")
        channel = fd.text_channels(guild)[0]
        member = fd.add_member(guild, name="member")
        bot = await start_bot(fd, work, {
            "PROVIDER": "apixo", "MODEL": "sora-2", "APIXO_API_KEY": fake.api_key,
            "APIXO_BASE_URL": fake.api_base, "DEFAULT_QUOTA_SECONDS": str(10_000_000),
            "POLL_FIRST_S": "30", "POLL_INTERVAL_S": "30",
        })
        try:
            await fd.wait_until_connected(10)
            assert bot.db_path is not None
            await asyncio.sleep(2.0)
            idle = tree_rss(bot.pid)
            report.add("resident memory, idle after start", f"{idle / MIB:.1f} MB")
            readings: list[tuple[int, int, int]] = []  # (in flight, at provider, bytes)
            sent = 0
            for batch in range(batches):
                payloads = [
                    fd.slash("video", {"prompt": f"memory {batch} {i}", "duration": 4},
                             guild_id=guild, channel_id=channel, user_id=member)
                    for i in range(per_batch)
                ]
                await asyncio.gather(*(fd.send_interaction(p, timeout=60) for p in payloads))
                sent += per_batch
                deadline = time.monotonic() + 120
                while (sqlite_count(bot.db_path, UNFINISHED) < sent  # noqa: ASYNC110
                       and time.monotonic() < deadline):
                    await asyncio.sleep(0.2)
                await asyncio.sleep(3.0)  # the queued-status edits settle
                flight = sqlite_count(bot.db_path, UNFINISHED)
                at_provider = sqlite_count(
                    bot.db_path, "SELECT COUNT(*) FROM jobs WHERE state = 'submitted'")
                readings.append((flight, at_provider, tree_rss(bot.pid)))
                print(f"  {flight} in flight ({at_provider} at the provider): "
                      f"{readings[-1][2] / MIB:.1f} MB", file=sys.stderr)
        finally:
            await bot.stop()
    flight, at_provider, first = readings[0]
    report.add(f"resident memory, {flight} jobs in flight ({at_provider} at the provider)",
               f"{first / MIB:.1f} MB", f"<= {IN_FLIGHT_TARGET // MIB} MB",
               first <= IN_FLIGHT_TARGET)
    if len(readings) > 1:
        flight2, _, second = readings[1]
        per = (second - first) / max(1, flight2 - flight) * 1000
        report.add("resident memory per extra 1000 jobs in flight",
                   f"{per / MIB:.1f} MB ({second / MIB:.1f} MB at {flight2})",
                   f"< {PER_1000_TARGET // MIB} MB", per < PER_1000_TARGET)
    report.notes.append("VmRSS of the bot process and its children, from /proc.")
    return report


def main() -> int:
    return run_report("memory", measure)


if __name__ == "__main__":
    sys.exit(main())
