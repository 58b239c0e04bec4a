"""Numbered migrations: ``bot/migrations/<dialect>/NNNN_name.sql``.

Both dialects carry the same numbers and names (a test holds them to it): migration N
changes the schema the same way on SQLite and on PostgreSQL, each in its own spelling.
"""

from __future__ import annotations

import re
import sqlite3
from importlib import resources

from bot.store.backend import Dialect

_MIGRATION_NAME = re.compile(r"(\d+)_[\w.-]+\.sql")


def split_sql(script: str) -> list[str]:
    """Split a migration script into statements (semicolons in strings/triggers kept)."""
    statements: list[str] = []
    buf = ""
    parts = script.split(";")
    for part in parts[:-1]:
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \t\r\n;"):
                statements.append(buf.strip())
            buf = ""
    tail = re.sub(r"--[^\n]*", "", buf + parts[-1]).strip()
    if tail:
        raise ValueError(f"incomplete SQL statement at the end of a migration: {tail[:60]!r}")
    return statements


def migrations(dialect: Dialect = "sqlite") -> list[tuple[int, str, str]]:
    """(number, file name, SQL) of every migration for ``dialect``, in order."""
    found: dict[int, tuple[int, str, str]] = {}
    for entry in (resources.files("bot") / "migrations" / dialect).iterdir():
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if not match:
            continue
        number = int(match[1])
        if number in found:
            raise RuntimeError(
                f"two migrations numbered {number}: {found[number][1]}, {entry.name}"
            )
        found[number] = (number, entry.name, entry.read_text(encoding="utf-8"))
    return [found[n] for n in sorted(found)]
