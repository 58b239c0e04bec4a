"""A true heartbeat latency: discord.py's keep-alive thread stamps a heartbeat's send time
only after the event loop has sent it and the thread has woken up again, so an
acknowledgement that the loop reads first is measured against the previous heartbeat:
a gateway answering fast made discord.py report the whole heartbeat interval as latency
("Can't keep up, shard ID 0 websocket is 41.3s behind") while nothing was late, typically
when the loop was busy, as after the database came back and every job carried on.

``install`` stamps the send time when the heartbeat is built, before it is handed to
the loop (as discord.py's own ``beat`` does for a heartbeat the gateway asks for).
"""

from __future__ import annotations

import functools
import time
from typing import Any

from discord.gateway import KeepAliveHandler


def install() -> None:
    """Idempotent."""
    original = KeepAliveHandler.get_payload
    if getattr(original, "stamped", False):
        return

    @functools.wraps(original)
    def get_payload(self: KeepAliveHandler) -> dict[str, Any]:
        self._last_send = time.perf_counter()
        return original(self)

    get_payload.stamped = True  # type: ignore[attr-defined]
    KeepAliveHandler.get_payload = get_payload  # type: ignore[method-assign]
