"""Copying a whole database into an empty one (``python -m bot copy-db``), checked.

Everything is written in one transaction on the target; before it commits, the row
count of every table and the ledger's sums are compared with the source, and any
difference rolls the whole copy back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.store.backend import Tx
from bot.store.base import StoreBase

# Parents before children (ledger rows point at jobs).
TABLES = ("guild_quota", "jobs", "ledger", "meta", "guild_settings", "blocklist",
          "blocked_members")
# Identity columns whose sequences must continue after the copied values.
IDENTITIES = (("jobs", "rowid"), ("ledger", "id"), ("blocklist", "id"))
_LEDGER_SUMS = (
    "SELECT kind, COUNT(*) AS n, COALESCE(SUM(seconds), 0) AS seconds,"
    " ROUND(COALESCE(SUM(cost), 0) * 10000) AS cost FROM ledger GROUP BY kind ORDER BY kind"
)


class TargetNotEmpty(Exception):
    """The target already holds rows; ``table`` is the first such table."""

    def __init__(self, table: str, rows: int) -> None:
        self.table, self.rows = table, rows
        super().__init__(f"{table} has {rows} row(s)")


class CopyMismatch(Exception):
    """The copy does not match the source (and was rolled back)."""


@dataclass
class CopyReport:
    rows: dict[str, int] = field(default_factory=dict)
    ledger: list[dict[str, Any]] = field(default_factory=list)


async def counts(tx: Tx) -> dict[str, int]:
    return {t: int(await tx.scalar(f"SELECT COUNT(*) FROM {t}")) for t in TABLES}


def _sums(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"kind": r["kind"], "n": int(r["n"]), "seconds": int(r["seconds"]),
             "cost": int(r["cost"])} for r in rows]


async def copy_database(source: StoreBase, target: StoreBase) -> CopyReport:
    """Copy every row of ``source`` (a Store, usually SQLite) into ``target`` (a Store,
    usually PostgreSQL, migrated and empty). Raises TargetNotEmpty or CopyMismatch,
    having written nothing."""
    async with source._tx(write=False) as src:
        report = CopyReport(rows=await counts(src), ledger=_sums(await src.rows(_LEDGER_SUMS)))
        data: dict[str, list[dict[str, Any]]] = {}
        for table in TABLES:
            select = "SELECT rowid AS rowid, * FROM jobs" if table == "jobs" else (
                f"SELECT * FROM {table}")
            order = " ORDER BY rowid" if table == "jobs" else ""
            data[table] = await src.rows(select + order)
    async with target._tx() as dst:
        if dst.dialect == "postgres":  # no one may write between this check and the commit
            await dst.execute(f"LOCK TABLE {', '.join(TABLES)} IN EXCLUSIVE MODE")
        for table, rows in (await counts(dst)).items():
            if rows:
                raise TargetNotEmpty(table, rows)
        for table in TABLES:
            for row in data[table]:
                columns = list(row)
                await dst.execute(
                    f"INSERT INTO {table} ({', '.join(columns)})"
                    f" VALUES ({', '.join('?' * len(columns))})",
                    [row[c] for c in columns],
                )
        if dst.dialect == "postgres":
            for table, column in IDENTITIES:
                await dst.scalar(
                    f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                    f" COALESCE(MAX({column}), 0) + 1, false) FROM {table}"
                )
        copied = await counts(dst)
        if copied != report.rows:
            raise CopyMismatch(f"row counts differ: source {report.rows}, copy {copied}")
        sums = _sums(await dst.rows(_LEDGER_SUMS))
        if sums != report.ledger:
            raise CopyMismatch(f"ledger sums differ: source {report.ledger}, copy {sums}")
    return report
