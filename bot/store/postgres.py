"""The PostgreSQL backend: an asyncpg pool on ``DATABASE_URL``.

Write transactions run at READ COMMITTED; read-check-write steps take a per-key advisory
lock (``Tx.lock``) or lock their row (``Tx.for_update``) first, so every process and
connection sees the others' commits before it decides. Reads run as REPEATABLE READ,
READ ONLY: one consistent snapshot, like a SQLite read transaction.

Migrations run on one connection under a session advisory lock, so processes that start
together apply each migration once; the version is the table ``schema_migrations``.

The server may go away for a while (a restart, a failover): a transaction that cannot
reach it raises ``DatabaseUnavailable`` (the pool reconnects on the next one), and the
connection kept for LISTEN (and for the process identity's session lock) is opened again
by a watcher, which then tells ``on_reconnect`` callbacks that wake-ups resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg

from bot.store import migrate, steps
from bot.store.backend import (
    DatabaseUnavailable,
    Dialect,
    IdentityInUse,
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
IDENTITY_SPACE = 0x6964  # "id": the first key of a process identity's session lock
# The LISTEN connection is looked at this often, and reopened with this backoff.
WATCH_EVERY_S = 2.0
RECONNECT_MAX_S = 10.0
# A process killed a moment ago may still hold its identity until the server notices.
IDENTITY_WAIT_S = 5.0

# What a connection to a server that is away raises: nothing was written.
_AWAY: tuple[type[BaseException], ...] = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError, asyncpg.TooManyConnectionsError,
)


def away(exc: BaseException) -> bool:
    """Whether ``exc`` says the server could not be reached (not a fault of the SQL)."""
    if isinstance(exc, _AWAY):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc).lower()


class _NoTraceback(logging.Filter):
    """asyncpg's pool logs every failed attempt to restore its connection floor with a
    traceback while the server is away: one line is enough (the store says the rest)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.msg} ({type(record.exc_info[1]).__name__})"
            record.exc_info = None
        return True


logging.getLogger("asyncpg.pool").addFilter(_NoTraceback())


@asynccontextmanager
async def _reachable(description: str) -> AsyncIterator[None]:
    """Turn "the server is away" into DatabaseUnavailable (one line, no secrets)."""
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, Exception) and away(exc):
            raise DatabaseUnavailable(f"{description} is not answering "
                                      f"({type(exc).__name__})") from None
        if isinstance(exc, asyncpg.exceptions.InsufficientResourcesError):  # disk full
            raise DatabaseUnavailable(f"{description} has no room ({type(exc).__name__})",
                                      full=True) from None
        if isinstance(exc, asyncpg.exceptions.ReadOnlySQLTransactionError):  # a standby
            raise DatabaseUnavailable(f"{description} is read-only for now") from None
        raise


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
        self._listeners: dict[str, list[Listener]] = {}
        self._reconnected: list[Callable[[], None]] = []
        self._identity: str | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()

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

    # -- the connection kept for LISTEN and the identity lock --

    async def _own_connection(self) -> asyncpg.Connection:
        """The LISTEN connection (a pooled one would be handed to others), opened once
        and watched: a lost one is opened again with its listeners and identity."""
        if self._listen_conn is None or self._listen_conn.is_closed():
            try:
                conn = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    ValueError) as exc:
                raise StoreUnavailable(describe_connect_error(exc, self._url)) from None
            conn.add_termination_listener(lambda _conn: self._lost.set())
            self._listen_conn = conn
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="postgres-listen-watch")
        return self._listen_conn

    async def listen(self, channel: str, listener: Listener) -> None:
        conn = await self._own_connection()
        first = channel not in self._listeners
        self._listeners.setdefault(channel, []).append(listener)
        if first:
            await conn.add_listener(channel, self._dispatch)

    def _dispatch(self, _conn: Any, _pid: int, channel: str, payload: Any) -> None:
        for listener in list(self._listeners.get(channel, ())):
            listener(str(payload))

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        self._reconnected.append(callback)

    async def hold_identity(self, name: str) -> None:
        """A session advisory lock on the LISTEN connection, held for the process's life:
        the server drops it the moment a killed process's connection closes."""
        conn = await self._own_connection()
        key = _fold(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big"))
        deadline = time.monotonic() + IDENTITY_WAIT_S
        while not await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)",
                                      IDENTITY_SPACE, key):
            if time.monotonic() > deadline:
                raise IdentityInUse(name)
            await asyncio.sleep(0.2)
        self._identity = name

    async def _watch(self) -> None:
        """Reopen the LISTEN connection whenever it is lost, then say wake-ups resumed."""
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), WATCH_EVERY_S)
            conn = self._listen_conn
            if conn is not None and not conn.is_closed():
                self._lost.clear()
                continue
            log.warning("the LISTEN connection to %s was lost; reconnecting", self.description)
            await self._reopen()

    async def _reopen(self) -> None:
        delay = 0.5
        while not self._closed:
            self._lost.clear()
            try:
                conn = await self._own_connection()
                for channel in self._listeners:
                    await conn.add_listener(channel, self._dispatch)
                if self._identity is not None:
                    await self.hold_identity(self._identity)
            except IdentityInUse:
                log.error("another process took this process's identity (%s) while the "
                          "database was away; two processes now share it", self._identity)
                break
            except Exception as exc:
                if not (isinstance(exc, StoreUnavailable) or away(exc)):
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            break
        log.info("reconnected to %s; wake-ups resume", self.description)
        for callback in list(self._reconnected):
            try:
                callback()
            except Exception:
                log.exception("a reconnect callback failed")

    async def notify(self, channel: str, payload: str) -> None:
        async with _reachable(self.description), self.pool.acquire() as conn:
            await conn.execute("SELECT pg_notify($1, $2)", channel, payload)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._watcher is not None:
                self._watcher.cancel()
                await asyncio.gather(self._watcher, return_exceptions=True)
            if self._listen_conn is not None:
                with contextlib.suppress(Exception):
                    await self._listen_conn.close()
            await self.pool.close()

    @asynccontextmanager
    async def transaction(self, write: bool = True) -> AsyncIterator[PostgresTx]:
        async with _reachable(self.description), self.pool.acquire() as conn:
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
        async with _reachable(self.description), self.pool.acquire() as conn, \
                conn.transaction(isolation="read_committed"):
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
