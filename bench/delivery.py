"""Delivery overhead and delivery memory: the real bot posting 5 MB and 100 MB MP4s.

One ``python -m bot`` on the APIXO emulator, polling every 0.2 s; the emulator streams a
real H.264 MP4 of each size from disk, and the fake Discord's upload limit is large enough
that nothing is shrunk.

* Overhead: from the moment the emulator first answers a status check with success to the
  moment the fake Discord stores the message with the MP4, divided by the time a separate
  process takes to download the same file once and upload it once (bench/transfer.py:
  the faster of holding it in memory and streaming it through a file) over the same
  loopback. Medians of several jobs.
* Memory: the bot's peak resident size (VmHWM, reset just before each job through
  /proc/<pid>/clear_refs) minus its resident size at that moment, for each file size.
  A file held whole would show up as ~100 MB more growth for the large file.

    python -m bench.delivery [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    MIB,
    ROOT,
    Report,
    base_env,
    hwm,
    ms,
    reset_hwm,
    rss,
    run_report,
    sqlite_count,
    start_bot,
    write_mp4,
)
from tests.fakes.apixo import FakeApixo
from tests.fakes.common import FakeTask
from tests.fakes.fake_discord import FakeDiscord

OVERHEAD_TARGET = 1.2
GROWTH_TARGET = 32 * MIB
SIZES = {"5 MB": 5 * MIB, "100 MB": 100 * MIB}


class TimedApixo(FakeApixo):
    """Records when each task's success was first reported to a status check."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.success_at: dict[str, float] = {}

    def render(self, task: FakeTask, phase: str, outcome: str) -> dict[str, Any]:
        if phase == "done" and outcome == "success":
            self.success_at.setdefault(task.id, time.monotonic())
        return super().render(task, phase, outcome)


async def baseline(url: str, fd: FakeDiscord, channel: int, work: Path, mode: str) -> float:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.transfer", url, fd.api_base, fd.token, str(channel), mode,
        cwd=work, env=base_env(fd), stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        raise RuntimeError("the baseline transfer failed")
    return float(json.loads(out)["seconds"])


async def wait_idle(db: Path, within: float) -> None:
    """Until the bot has recorded every job as finished (delivered or failed)."""
    deadline = time.monotonic() + within
    unfinished = ("SELECT COUNT(*) FROM jobs WHERE state IN"
                  " ('reserved', 'submitting', 'submitted', 'succeeded')")
    while sqlite_count(db, unfinished) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


async def measure(work: Path, reps: int = 5, sizes: dict[str, int] | None = None) -> Report:
    sizes = sizes or SIZES
    report = Report("Delivery")
    files: dict[str, Path] = {}
    for label, size in sizes.items():
        files[label] = work / f"video-{size // MIB}mb.mp4"
        await asyncio.to_thread(write_mp4, files[label], size)
    async with TimedApixo(queue_s=0.1, task_s=0.5) as fake, FakeDiscord() as fd:
        guild = fd.add_guild("Bench", upload_limit=max(sizes.values()) * 2)
        channel = fd.text_channels(guild)[0]
        other = fd.add_text_channel(guild, "baseline")
        member = fd.add_member(guild, name="member")
        posted_at: dict[int, float] = {}
        create = fd.store.create

        def timed_create(*args: Any, **kw: Any) -> Any:
            msg = create(*args, **kw)
            posted_at.setdefault(msg.id, time.monotonic())
            return msg

        fd.store.create = timed_create  # type: ignore[method-assign]
        bot = await start_bot(fd, work / "bot", {
            "PROVIDER": "apixo", "MODEL": "sora-2", "APIXO_API_KEY": fake.api_key,
            "APIXO_BASE_URL": fake.api_base,
            "DEFAULT_QUOTA_SECONDS": "100000", "POLL_FIRST_S": "0.2", "POLL_INTERVAL_S": "0.2",
        })
        try:
            await fd.wait_until_connected(10)
            assert bot.db_path is not None
            db = bot.db_path

            async def deliver_one(label: str) -> tuple[float, int]:
                """One job end to end: (overhead seconds, peak growth bytes)."""
                fake.video_file = files[label]
                # Let the previous job's status edits settle, then start the peak afresh.
                await asyncio.sleep(3.5)
                reset_hwm(bot.pid)
                before = rss(bot.pid)
                videos = len([m for m in fd.messages(channel, source="channel")
                              if m.attachments])
                payload = fd.slash("video", {"prompt": f"delivery {label}", "duration": 4},
                                   guild_id=guild, channel_id=channel, user_id=member)
                await fd.send_interaction(payload)

                def posted() -> list[Any]:
                    found = [m for m in fd.messages(channel, source="channel") if m.attachments]
                    return found[videos:]

                (message,) = await fd.wait_for(posted, 120)
                await wait_idle(db, 30)
                growth = hwm(bot.pid) - before
                if len(message.attachments[0].data) != files[label].stat().st_size:
                    raise RuntimeError("the posted file is not the provider's file")
                task_id = max(fake.tasks.values(), key=lambda t: t.created_mono).id
                return posted_at[message.id] - fake.success_at[task_id], growth

            await deliver_one(next(iter(sizes)))  # warm-up: first-use costs are not measured
            for label in sizes:
                url = f"{fake.base_url}/files/{next(iter(fake.tasks))}.mp4"
                fake.video_file = files[label]
                # Baseline and bot alternate, so a slow moment of the machine does not land
                # on one side only. The baseline is the faster of two plain transfers:
                # whole in memory, or streamed through a file.
                by_mode: dict[str, list[float]] = {"memory": [], "file": []}
                bot_times: list[float] = []
                growths: list[int] = []
                for _ in range(reps):
                    for mode, times in by_mode.items():
                        times.append(await baseline(url, fd, other, work, mode))
                    seconds, growth = await deliver_one(label)
                    bot_times.append(seconds)
                    growths.append(growth)
                base_times = min(by_mode.values(), key=median)
                ratio = median(bot_times) / median(base_times)
                extra = median(bot_times) - median(base_times)
                report.add(f"delivery overhead, {label}",
                           f"{ratio:.2f} ({ms(median(bot_times))} vs "
                           f"{ms(median(base_times))} download+upload, {extra * 1000:+.0f} ms)",
                           f"<= {OVERHEAD_TARGET}x", ratio <= OVERHEAD_TARGET)
                report.figures.append(_growth_figure(label, growths))
            growth = [f for f in report.figures if f.name.startswith("peak growth")]
            if len(growth) == 2:
                difference = _parse_mb(growth[1].value) - _parse_mb(growth[0].value)
                labels = list(sizes)
                report.add(f"peak growth, {labels[1]} minus {labels[0]}",
                           f"{difference:.1f} MB", f"< {GROWTH_TARGET // MIB} MB (streamed)",
                           difference < GROWTH_TARGET / MIB)
        finally:
            await bot.stop()
    report.notes.append(
        f"Medians of {reps} jobs per size after one warm-up job.")
    return report


def _growth_figure(label: str, growths: list[int]) -> Any:
    from bench.common import Figure

    worst = max(growths)
    return Figure(f"peak growth while delivering {label}", f"{worst / MIB:.1f} MB")


def _parse_mb(text: str) -> float:
    return float(text.split()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    return run_report("delivery", lambda tmp: measure(tmp, args.reps))


if __name__ == "__main__":
    assert ROOT.exists()
    sys.exit(main())
