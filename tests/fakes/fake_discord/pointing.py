"""Point the real discord.py at the fake (in-process).

discord.py 2.7 builds every REST URL, webhook and interaction routes included, from
``discord.http.Route.BASE``. A plain ``Client``/``commands.Bot`` does not ask GET /gateway/bot
for the websocket URL: it connects to ``DiscordWebSocket.DEFAULT_GATEWAY``
(``wss://gateway.discord.gg/``) and later to READY's ``resume_gateway_url`` (the fake sends
its own). Only ``AutoShardedClient`` reads /gateway/bot. So both class attributes are set
here and restored on exit. A bot run as a subprocess must do the same at start-up from its
DISCORD_API_BASE_URL / DISCORD_GATEWAY_URL settings.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

ClientT = TypeVar("ClientT")


@contextlib.contextmanager
def point_discord_py(fd: Any = None, *, api_base: str | None = None,
                     gateway_url: str | None = None) -> Iterator[None]:
    import yarl
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    api_base = api_base or fd.api_base
    gateway_url = gateway_url or fd.gateway_url
    saved = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    Route.BASE = api_base
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    try:
        yield
    finally:
        Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


@contextlib.asynccontextmanager
async def running_client(fd: Any, client: ClientT, *, ready_within: float = 15.0
                         ) -> AsyncIterator[ClientT]:
    """Start a discord.py ``client`` against the fake; yield once it is ready; always
    close it."""
    with point_discord_py(fd):
        start = asyncio.create_task(client.start(fd.token))  # type: ignore[attr-defined]
        ready = asyncio.create_task(client.wait_until_ready())  # type: ignore[attr-defined]
        try:
            done, _ = await asyncio.wait({start, ready}, timeout=ready_within,
                                         return_when=asyncio.FIRST_COMPLETED)
            if start in done:
                start.result()
                raise RuntimeError("the client stopped before it was ready")
            if ready not in done:
                raise TimeoutError(f"the client was not ready within {ready_within} s")
            yield client
        finally:
            ready.cancel()
            await client.close()  # type: ignore[attr-defined]
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await start
