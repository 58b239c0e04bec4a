"""Acknowledgement latency under bursts: the real bot against the defer-only floor.

For each burst size, three pairs: the real bot (``python -m bot`` on the APIXO emulator,
which keeps every task rendering for an hour so all jobs stay in flight; an
AutoShardedBot, run with one shard) and the floor (bench/floor_bot.py: a plain
discord.Client that only defers), the order alternating from pair to pair. Each burst gets a
fresh fake Discord, one warm-up command, then N ``/video`` interactions dispatched as fast
as the fake's gateway writes them. The fake times each acknowledgement from the moment the
interaction was written to the bot's websocket (``ack_latency``) and refuses any later than
3 s, as Discord does. Then one burst of 3000 to the bot alone: all acknowledged in time?

    python -m bench.ack [--sizes 500,1500] [--reps 3] [--deadline-burst 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    Child,
    Report,
    ms,
    percentile,
    run_report,
    start_bot,
    start_floor_bot,
)
from tests.fakes.apixo import FakeApixo
from tests.fakes.fake_discord import FakeDiscord

ACK_RATIO_TARGET = 1.1
ACK_DEADLINE_S = 3.0
DEADLINE_BURST = 3000


@dataclass
class Burst:
    kind: str  # "bot" or "floor"
    size: int
    latencies: list[float]  # seconds; inf for a command never acknowledged in time

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
                "POLL_FIRST_S": "30", "POLL_INTERVAL_S": "30", "SHARD_COUNT": "1",
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
            return burst
        finally:
            await child.stop()


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _log(b: Burst, rep: int) -> None:
    print(f"  {b.kind:5} burst {b.size:4} #{rep + 1}: p50 {ms(b.p(50))}, "
          f"p99 {ms(b.p(99))}, max {ms(max(b.latencies))}, "
          f"acked {b.acked}/{b.size}", file=sys.stderr)


async def measure(sizes: list[int], work: Path, reps: int = 3,
                  deadline_burst: int = DEADLINE_BURST) -> Report:
    """``reps`` floor/bot pairs per size, the order alternating from pair to pair so that a
    slow moment of the machine does not land on one side only. Each pair gives one ratio
    (bot p99 / floor p99); the median ratio is judged and the spread (min-max) shown.
    Then one burst of ``deadline_burst`` to the bot alone: how many are acknowledged in
    time."""
    report = Report("Acknowledgement latency")
    for size in sizes:
        ratios: list[float] = []
        floors: list[Burst] = []
        bots: list[Burst] = []
        for rep in range(reps):
            pair: dict[str, Burst] = {}
            for kind in ("floor", "bot") if rep % 2 == 0 else ("bot", "floor"):
                pair[kind] = await run_burst(kind, size, work / f"{kind}-{size}-{rep}")
                _log(pair[kind], rep)
            floors.append(pair["floor"])
            bots.append(pair["bot"])
            f99 = pair["floor"].p(99)
            ratios.append(pair["bot"].p(99) / f99 if f99 > 0 else float("inf"))
        ratio = median(ratios)
        f99 = median([b.p(99) for b in floors])
        b99 = median([b.p(99) for b in bots])
        report.add(f"ack p99 bot / floor, burst of {size} (AutoShardedBot 1 shard vs Client)",
                   f"{ratio:.2f}x median, spread {min(ratios):.2f}-{max(ratios):.2f}x "
                   f"(p99 bot {ms(b99)}, floor {ms(f99)})",
                   f"<= {ACK_RATIO_TARGET}x", ratio <= ACK_RATIO_TARGET)
    if deadline_burst:
        big = await run_burst("bot", deadline_burst, work / f"bot-{deadline_burst}")
        _log(big, 0)
        report.add(f"acknowledged under 3 s, burst of {deadline_burst}",
                   f"{big.acked}/{big.size} (p99 {ms(big.p(99))}, slowest "
                   f"{ms(max(big.latencies))})", "all",
                   big.acked == big.size)
    report.notes.append(
        "Each burst against a fresh fake Discord and a fresh bot process. Latency: from "
        "the interaction written to the bot's websocket to the fake receiving the defer. "
        "bot: `python -m bot`, a discord.py AutoShardedBot, run with SHARD_COUNT=1 (one "
        "shard, one websocket, like the floor); floor: bench/floor_bot.py, a plain "
        "discord.Client that only defers.")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ack")
    parser.add_argument("--sizes", default="500,1500")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--deadline-burst", type=int, default=DEADLINE_BURST)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    return run_report("ack", lambda tmp: measure(sizes, tmp, args.reps, args.deadline_burst))


if __name__ == "__main__":
    sys.exit(main())
