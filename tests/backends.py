"""Every job, bot, fault and posting test runs on both backends: SQLite (the default)
and PostgreSQL (the embedded server from ``tests.pgserver``). Setting
``BOT_TEST_DATABASE`` (sqlite or postgres) runs them on that one only."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

_CHOSEN = os.environ.get("BOT_TEST_DATABASE", "").strip().lower()
BACKENDS = [_CHOSEN] if _CHOSEN else ["sqlite", "postgres"]


@pytest.fixture(autouse=True, params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The test's database backend; the helpers that open a store (and the bot processes
    the tests start) read it from ``BOT_TEST_DATABASE``."""
    monkeypatch.setenv("BOT_TEST_DATABASE", request.param)
    yield request.param
