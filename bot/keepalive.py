"""The gateway heartbeat's latency, measured from when the event loop sends it.

discord.py (2.7.1 and earlier) runs each shard's heartbeat from a thread: the thread
hands the heartbeat to the event loop, waits until the loop has sent it, and only then
writes down the send time (``KeepAliveHandler._last_send``). The acknowledgement is read
by the loop, which may do so before the thread has woken up again: the latency is then
measured from the previous heartbeat, a whole interval earlier, and discord.py warns
"Can't keep up, shard ID 0 websocket is 41.3s behind" (41.25 s is Discord's interval)
although the answer took a millisecond. Nothing was late, and nothing was blocked (a
blocked loop is reported as "heartbeat blocked for more than 10 seconds"). It happens
when the gateway answers faster than the thread wakes: a gateway proxy or a fake on the
same host, or a busy host whose threads are scheduled late.

``install`` writes the send time down on the event loop, just before the heartbeat is
written to the socket, so the acknowledgement is always measured against its own
heartbeat (discord.py's own fix, not yet released; a discord.py that has it is left as
it is).
"""

from __future__ import annotations

import functools
import time
from typing import Any

from discord.gateway import DiscordWebSocket, KeepAliveHandler


def fixed_upstream() -> bool:
    """Whether this discord.py already stamps the send on the event loop."""
    return hasattr(KeepAliveHandler, "_send_heartbeat")


def install() -> None:
    """Stamp each heartbeat's send time on the event loop. Idempotent."""
    original = DiscordWebSocket.send_heartbeat
    if fixed_upstream() or getattr(original, "stamped", False):
        return

    @functools.wraps(original)
    async def send_heartbeat(self: DiscordWebSocket, data: Any) -> None:
        keep_alive = self._keep_alive
        if keep_alive is not None:
            keep_alive._last_send = time.perf_counter()
        await original(self, data)

    send_heartbeat.stamped = True  # type: ignore[attr-defined]
    DiscordWebSocket.send_heartbeat = send_heartbeat  # type: ignore[method-assign]
