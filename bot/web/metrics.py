"""Prometheus metrics: the registry, its own ``/metrics`` listener and small record hooks.

``Metrics`` is what the bot holds when ``METRICS_PORT`` is unset: every hook does nothing
and ``prometheus_client`` is never imported. ``PrometheusMetrics`` (``METRICS_PORT`` set)
keeps a registry of its own (not the library's global one), serves it on a listener of
its own (never the public webhook port) and is fed mostly by the job-update hook, which
sees every phase of every job. Jobs in flight are counted from the database at scrape
time, so the figure is right across processes.

Labels carry only bounded, public values: provider and model names, job outcomes and
states, error kinds. Never a server or member id, a prompt, a token or a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from aiohttp import web

from bot.catalog.pricing import dollars
from bot.config import ProviderName
from bot.jobs.types import JobUpdate, Phase
from bot.providers.base import (
    CancelOutcome,
    GenerationRequest,
    TaskStatus,
    VideoProvider,
    WebhookNews,
)
from bot.providers.download import DownloadError, DownloadTooLarge
from bot.providers.errors import ProviderError
from bot.store.models import UNFINISHED, Charge

if TYPE_CHECKING:
    import aiohttp

    from bot.catalog import ModelSpec
    from bot.store import Store

log = logging.getLogger(__name__)

PREFIX = "videobot"
PROVIDERS = frozenset(get_args(ProviderName))
ACK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0)
RENDER_BUCKETS = (10, 30, 60, 90, 120, 180, 240, 300, 420, 600, 900, 1800)
DELIVERY_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
OUTCOMES = {Phase.DONE: "delivered", Phase.FAILED: "failed", Phase.CANCELLED: "cancelled"}


def provider_label(name: str) -> str:
    """A provider name as a label: a callback path is anyone's text, so only known names."""
    return name if name in PROVIDERS else "unknown"


class Metrics:
    """The recorder with metrics off: every hook is a no-op."""

    enabled = False
    port: int | None = None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def job_update(self, update: JobUpdate) -> None:
        """Every phase of every job (the app's job-update hook)."""

    def acknowledged(self, created_at: datetime, kind: str) -> None:
        """An interaction was deferred; ``created_at`` is its snowflake time."""

    async def callback(self, provider: str, token: str, known: bool) -> None:
        """A provider callback was answered (``known``: its token named a job)."""

    def provider_error(self, provider: str, op: str, kind: str) -> None:
        """A provider call raised a typed error of ``kind`` (its code)."""

    def observe(self, provider: VideoProvider) -> VideoProvider:
        """The provider, wrapped so its errors are counted (unchanged with metrics off)."""
        return provider


class PrometheusMetrics(Metrics):
    """Metrics on: a private registry served at ``http://host:port/metrics``."""

    enabled = True

    def __init__(self, store: Store, host: str, port: int) -> None:
        import prometheus_client as prom  # only with METRICS_PORT set

        self._prom = prom
        self._store = store
        self.host, self.port = host, port
        self.registry = prom.CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs = prom.Counter(
            f"{PREFIX}_jobs", "Jobs finished, by outcome, provider and model",
            ["outcome", "provider", "model"], registry=r)
        self.in_flight = prom.Gauge(
            f"{PREFIX}_jobs_in_flight", "Unfinished jobs by state (from the database)",
            ["state"], registry=r)
        self.ack = prom.Histogram(
            f"{PREFIX}_ack_latency_seconds",
            "Interaction created to acknowledged (deferred)", ["kind"],
            buckets=ACK_BUCKETS, registry=r)
        self.render = prom.Histogram(
            f"{PREFIX}_render_seconds", "Provider render time: submitted to result",
            ["provider", "model"], buckets=RENDER_BUCKETS, registry=r)
        self.delivery = prom.Histogram(
            f"{PREFIX}_delivery_seconds", "Result to video posted (download, probe, post)",
            ["provider"], buckets=DELIVERY_BUCKETS, registry=r)
        self.callbacks = prom.Counter(
            f"{PREFIX}_callbacks", "Provider callbacks by outcome",
            ["provider", "outcome"], registry=r)
        self.quota = prom.Counter(
            f"{PREFIX}_quota_seconds", "Quota seconds charged (video delivered) and refunded",
            ["outcome"], registry=r)
        self.spend = prom.Counter(
            f"{PREFIX}_spend_dollars", "US dollars at list price charged (video delivered) "
            "and refunded, by provider", ["outcome", "provider"], registry=r)
        self.tasks = prom.Gauge(
            f"{PREFIX}_asyncio_tasks", "asyncio tasks alive in this process", registry=r)
        self.provider_errors = prom.Counter(
            f"{PREFIX}_provider_errors", "Provider calls that raised, by provider, call and kind",
            ["provider", "op", "kind"], registry=r)
        self._results: dict[str, float] = {}  # job id -> when its result arrived
        self._runner: web.AppRunner | None = None

    # -- the listener --

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._serve)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        if self._runner.addresses:
            self.port = int(self._runner.addresses[0][1])
        log.info("metrics listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _serve(self, request: web.Request) -> web.Response:
        await self.refresh()
        body = self._prom.generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": self._prom.CONTENT_TYPE_LATEST})

    async def refresh(self) -> None:
        """Count the unfinished jobs by state (a failed count keeps the last figures) and
        the process's asyncio tasks."""
        self.tasks.set(len(asyncio.all_tasks()))
        try:
            counts = await self._store.job_counts_by_state()
        except Exception:
            log.warning("counting jobs in flight failed", exc_info=True)
            return
        for state in UNFINISHED:
            self.in_flight.labels(state=state.value).set(counts.get(state.value, 0))

    def exposition(self) -> str:
        return self._prom.generate_latest(self.registry).decode()

    # -- hooks --

    def job_update(self, update: JobUpdate) -> None:
        try:
            self._job_update(update)
        except Exception:
            log.exception("recording metrics for job %s failed", update.job.id)

    def _job_update(self, update: JobUpdate) -> None:
        job, provider = update.job, provider_label(update.job.provider)
        if update.phase is Phase.DOWNLOADING and job.id not in self._results:
            # The job was just marked succeeded: updated_at is when the result arrived.
            self._results[job.id] = job.updated_at
            if job.submitted_at is not None:
                self.render.labels(provider=provider, model=job.model).observe(
                    max(0.0, job.updated_at - job.submitted_at))
            return
        outcome = OUTCOMES.get(update.phase)
        if outcome is None:
            return
        self.jobs.labels(outcome=outcome, provider=provider, model=job.model).inc()
        result_at = self._results.pop(job.id, None)
        if update.phase is Phase.DONE:
            if result_at is not None:
                finished = job.finished_at or time.time()
                self.delivery.labels(provider=provider).observe(max(0.0, finished - result_at))
            if job.charge is Charge.COMMITTED:
                self.quota.labels(outcome="charged").inc(job.seconds)
                self._spend("charged", provider, job.price_micros)
        elif job.charge is Charge.REFUNDED:
            self.quota.labels(outcome="refunded").inc(job.seconds)
            self._spend("refunded", provider, job.price_micros)
        elif job.charge is Charge.COMMITTED:  # cancelled at the provider, made anyway
            self._spend("charged", provider, job.price_micros)

    def _spend(self, outcome: str, provider: str, price: int | None) -> None:
        if price:
            self.spend.labels(outcome=outcome, provider=provider).inc(dollars(price))

    def acknowledged(self, created_at: datetime, kind: str) -> None:
        latency = max(0.0, time.time() - created_at.timestamp())
        self.ack.labels(kind=kind).observe(latency)

    async def callback(self, provider: str, token: str, known: bool) -> None:
        if known:
            outcome = "accepted"
        else:
            try:
                owner = await self._store.job_by_token(token)
            except Exception:
                owner = None
            # A real token on another provider's path is forged (or misrouted).
            outcome = "unknown_token" if owner is None else "wrong_provider"
        self.callbacks.labels(provider=provider_label(provider), outcome=outcome).inc()

    def provider_error(self, provider: str, op: str, kind: str) -> None:
        self.provider_errors.labels(provider=provider_label(provider), op=op, kind=kind).inc()

    def observe(self, provider: VideoProvider) -> VideoProvider:
        return ObservedProvider(provider, self)


class ObservedProvider(VideoProvider):
    """A provider whose calls count their typed errors; everything else passes through."""

    def __init__(self, inner: VideoProvider, metrics: Metrics) -> None:
        self.inner = inner
        self.name = inner.name
        self.signed_webhooks = inner.signed_webhooks
        self._metrics = metrics

    @contextlib.contextmanager
    def _counting(self, op: str) -> Iterator[None]:
        """Count the typed error a call raises (and let it through)."""
        try:
            yield
        except ProviderError as exc:
            self._metrics.provider_error(self.name, op, exc.code)
            raise
        except DownloadTooLarge:
            self._metrics.provider_error(self.name, "download", "too_large")
            raise
        except DownloadError:
            self._metrics.provider_error(self.name, "download", "download_failed")
            raise

    async def submit(
        self, spec: ModelSpec, request: GenerationRequest, callback_url: str | None = None
    ) -> str:
        with self._counting("submit"):
            return await self.inner.submit(spec, request, callback_url)

    async def status(self, spec: ModelSpec, task_id: str) -> TaskStatus:
        with self._counting("status"):
            return await self.inner.status(spec, task_id)

    def parse_callback(self, body: bytes) -> str | None:
        return self.inner.parse_callback(body)

    async def read_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookNews:
        return await self.inner.read_webhook(headers, body)

    def task_key(self, task_id: str) -> str:
        return self.inner.task_key(task_id)

    async def cancel(self, spec: ModelSpec, task_id: str) -> CancelOutcome:
        with self._counting("cancel"):
            return await self.inner.cancel(spec, task_id)

    async def fetch_result(
        self, session: aiohttp.ClientSession, url: str, dest: Path, max_bytes: int, *,
        keep_in_memory: int,
    ) -> bytes | None:
        with self._counting("download"):
            return await self.inner.fetch_result(session, url, dest, max_bytes,
                                                 keep_in_memory=keep_in_memory)

    async def check_key(self) -> None:
        with self._counting("check"):
            await self.inner.check_key()

    async def download(
        self, session: aiohttp.ClientSession, url: str, dest: Path, max_bytes: int
    ) -> int:
        with self._counting("download"):
            return await self.inner.download(session, url, dest, max_bytes)

    def __getattr__(self, name: str) -> Any:  # anything else the adapter offers
        return getattr(self.inner, name)
