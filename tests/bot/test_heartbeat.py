"""The gateway heartbeat's latency is measured from when the heartbeat was sent, not from
the one before: a fast acknowledgement read by the loop before discord.py's keep-alive
thread woke up used to be reported as a whole interval late ("Can't keep up, shard ID 0
websocket is 41.3s behind")."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.bot.support import running_bot, settings_for
from tests.fakes.fake_discord import FakeDiscord

pytestmark = pytest.mark.timeout(60)


async def test_heartbeat_latency_is_the_time_to_the_acknowledgement(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="discord.gateway")
    async with FakeDiscord() as fd:
        fd.gateway.heartbeat_interval_ms = 200  # Discord's is 41 250
        fd.add_guild("Beats")
        async with running_bot(settings_for(tmp_path, fd), fd) as bot:
            latencies = []
            for _ in range(120):
                await asyncio.sleep(0.05)
                latencies.append(bot.latency)
            beats = sum(s.conn.heartbeats for s in fd.gateway.live_sessions() if s.conn)
    assert beats >= 20
    # A loopback fake answers in well under a millisecond; an interval (0.2 s) is wrong.
    assert max(latencies[10:]) < 0.15, [round(x, 4) for x in latencies]
    assert "Can't keep up" not in caplog.text
