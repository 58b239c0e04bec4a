"""Fixtures shared by the emulator tests: an image/callback server and a session."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from bot.providers.base import VideoProvider
from bot.providers.http import RetryPolicy
from tests.providers.helpers import ScriptServer

# Small budgets so the emulator tests run in seconds; Retry-After is still honoured.
FAST = RetryPolicy.fast(attempts=4, timeout=2.0, max_total=10.0)


async def download_ok(provider: VideoProvider, session: aiohttp.ClientSession, url: str,
                      tmp_path: Path) -> bytes:
    """Fetch a result through the provider's own download path; return the bytes."""
    dest = tmp_path / "out.mp4"
    size = await provider.download(session, url, dest, 50 * 1024 * 1024)
    data = dest.read_bytes()
    assert size == len(data) > 0
    return data


def callback_bodies(receiver: ScriptServer) -> list[bytes]:
    return [s.raw for s in receiver.seen if s.method == "POST"]
