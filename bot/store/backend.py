"""What the store needs of a database: transactions that run SQL and hand back rows.

Store methods write their SQL once, with ``?`` placeholders; a backend translates them
for its driver. What differs between SQLite and PostgreSQL lives in the backends:
connections, transactions and locks, migrations, and a few spellings (``for_update``).

Locks: on SQLite every write transaction holds the file's one write lock
(``BEGIN IMMEDIATE``), so ``Tx.lock`` has nothing to add. On PostgreSQL write
transactions run at READ COMMITTED and ``Tx.lock`` takes a transaction-scoped advisory
lock, so read-check-write steps (a quota reservation) are serialised per key across
every process and connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from enum import IntEnum
from typing import Any, Literal, Protocol

Row = dict[str, Any]
Dialect = Literal["sqlite", "postgres"]


class StoreUnavailable(Exception):
    """The database cannot be opened; the message is one line naming the setting to fix
    (and never contains a password)."""


class DatabaseUnavailable(Exception):
    """The database did not answer for a moment (a restart, a failover, a network blip, a
    write lock held too long) or has no room left (``full``): the transaction was rolled
    back and nothing was written. Work that needs the database waits and tries again;
    a command says so. ``reason`` is one log-safe line (never a password)."""

    def __init__(self, reason: str, *, full: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.full = full


class IdentityInUse(Exception):
    """Another live process already runs under this process's identity (INSTANCE_ID)."""


class LockSpace(IntEnum):
    """Namespaces of the per-key transaction locks (the first of two advisory keys)."""

    QUOTA = 1  # one guild's reservations
    GUILD_SETTINGS = 2  # one guild's moderation settings and blocklist
    SLOTS = 3  # one provider model's concurrent-task slots


class Tx(Protocol):
    """One open transaction."""

    dialect: Dialect
    for_update: str  # " FOR UPDATE" where row locks exist, else ""

    async def rows(self, sql: str, args: Sequence[Any] = ()) -> list[Row]: ...

    async def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None: ...

    async def scalar(self, sql: str, args: Sequence[Any] = ()) -> Any: ...

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run a statement; returns the number of rows it changed."""
        ...

    async def lock(self, space: LockSpace, key: int) -> None:
        """Hold a lock on (space, key) until this transaction ends."""
        ...


Listener = Callable[[str], None]


class Backend(Protocol):
    dialect: Dialect
    description: str  # where the data lives, without secrets (for logs and health)

    async def listen(self, channel: str, listener: Listener) -> None:
        """Call ``listener(payload)`` for every ``notify`` on ``channel``, from any
        process sharing the database (PostgreSQL LISTEN) or this one (SQLite)."""
        ...

    async def notify(self, channel: str, payload: str) -> None: ...

    def on_reconnect(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when wake-ups resume after the database was away (the ones
        sent meanwhile are lost: whoever waits for one should look again)."""
        ...

    async def hold_identity(self, name: str) -> None:
        """Hold ``name`` for this process's life; raise IdentityInUse while another live
        process holds it."""
        ...

    def transaction(self, write: bool = True) -> AbstractAsyncContextManager[Tx]: ...

    async def migrate(self) -> None: ...

    async def close(self) -> None: ...


def dollar_params(sql: str) -> str:
    """``?`` placeholders -> ``$1, $2, ...`` (PostgreSQL), leaving quoted text alone."""
    out: list[str] = []
    n = 0
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(ch)
    return "".join(out)


def plain_args(args: Sequence[Any]) -> list[Any]:
    """Enum members as their plain values (drivers bind str/int, not subclasses)."""
    out: list[Any] = []
    for arg in args:
        if isinstance(arg, str) and type(arg) is not str:
            arg = str.__str__(arg)
        elif isinstance(arg, int) and type(arg) not in (int, bool):
            arg = int(arg)
        out.append(arg)
    return out

