"""Acknowledgement latency under bursts, and resident memory with the burst's jobs in flight.

For each burst size the real bot (``python -m bot`` on the APIXO emulator, which keeps every
task rendering for an hour so all jobs stay in flight) and the floor (bench/floor_bot.py: a
discord.py bot that only defers) each get a fresh fake Discord, one warm-up command, then
the burst: N ``/video`` interactions dispatched as fast as the fake's gateway writes them.
The fake times each acknowledgement from the moment the interaction was written to the
bot's websocket (``ack_latency``) and refuses any later than 3 s, as Discord does.

    python -m bench.ack [--sizes 100,500,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    MIB,
    Child,
    Report,
    machine_note,
    ms,
    percentile,
    proc_status,
    sqlite_count,
    start_bot,
    start_floor_bot,
)
from tests.fakes.apixo import FakeApixo
from tests.fakes.fake_discord import FakeDiscord

ACK_RATIO_TARGET = 1.3
ACK_DEADLINE_S = 3.0
RSS_TARGET = 150 * MIB
IN_FLIGHT_FOR_MEMORY = 1000


@dataclass
class Burst:
    kind: str  # "bot" or "floor"
    size: int
    latencies: list[float]  # seconds; inf for a command never acknowledged in time
    rss: int | None = None  # bot only: resident bytes with the burst's jobs in flight
    hwm: int | None = None
    in_flight: int | None = None

    @property
    def acked(self) -> int:
        return sum(1 for v in self.latencies if v <= ACK_DEADLINE_S)

    def p(self, pct: float) -> float:
        return percentile(self.latencies, pct)


async def run_burst(kind: str, size: int, work: Path) -> Burst:
    async with FakeApixo(queue_s=5, task_s=3600) as fake, FakeDiscord() as fd:
        guild = fd.add_guild("Bench")
        channel = fd.text_channels(guild)[0]
        member = fd.add_member(guild, name="member")
        child: Child
        if kind == "bot":
            child = await start_bot(fd, work, {
                "PROVIDER": "apixo", "MODEL": "sora-2", "APIXO_API_KEY": fake.api_key,
                "APIXO_BASE_URL": fake.api_base,
                "DEFAULT_QUOTA_SECONDS": str(10_000_000),
                "POLL_FIRST_S": "30", "POLL_INTERVAL_S": "30",
            })
        else:
            child = await start_floor_bot(fd, work)
        try:
            await fd.wait_until_connected(10)

            async def one(prompt: str) -> int:
                payload = fd.slash("video", {"prompt": prompt, "duration": 4}, guild_id=guild,
                                   channel_id=channel, user_id=member)
                await fd.send_interaction(payload, timeout=60)
                return int(payload["id"])

            warm = await one("warm-up")
            await fd.wait_for(lambda: fd.ack_latency(warm) is not None, 10)
            await asyncio.sleep(0.5)
            payloads = [
                fd.slash("video", {"prompt": f"burst {kind} {i}", "duration": 4},
                         guild_id=guild, channel_id=channel, user_id=member)
                for i in range(size)
            ]
            ids = [int(p["id"]) for p in payloads]

            def settled() -> bool:
                return all(fd.ack_latency(i) is not None for i in ids)

            # The fake is the measuring instrument: keep its garbage collector from
            # pausing it in the middle of a burst (the bots' collectors run as usual).
            gc.collect()
            gc.disable()
            try:
                await asyncio.gather(*(fd.send_interaction(p, timeout=60) for p in payloads))
                with contextlib.suppress(TimeoutError):
                    await fd.wait_for(settled, ACK_DEADLINE_S + 5)
            finally:
                gc.enable()
            latencies = []
            for i in ids:
                callbacks = fd.interaction_responses(i)
                good = [c for c in callbacks if c.status in (200, 204)]
                latencies.append(good[0].elapsed_s if good and good[0].elapsed_s is not None
                                 else float("inf"))
            burst = Burst(kind, size, latencies)
            if kind == "bot":
                assert child.db_path is not None
                deadline = time.monotonic() + 60
                wanted = size + 1
                while time.monotonic() < deadline:
                    count = sqlite_count(
                        child.db_path,
                        "SELECT COUNT(*) FROM jobs WHERE state IN"
                        " ('reserved', 'submitting', 'submitted', 'succeeded')")
                    if count >= wanted:
                        break
                    await asyncio.sleep(0.2)
                await asyncio.sleep(2.0)  # the queued-status edits settle
                status = proc_status(child.pid)
                burst.rss, burst.hwm = status["VmRSS"], status["VmHWM"]
                burst.in_flight = sqlite_count(
                    child.db_path,
                    "SELECT COUNT(*) FROM jobs WHERE state IN"
                    " ('reserved', 'submitting', 'submitted', 'succeeded')")
            return burst
        finally:
            await child.stop()


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


async def measure(sizes: list[int], work: Path, reps: int = 3) -> Report:
    """``reps`` bursts of each size for each bot, alternating floor and bot, so that a
    slow moment of the machine does not land on one side only; medians are compared."""
    report = Report("Acknowledgement latency and memory")
    runs: dict[tuple[str, int], list[Burst]] = {}
    for size in sizes:
        for rep in range(reps):
            for kind in ("floor", "bot") if rep % 2 == 0 else ("bot", "floor"):
                b = await run_burst(kind, size, work / f"{kind}-{size}-{rep}")
                runs.setdefault((kind, size), []).append(b)
                print(f"  {kind:5} burst {size:4} #{rep + 1}: p50 {ms(b.p(50))}, "
                      f"p99 {ms(b.p(99))}, max {ms(max(b.latencies))}, "
                      f"acked {b.acked}/{size}", file=sys.stderr)
    for size in sizes:
        floor, bot = runs[("floor", size)], runs[("bot", size)]
        f50, f99 = median([b.p(50) for b in floor]), median([b.p(99) for b in floor])
        b50, b99 = median([b.p(50) for b in bot]), median([b.p(99) for b in bot])
        report.add(f"floor ack p50 / p99, burst {size}", f"{ms(f50)} / {ms(f99)}")
        ratio = b99 / f99 if f99 > 0 else float("inf")
        report.add(f"bot ack p50 / p99, burst {size}",
                   f"{ms(b50)} / {ms(b99)} ({ratio:.2f}x floor p99)",
                   f"p99 <= {ACK_RATIO_TARGET}x floor", ratio <= ACK_RATIO_TARGET)
        acked = sum(b.acked for b in bot)
        total = sum(b.size for b in bot)
        slowest = max(max(b.latencies) for b in bot)
        last = size == max(sizes)
        report.add(f"bot acknowledged in < 3 s, burst {size}",
                   f"{acked}/{total}, slowest {ms(slowest)}",
                   f"all < {ACK_DEADLINE_S:.0f} s" if last else "",
                   acked == total and slowest < ACK_DEADLINE_S if last else None)
    biggest = max(runs[("bot", max(sizes))], key=lambda b: b.rss or 0)
    if biggest.rss is not None:
        target = f"< {RSS_TARGET // MIB} MB" if max(sizes) >= IN_FLIGHT_FOR_MEMORY else ""
        report.add(f"bot resident memory, {biggest.in_flight} jobs in flight",
                   f"{biggest.rss / MIB:.0f} MB (peak {(biggest.hwm or 0) / MIB:.0f} MB)",
                   target, biggest.rss < RSS_TARGET if target else None)
    report.notes.append(
        f"Medians of {reps} bursts per size and bot, floor and bot alternating; each burst "
        "against a fresh fake Discord. Latency: from the interaction written to the bot's "
        "websocket to the fake receiving the defer.")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ack")
    parser.add_argument("--sizes", default="100,500,1000")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-ack-") as tmp:
        report = asyncio.run(measure(sizes, Path(tmp), args.reps))
    print(report.table())
    print(f"\n{machine_note()}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
