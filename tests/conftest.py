"""Fixtures for the whole suite: the PostgreSQL server and the per-backend store target.

Set ``BOT_TEST_DATABASE=postgres`` to run the job and bot tests on PostgreSQL too (the
helpers that open a store ask ``tests.pgserver`` for the database).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.store import Store
from tests import pgserver


@pytest.fixture(scope="session", autouse=True)
def _stop_postgres_at_the_end() -> Iterator[None]:
    yield
    pgserver.stop_server()


@pytest.fixture(scope="session")
def pg_server() -> pgserver.PgServer:
    """The session's PostgreSQL server (started on first use)."""
    return pgserver.server()


@pytest.fixture(params=["sqlite", "postgres"])
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """What ``Store.open`` takes: a fresh SQLite file, or a fresh PostgreSQL database."""
    if request.param == "postgres":
        server: pgserver.PgServer = request.getfixturevalue("pg_server")
        return server.fresh_url()
    return tmp_path / "data" / "bot.sqlite3"


@pytest.fixture
async def store(db_target: str | Path) -> AsyncIterator[Store]:
    """A migrated, empty store on each backend."""
    opened = await Store.open(db_target)
    yield opened
    await opened.close()


def pytest_report_header() -> str:
    return ("job and bot tests on: "
            + ("PostgreSQL (BOT_TEST_DATABASE=postgres)" if pgserver.on_postgres() else "SQLite"))
