"""``python -m bot copy-db --to postgresql://...``: move the configured SQLite database
(``DATABASE_PATH``) into an empty PostgreSQL database, checked before it says done."""

from __future__ import annotations

import asyncio
import sys

from bot.config import Settings, postgres_url_problem
from bot.store import Store, StoreUnavailable
from bot.store.copy import CopyMismatch, TargetNotEmpty, copy_database
from bot.store.postgres import where


def _error(text: str) -> None:
    print(f"error: {text}", file=sys.stderr, flush=True)


async def _copy(settings: Settings, url: str) -> int:
    path = settings.database_path
    if not path.is_file():
        _error(f"DATABASE_PATH: there is no SQLite database at {path} to copy")
        return 2
    try:
        target = await Store.open(url)  # runs the PostgreSQL migrations first
    except StoreUnavailable as exc:
        _error(str(exc).replace("DATABASE_URL", "--to", 1))
        return 2
    try:
        source = await Store.open(path)
        try:
            report = await copy_database(source, target)
        finally:
            await source.close()
    except TargetNotEmpty as exc:
        _error(f"--to: the database at {where(url)} is not empty ({exc}); copy-db only"
               " fills an empty database")
        return 2
    except CopyMismatch as exc:
        _error(f"the copy did not match and was rolled back: {exc}")
        return 1
    finally:
        await target.close()
    for table, rows in report.rows.items():
        print(f"copied {rows:>7} row(s) of {table}")
    for row in report.ledger:
        print(f"ledger {row['kind']:<8} {row['n']:>7} row(s), {row['seconds']} s: match")
    print(f"done: {path} copied to {where(url)}; set DATABASE_URL to use it")
    return 0


def copy_db(settings: Settings, url: str) -> int:
    problem = postgres_url_problem(url)
    if problem is not None:
        _error(f"--to: {problem}")
        return 2
    return asyncio.run(_copy(settings, url))
