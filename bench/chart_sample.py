"""Draw the README's /usage picture from real store data.

A fresh SQLite store gets a week of jobs from seven members (reserved through the bot's
own ``Store.reserve``, some delivered, some failed and refunded), then the picture a
moderator would see on the Thursday is built and drawn by the same code as ``/usage``.

    python -m bench.chart_sample docs/usage.png [--member]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.media.chart import draw
from bot.store import NewJob, QuotaSettings, Store
from cogs.quota import usage_picture

GUILD = 1
QUOTA = QuotaSettings(seconds=1200, period="week")
THURSDAY = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)
# Member id -> how busy they are (jobs a day, on average).
MEMBERS = {101: 4.0, 102: 3.0, 103: 2.5, 104: 2.0, 105: 1.5, 106: 1.0, 107: 0.8}


async def fill(store: Store) -> None:
    rng = random.Random(11)
    monday = THURSDAY.replace(hour=0) - timedelta(days=THURSDAY.weekday())
    n = 0
    for day in range(4):
        for user, rate in MEMBERS.items():
            for _ in range(rng.randint(0, round(rate * 2))):
                n += 1
                seconds = rng.choice((4, 8, 8, 12))
                at = monday + timedelta(days=day, hours=rng.uniform(8, 23))
                if at > THURSDAY:
                    continue
                new = NewJob(guild_id=GUILD, user_id=user, provider="sandbox", model="sora-2",
                             mode="text-to-video", prompt="sample", duration=seconds,
                             orientation="landscape", seconds=seconds)
                job, _ = await store.reserve(new, QUOTA, now=at.timestamp(),
                                             job_id=f"sample{n}", token=f"sample-token-{n}")
                if rng.random() < 0.1:
                    await store.fail_job(job.id, "sample", "refunded")


async def main(out: Path, member: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "bot.sqlite3")
        try:
            await fill(store)
            viewer = 103 if member else None
            chart = await usage_picture(store, GUILD, QUOTA, viewer, now=THURSDAY.timestamp())
        finally:
            await store.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(await asyncio.to_thread(draw, chart))
    print(f"wrote {out} ({chart.total} s in the picture, {len(chart.series)} series)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--member", action="store_true", help="a member's picture instead")
    args = parser.parse_args()
    asyncio.run(main(args.out, args.member))
