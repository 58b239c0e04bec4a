"""The heartbeat's latency when the gateway answers at once (bot/keepalive.py): discord.py
measured an acknowledgement read before its keep-alive thread woke against the previous
heartbeat, and warned "Can't keep up, shard ID 0 websocket is 41.3s behind" while
nothing was late."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from discord.gateway import DiscordWebSocket, KeepAliveHandler

from bot import keepalive
from tests.bot.support import running_bot, settings_for
from tests.fakes.fake_discord import FakeDiscord

INTERVAL_S = 41.25  # Discord's heartbeat interval


class Socket:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_str(self, data: str) -> None:
        self.sent.append(data)


def heartbeating() -> tuple[DiscordWebSocket, KeepAliveHandler, Socket]:
    """A gateway connection whose last heartbeat went out one interval ago (the
    keep-alive thread itself is not started: the test plays its part)."""
    socket = Socket()
    ws = DiscordWebSocket(socket, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
    ws._max_heartbeat_timeout = 60.0
    handler = KeepAliveHandler(ws=ws, interval=INTERVAL_S, shard_id=0)
    ws._keep_alive = handler
    handler._last_send = time.perf_counter() - INTERVAL_S
    return ws, handler, socket


async def test_an_ack_read_before_the_keep_alive_thread_wakes_is_timed_from_its_own_heartbeat(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    if backend != "sqlite":
        pytest.skip("no database in play")
    caplog.set_level(logging.WARNING, logger="discord.gateway")
    keepalive.install()
    ws, handler, socket = heartbeating()
    # What the keep-alive thread hands to the loop; the gateway answers at once and the
    # loop reads the answer before the thread has woken to write down the send time.
    await ws.send_heartbeat(handler.get_payload())
    handler.ack()
    assert len(socket.sent) == 1
    assert handler.latency < 1.0, f"measured from the previous heartbeat: {handler.latency}"
    assert "Can't keep up" not in caplog.text


async def test_install_is_idempotent(backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("no database in play")
    keepalive.install()
    patched = DiscordWebSocket.send_heartbeat
    keepalive.install()
    assert DiscordWebSocket.send_heartbeat is patched


class LateWaking:
    """The keep-alive thread's view of a send under way, waking ``late_s`` after the send
    is done (a busy host schedules the thread late)."""

    def __init__(self, future: concurrent.futures.Future[Any], late_s: float) -> None:
        self._future, self._late_s = future, late_s

    def result(self, timeout: float | None = None) -> Any:
        value = self._future.result(timeout)
        time.sleep(self._late_s)
        return value


async def test_the_bot_times_each_ack_from_its_own_heartbeat(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real bot against the fake Discord on 127.0.0.1, which answers each heartbeat
    within a millisecond, with a keep-alive thread that wakes 50 ms after each send: no
    acknowledgement is measured from the heartbeat before."""
    if backend != "sqlite":
        pytest.skip("no database in play")
    interval_ms = 200
    latencies: list[float] = []
    original_ack = KeepAliveHandler.ack
    original_run = asyncio.run_coroutine_threadsafe

    def ack(self: Any) -> None:
        original_ack(self)
        latencies.append(self.latency)

    def run_coroutine_threadsafe(coro: Any, loop: asyncio.AbstractEventLoop) -> Any:
        future = original_run(coro, loop)
        if threading.current_thread().name.startswith("keep-alive-handler"):
            return LateWaking(future, 0.05)
        return future

    monkeypatch.setattr(KeepAliveHandler, "ack", ack)
    monkeypatch.setattr(asyncio, "run_coroutine_threadsafe", run_coroutine_threadsafe)
    async with FakeDiscord() as fd:
        fd.gateway.heartbeat_interval_ms = interval_ms
        fd.add_guild("Videos")
        async with running_bot(settings_for(tmp_path, fd), fd):
            deadline = time.monotonic() + 10
            while len(latencies) < 6:  # the first answers the heartbeat sent on HELLO
                assert time.monotonic() < deadline, f"too few heartbeats: {latencies}"
                await asyncio.sleep(0.05)
    assert max(latencies) < interval_ms / 1000 / 2, latencies
