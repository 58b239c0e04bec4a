"""The database: the one package that owns SQL. One Store API over two backends,
SQLite (aiosqlite, the default) and PostgreSQL (asyncpg), each with numbered migrations."""

from bot.quota import MemberUsage, QuotaExceeded, QuotaSettings, Usage, UsageReport
from bot.store.backend import DatabaseUnavailable, IdentityInUse, StoreUnavailable
from bot.store.base import GuildQuota
from bot.store.charts import ChartsMixin
from bot.store.jobs import JobsMixin
from bot.store.leases import LeasesMixin
from bot.store.migrate import migrations, split_sql
from bot.store.models import TERMINAL, UNFINISHED, Charge, Job, JobState, LedgerRow, NewJob
from bot.store.moderation import DELETED_PROMPT, ModerationMixin
from bot.store.quotas import QuotaMixin

__all__ = [
    "DELETED_PROMPT",
    "TERMINAL",
    "UNFINISHED",
    "Charge",
    "DatabaseUnavailable",
    "GuildQuota",
    "IdentityInUse",
    "Job",
    "JobState",
    "LedgerRow",
    "MemberUsage",
    "NewJob",
    "QuotaExceeded",
    "QuotaSettings",
    "Store",
    "StoreUnavailable",
    "Usage",
    "UsageReport",
    "migrations",
    "split_sql",
]


class Store(JobsMixin, LeasesMixin, QuotaMixin, ModerationMixin, ChartsMixin):
    """All persistence: jobs, leases and slots, quotas, the quota ledger, moderation, chart
    figures and a key/value table."""
