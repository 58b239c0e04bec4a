"""A job service wired to a provider emulator, a real webhook server and a recording
delivery function, for the job tests."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot.config import Settings
from bot.jobs.service import JobService
from bot.jobs.types import DeliveryFailed, JobUpdate
from bot.media.video import HeldVideo, VideoInfo
from bot.providers import make_provider
from bot.providers.base import VideoProvider
from bot.store import DatabaseUnavailable, Job, NewJob, QuotaSettings, Store
from bot.web.server import WebhookServer
from tests.pgserver import database_settings


@dataclass
class Recorder:
    """The delivery function: keeps what was posted; idempotent by job id, like the
    Discord layer."""

    posted: dict[str, bytes] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    updates: list[JobUpdate] = field(default_factory=list)
    failures: list[DeliveryFailed] = field(default_factory=list)

    async def deliver(self, job: Job, video: HeldVideo, info: VideoInfo) -> int:
        self.calls.append(job.id)
        if self.failures:
            raise self.failures.pop(0)
        self.posted.setdefault(job.id, video.read_bytes())
        return 1000 + list(self.posted).index(job.id)

    async def on_update(self, update: JobUpdate) -> None:
        self.updates.append(update)

    def phases(self, job_id: str) -> list[str]:
        return [u.phase.value for u in self.updates if u.job.id == job_id]


@dataclass
class Harness:
    service: JobService
    store: Store
    server: WebhookServer
    recorder: Recorder
    settings: Settings
    session: aiohttp.ClientSession
    provider: VideoProvider

    async def request(
        self, *, guild_id: int | None = 1, user_id: int = 7, duration: int = 4,
        prompt: str = "a red fox in snow", quota: QuotaSettings | None = None,
        model: str | None = None,
    ) -> Job:
        new = NewJob(
            guild_id=guild_id, channel_id=10, user_id=user_id,
            provider=self.settings.provider, model=model or self.settings.model,
            mode="text-to-video", prompt=prompt, duration=duration,
            orientation="landscape", seconds=duration, price_per_second=0.09,
        )
        quota = quota or QuotaSettings(seconds=600, period="day")
        return await self.service.request(new, quota)

    async def wait_state(self, job_id: str, *states: str, within: float = 15.0) -> Job:
        deadline = time.monotonic() + within
        while True:
            try:
                job = await self.store.job(job_id)
            except DatabaseUnavailable:  # a test's outage: look again in a moment
                await _sleep(0.05)
                continue
            assert job is not None
            if job.state.value in states:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job stayed {job.state} (wanted {states})")
            await _sleep(0.02)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@contextlib.asynccontextmanager
async def harness(
    tmp_path: Path,
    *,
    provider: str,
    base_url: str,
    api_key: str,
    model: str = "sora-2",
    callbacks: bool = False,
    recorder: Recorder | None = None,
    **settings: Any,
) -> AsyncIterator[Harness]:
    values: dict[str, Any] = {
        "provider": provider,
        "model": model,
        f"{provider}_api_key": api_key,
        f"{provider}_base_url": base_url,
        **database_settings(tmp_path),
        "poll_first_s": 0.05,
        "poll_interval_s": 0.1,
        "job_timeout_s": 30,
        "job_lease_s": 1.0,  # a restart on PostgreSQL waits out the old lease
    }
    values.update(settings)
    config = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    store = await Store.open(config)
    recorder = recorder or Recorder()
    session = aiohttp.ClientSession()
    prov = make_provider(provider, config, session)
    holder: dict[str, JobService] = {}

    async def on_callback(name: str, token: str, body: bytes, headers: Any) -> bool:
        return await holder["service"].handle_callback(name, token, body, headers)

    async def health() -> dict[str, bool]:
        return {"database": await store.ping()}

    server = WebhookServer("127.0.0.1", 0, on_callback=on_callback, health=health)
    await server.start()
    if callbacks:
        server.public_base_url = f"http://127.0.0.1:{server.port}"
    providers: dict[str, VideoProvider] = {provider: prov}

    def provider_named(name: str) -> VideoProvider:  # FALLBACK_PROVIDERS get their own
        if name not in providers:
            providers[name] = make_provider(name, config, session)
        return providers[name]

    service = JobService(
        store=store, session=session, settings=config, providers=provider_named,
        deliver=recorder.deliver, on_update=recorder.on_update, webhook=server,
        work_dir=tmp_path / "work",
    )
    holder["service"] = service
    await service.start()
    try:
        yield Harness(service, store, server, recorder, config, session, prov)
    finally:
        await service.stop()
        await server.stop()
        await session.close()
        await store.close()
