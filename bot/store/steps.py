"""SQL written once for both ways of running it: a step generator yields ``Query``
objects and receives their results, so the same reservation runs on an async
transaction (``run``) or, batched, on a plain connection in the database's own thread.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from bot.store.backend import LockSpace, Tx

T = TypeVar("T")


@dataclass(frozen=True)
class Query:
    kind: Literal["rows", "one", "scalar", "execute", "lock"]
    sql: str = ""
    args: Sequence[Any] = ()
    space: LockSpace = LockSpace.QUOTA
    key: int = 0


Steps = Generator[Query, Any, T]


def rows(sql: str, args: Sequence[Any] = ()) -> Query:
    return Query("rows", sql, tuple(args))


def one(sql: str, args: Sequence[Any] = ()) -> Query:
    return Query("one", sql, tuple(args))


def scalar(sql: str, args: Sequence[Any] = ()) -> Query:
    return Query("scalar", sql, tuple(args))


def execute(sql: str, args: Sequence[Any] = ()) -> Query:
    return Query("execute", sql, tuple(args))


def lock(space: LockSpace, key: int) -> Query:
    return Query("lock", space=space, key=key)


async def ask(tx: Tx, query: Query) -> Any:
    if query.kind == "rows":
        return await tx.rows(query.sql, query.args)
    if query.kind == "one":
        return await tx.one(query.sql, query.args)
    if query.kind == "scalar":
        return await tx.scalar(query.sql, query.args)
    if query.kind == "execute":
        return await tx.execute(query.sql, query.args)
    await tx.lock(query.space, query.key)
    return None


async def run(tx: Tx, steps: Steps[T]) -> T:
    """Run ``steps`` on an open transaction; returns what the generator returns."""
    try:
        query = next(steps)
        while True:
            query = steps.send(await ask(tx, query))
    except StopIteration as done:
        result: T = done.value
        return result
