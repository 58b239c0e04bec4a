"""The bot's connections to Discord are a bounded pool, even under a burst of commands,
and a burst is read from the gateway no faster than it is acknowledged."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot import app
from tests.bot.support import world


def client_connections(port: int) -> int:
    """Established IPv4 connections from this process's clients to ``port``."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state = fields[2], fields[3]
        if state == "01" and int(remote.split(":")[1], 16) == port:
            count += 1
    return count


async def test_a_burst_of_commands_uses_at_most_the_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app, "DISCORD_CONNECTIONS", 3)
    async with world(tmp_path, sandbox_delay_s=30) as w:
        assert w.bot.http.connector.limit == 3
        most = 0
        members = [w.fd.add_member(w.guild, name=f"member {n}") for n in range(30)]
        burst = asyncio.gather(*(w.command("video", {"prompt": f"fox {n}"}, user=member)
                                 for n, member in enumerate(members)))
        while not burst.done():
            most = max(most, client_connections(w.fd.port))
            await asyncio.sleep(0.005)
        await burst
        assert 1 <= most <= 3 + 1  # the pool, and the gateway's websocket
        # No more interactions were read and left unanswered than the pool can answer.
        assert 1 <= w.bot.interaction_gate.most_open <= 3
        for _ in range(200):
            if len(await w.bot.store.jobs_for(w.guild, None, limit=100)) == 30:
                break
            await asyncio.sleep(0.05)
        assert len(await w.bot.store.jobs_for(w.guild, None, limit=100)) == 30
