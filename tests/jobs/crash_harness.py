"""Run the job service in its own process, optionally killing it (SIGKILL) at a chosen
point of a job's life. Used by test_crash_restart.py; not a test itself.

    python -m tests.jobs.crash_harness --db F --work D --posts F --base-url U --key K
        [--request] [--crash-at POINT] [--callbacks]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from bot.config import Settings
from bot.jobs.service import JobService
from bot.media.video import HeldVideo, VideoInfo
from bot.providers import make_provider
from bot.store import Job, NewJob, QuotaSettings, Store
from bot.web.server import WebhookServer

# crash point -> (store method, kill before or after it runs)
CRASH_POINTS: dict[str, tuple[str, str]] = {
    "reserved": ("mark_submitting", "before"),
    "submitting": ("mark_submitting", "after"),
    "sent-unrecorded": ("mark_submitted", "before"),
    "submitted": ("mark_submitted", "after"),
    "succeeded": ("mark_succeeded", "after"),
    "posted-unrecorded": ("mark_delivered", "before"),
    "delivered": ("mark_delivered", "after"),
}


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm(store: Store, point: str) -> None:
    method, when = CRASH_POINTS[point]
    original: Callable[..., Awaitable[Any]] = getattr(store, method)

    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        if when == "before":
            _die()
        result = await original(*args, **kwargs)
        _die()
        return result

    setattr(store, method, wrapped)


def make_deliver(posts: Path) -> Callable[[Job, HeldVideo, VideoInfo], Awaitable[int]]:
    async def deliver(job: Job, video: HeldVideo, info: VideoInfo) -> int:
        # Idempotent by job id, as the Discord layer is (it looks for its own message).
        lines = posts.read_text().splitlines() if posts.exists() else []
        for line in lines:
            row = json.loads(line)
            if row["job"] == job.id:
                return int(row["message"])
        with posts.open("a") as fh:
            fh.write(json.dumps({"job": job.id, "message": 5000 + len(lines),
                                 "bytes": video.size}) + "\n")
        return 5000 + len(lines)

    return deliver


async def main(args: argparse.Namespace) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, provider="apixo", apixo_api_key=args.key, apixo_base_url=args.base_url,
        database_path=Path(args.work) / "bot.sqlite3", poll_first_s=0.05, poll_interval_s=0.1,
        job_timeout_s=30, job_lease_s=args.lease, instance_id=args.instance,
    )
    store = await Store.open(args.db)  # a SQLite file, or a postgresql:// URL
    if args.crash_at:
        arm(store, args.crash_at)
    session = aiohttp.ClientSession()
    provider = make_provider("apixo", settings, session)
    holder: dict[str, JobService] = {}

    async def on_callback(name: str, token: str, body: bytes, headers: Any) -> bool:
        return await holder["service"].handle_callback(name, token, body, headers)

    async def health() -> dict[str, bool]:
        return {"database": await store.ping()}

    server = WebhookServer("127.0.0.1", args.port, on_callback=on_callback, health=health)
    await server.start()
    if args.callbacks:
        server.public_base_url = f"http://127.0.0.1:{server.port}"
    service = JobService(
        store=store, session=session, settings=settings, providers=lambda _n: provider,
        deliver=make_deliver(Path(args.posts)), work_dir=Path(args.work), webhook=server,
    )
    holder["service"] = service
    await service.start()
    if args.request:
        new = NewJob(guild_id=1, channel_id=10, user_id=7, provider="apixo", model="sora-2",
                     mode="text-to-video", prompt="a red fox in snow", duration=4,
                     orientation="landscape", seconds=4, price_per_second=0.09)
        await service.request(new, QuotaSettings(seconds=120, period="day"))
    # On PostgreSQL the killed run's leases hold its jobs for JOB_LEASE_S: wait until
    # this run has taken every unfinished job over, as a restarted bot does.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(  # noqa: ASYNC110
            job.owner != service.owner for job in await store.unfinished_jobs()):
        await asyncio.sleep(0.1)
    await service.drain(within_s=30)
    await service.stop()
    await server.stop()
    await session.close()
    await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("--db", "--work", "--posts", "--base-url", "--key"):
        parser.add_argument(name, required=True)
    parser.add_argument("--request", action="store_true")
    parser.add_argument("--callbacks", action="store_true")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--lease", type=float, default=1.0, help="JOB_LEASE_S")
    parser.add_argument("--instance", help="INSTANCE_ID (unset: host and shards)")
    parser.add_argument("--crash-at", choices=sorted(CRASH_POINTS))
    asyncio.run(main(parser.parse_args()))
