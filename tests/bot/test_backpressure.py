"""The gate that keeps the bot from reading more interactions than it can acknowledge
(the whole bot under a burst: tests/bot/test_connections.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from bot.backpressure import InteractionGate


@dataclass
class Response:
    done: bool = False

    def is_done(self) -> bool:
        return self.done


@dataclass
class Interaction:
    """What the gate reads of a discord.Interaction: its id and whether it was answered."""

    id: int
    response: Response = field(default_factory=Response)


def gate_with(limit: int, count: int, **kw: Any) -> tuple[InteractionGate, list[Interaction]]:
    gate = InteractionGate(limit, **kw)
    opened = [Interaction(n) for n in range(count)]
    for interaction in opened:
        gate.opened(interaction)  # type: ignore[arg-type]
    return gate, opened


async def test_under_the_limit_the_gateway_reads_on() -> None:
    gate, _ = gate_with(3, 2)
    await asyncio.wait_for(gate.wait(), 0.1)


async def test_at_the_limit_reading_waits_for_an_acknowledgement() -> None:
    gate, opened = gate_with(3, 3)
    reader = asyncio.create_task(gate.wait())
    await asyncio.sleep(0.2)
    assert not reader.done()
    gate.settled(opened[1].id)
    await asyncio.wait_for(reader, 0.1)
    assert gate.open == 2 and gate.most_open == 3


async def test_an_interaction_answered_without_a_deferral_frees_its_place() -> None:
    gate, opened = gate_with(2, 2)
    reader = asyncio.create_task(gate.wait())
    await asyncio.sleep(0.1)
    assert not reader.done()
    opened[0].response.done = True  # a button's edit, say: nothing calls settled()
    await asyncio.wait_for(reader, 0.5)


async def test_an_unanswered_interaction_stops_counting_after_its_window() -> None:
    gate, _ = gate_with(2, 2, window_s=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(gate.wait(), 2)
    assert loop.time() - started >= 0.25
    assert gate.open == 0
    gate.opened(Interaction(99))  # type: ignore[arg-type]
    assert gate.open == 1
