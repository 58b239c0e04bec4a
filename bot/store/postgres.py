"""The PostgreSQL backend: an asyncpg pool on ``DATABASE_URL``.

Write transactions run at READ COMMITTED; read-check-write steps take a per-key advisory
lock (``Tx.lock``) or lock their row (``Tx.for_update``) first, so every process and
connection sees the others' commits before it decides. Reads run as REPEATABLE READ,
READ ONLY: one consistent snapshot, like a SQLite read transaction.

Migrations run on one connection under a session advisory lock, so processes that start
together apply each migration once; the version is the table ``schema_migrations``.
A place for LISTEN/NOTIFY later: ``self.pool`` hands out connections that can listen.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg

from bot.store import migrate, steps
from bot.store.backend import (
    Dialect,
    Listener,
    LockSpace,
    Row,
    StoreUnavailable,
    dollar_params,
    plain_args,
)
from bot.store.batch import Outcome
from bot.store.steps import Steps

log = logging.getLogger(__name__)

POOL_SIZE = 10
CONNECT_TIMEOUT_S = 10.0
MIGRATION_LOCK = 0x626F_745F_6D69_67  # "bot_mig": the session lock migrations run under


@functools.lru_cache(maxsize=1024)
def _sql(sql: str) -> str:
    return dollar_params(sql)


def _fold(key: int) -> int:
    """A 64-bit key folded into advisory lock's signed 32-bit second key."""
    folded = ((key >> 32) ^ key) & 0xFFFF_FFFF
    return folded - (1 << 32) if folded >= 1 << 31 else folded


class PostgresTx:
    dialect: Dialect = "postgres"
    for_update = " FOR UPDATE"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.held: set[tuple[LockSpace, int]] | None = None  # batches: locks already held

    async def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        return [dict(r) for r in await self.conn.fetch(_sql(sql), *plain_args(args))]

    async def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        row = await self.conn.fetchrow(_sql(sql), *plain_args(args))
        return None if row is None else dict(row)

    async def scalar(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return await self.conn.fetchval(_sql(sql), *plain_args(args))

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        status = await self.conn.execute(_sql(sql), *plain_args(args))
        tail = status.rsplit(" ", 1)[-1]  # "UPDATE 1", "INSERT 0 1", "DELETE 0"
        return int(tail) if tail.isdigit() else 0

    async def lock(self, space: LockSpace, key: int) -> None:
        if self.held is not None and (space, key) in self.held:
            return
        await self.conn.execute("SELECT pg_advisory_xact_lock($1, $2)", int(space), _fold(key))


async def _run_in_batch(tx: PostgresTx, plan: Steps[Row]) -> Outcome:
    """One plan of a batch. Its reads and its lock come first, outside any savepoint: a
    refusal has written nothing, so it costs no savepoint. The savepoint opens at the
    first write, so a failing write rolls back only this plan's. A failing read leaves
    the transaction unusable: it fails the whole batch (nothing is written)."""
    assert tx.held is not None
    savepoint: Any = None
    try:
        query = next(plan)
        while True:
            if savepoint is None and _writes(query):
                savepoint = tx.conn.transaction()
                await savepoint.start()
            result = await steps.ask(tx, query)
            if query.kind == "lock" and savepoint is None:
                tx.held.add((query.space, query.key))  # at the top level: to the end
            query = plan.send(result)
    except StopIteration as done:
        if savepoint is not None:
            await savepoint.commit()
        row: Row = done.value
        return row
    except Exception as exc:  # a refusal, or a failing statement
        if savepoint is not None:
            await savepoint.rollback()
        elif isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
            raise
        return exc


def _writes(query: steps.Query) -> bool:
    if query.kind == "lock":
        return False
    return query.kind == "execute" or not query.sql.lstrip().upper().startswith("SELECT")


def where(url: str) -> str:
    """host:port/database of a URL, for messages (never the user's password)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "the server in DATABASE_URL"
    if not host:  # a Unix socket: postgresql://user@/db?host=/run/postgresql
        query = dict(p.partition("=")[::2] for p in parts.query.split("&") if p)
        host = unquote(query.get("host", "the local socket"))
    database = unquote(parts.path.lstrip("/")) or "(default database)"
    return f"{host}{f':{port}' if port else ''}/{database}"


def describe_connect_error(exc: BaseException, url: str) -> str:
    """One line for an operator; the exception's own text is used only where it carries
    no part of the URL."""
    place = where(url)
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return f"DATABASE_URL: the PostgreSQL server at {place} refused the user's password"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return f"DATABASE_URL: the PostgreSQL server at {place} refused the user"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"DATABASE_URL: the database in {place} does not exist"
    if isinstance(exc, TimeoutError):
        return f"DATABASE_URL: no answer from the PostgreSQL server at {place}"
    if isinstance(exc, OSError):
        reason = exc.strerror or "connection failed"
        return f"DATABASE_URL: cannot reach the PostgreSQL server at {place} ({reason})"
    if isinstance(exc, asyncpg.PostgresError):
        return f"DATABASE_URL: the PostgreSQL server at {place} refused the connection"
    return "DATABASE_URL: could not connect (check the URL's form and the server)"


class PostgresBackend:
    dialect: Dialect = "postgres"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool = pool
        self.description = f"PostgreSQL {where(url)}"
        self._closed = False
        self._url = url
        self._listen_conn: asyncpg.Connection | None = None

    @classmethod
    async def connect(cls, url: str, *, pool_size: int = POOL_SIZE) -> PostgresBackend:
        try:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=pool_size, timeout=CONNECT_TIMEOUT_S,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                ValueError) as exc:
            raise StoreUnavailable(describe_connect_error(exc, url)) from None
        return cls(pool, url)

    async def listen(self, channel: str, listener: Listener) -> None:
        """LISTEN on a connection of its own (a pooled one would be handed to others)."""
        if self._listen_conn is None:
            try:
                self._listen_conn = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    ValueError) as exc:
                raise StoreUnavailable(describe_connect_error(exc, self._url)) from None
        await self._listen_conn.add_listener(
            channel, lambda _conn, _pid, _channel, payload: listener(str(payload))
        )

    async def notify(self, channel: str, payload: str) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_notify($1, $2)", channel, payload)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._listen_conn is not None:
                await self._listen_conn.close()
            await self.pool.close()

    @asynccontextmanager
    async def transaction(self, write: bool = True) -> AsyncIterator[PostgresTx]:
        async with self.pool.acquire() as conn:
            if write:
                tx = conn.transaction(isolation="read_committed")
            else:
                tx = conn.transaction(isolation="repeatable_read", readonly=True)
            async with tx:
                yield PostgresTx(conn)

    async def run_batch(self, plans: list[Steps[Row]]) -> list[Outcome]:
        """Every plan in one transaction (see bot/store/batch.py), the writes of each in
        a savepoint of its own. The batch comes sorted by guild: the guild locks are
        taken in that order, once each, and held to the end."""
        async with self.pool.acquire() as conn, conn.transaction(isolation="read_committed"):
            tx = PostgresTx(conn)
            tx.held = set()
            return [await _run_in_batch(tx, plan) for plan in plans]

    async def withdraw(self, job_ids: list[str]) -> None:
        async with self.transaction() as tx:
            for job_id in job_ids:
                await tx.execute("DELETE FROM ledger WHERE job_id = ?", (job_id,))
                await tx.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    async def migrate(self) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY"
                    " KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
                )
                for number, name, sql in migrate.migrations("postgres"):
                    async with conn.transaction():
                        done = await conn.fetchval(
                            "SELECT 1 FROM schema_migrations WHERE version = $1", number
                        )
                        if done:
                            continue
                        await conn.execute(sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, applied_at)"
                            " VALUES ($1, $2, $3)", number, name, time.time(),
                        )
                    log.info("applied database migration %s", name)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)


async def probe(url: str) -> tuple[bool, str]:
    """Log in once (no migrations, nothing written): (ok, one line for an operator)."""
    try:
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
            ValueError) as exc:
        return False, describe_connect_error(exc, url)
    try:
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return True, f"PostgreSQL {version} at {where(url)}"
