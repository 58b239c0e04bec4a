"""Backpressure on the gateway: no more interactions are read while too many that were
read are still waiting for their acknowledgement.

A burst of commands arrives on the websocket faster than the bot can acknowledge them
(each acknowledgement is one HTTP request over a pool of ``limit`` connections).
discord.py parses every message already received in one go, so a burst of 1000 put 1000
interactions, their parsed payloads and their tasks in memory at the same moment, and
CPython keeps the memory that peak took for good. With the gate, the rest of a burst waits
unparsed in the socket until acknowledgements free places: no slower, since at most
``limit`` acknowledgements are under way at once in any case.

An interaction holds its place from the moment it is read until it is deferred (which
frees the place at once), answered in any other way, or until Discord's 3 s window for
acknowledging it has passed: the gate never holds the gateway for longer than that, and
heartbeats and other events keep flowing.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

import discord
from discord.gateway import DiscordWebSocket

ACK_WINDOW_S = 3.0  # Discord's limit for the first answer to an interaction
# While the gate is full: how often to look for interactions answered without a deferral
# (a button's edit, an error message); a deferral frees its place at once.
SWEEP_S = 0.05


class InteractionGate:
    def __init__(self, limit: int, *, window_s: float = ACK_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._open: dict[int, tuple[discord.Interaction[Any], float]] = {}
        self._freed = asyncio.Event()
        self.most_open = 0  # the most interactions open at once (for tests and benches)

    @property
    def open(self) -> int:
        return len(self._open)

    def opened(self, interaction: discord.Interaction[Any]) -> None:
        now = time.monotonic()
        for key, (_, deadline) in list(self._open.items()):  # oldest first
            if deadline > now:
                break
            del self._open[key]  # its window has passed
        self._open[interaction.id] = (interaction, now + self.window_s)
        self.most_open = max(self.most_open, len(self._open))

    def settled(self, interaction_id: int) -> None:
        """Acknowledged: the place is free."""
        if self._open.pop(interaction_id, None) is not None and len(self._open) < self.limit:
            self._freed.set()

    async def wait(self) -> None:
        """Until fewer than ``limit`` interactions are open."""
        while len(self._open) >= self.limit:
            self._freed.clear()
            first_deadline = next(iter(self._open.values()))[1]
            timeout = min(SWEEP_S, max(0.0, first_deadline - time.monotonic()))
            try:
                await asyncio.wait_for(self._freed.wait(), timeout)
            except TimeoutError:
                self._sweep()

    def _sweep(self) -> None:
        """Drop interactions answered some other way, and those past their window."""
        now = time.monotonic()
        for key, (interaction, deadline) in list(self._open.items()):
            if deadline <= now or interaction.response.is_done():
                del self._open[key]


def install() -> None:
    """Make each gateway read wait for its client's gate, for clients that have one
    (an ``interaction_gate`` attribute); other clients read as before. Idempotent."""
    original = DiscordWebSocket.poll_event
    if getattr(original, "gated", False):
        return

    @functools.wraps(original)
    async def poll_event(self: DiscordWebSocket) -> None:
        # The websocket dispatches through its client's bound ``dispatch`` method.
        client = getattr(getattr(self, "_dispatch", None), "__self__", None)
        gate = getattr(client, "interaction_gate", None)
        if isinstance(gate, InteractionGate):
            await gate.wait()
        await original(self)

    poll_event.gated = True  # type: ignore[attr-defined]
    DiscordWebSocket.poll_event = poll_event  # type: ignore[method-assign]
