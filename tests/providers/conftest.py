from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.providers.helpers import ScriptServer


@pytest.fixture
async def server() -> AsyncIterator[ScriptServer]:
    srv = await ScriptServer().start()
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as sess:
        yield sess
