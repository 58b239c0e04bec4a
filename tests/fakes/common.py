"""Shared machinery for the provider emulators used in tests.

Each emulator is an ``aiohttp.web`` app on 127.0.0.1 (port 0) built from the provider's API
documents (``/work/shared/seeds``), not from the project's adapters. Only loopback traffic:
images are fetched and callbacks delivered to loopback hosts only.

A task's life is computed from elapsed time (``time.monotonic``): queued for ``queue_s``,
processing until ``task_s``, then the outcome fixed when the task was created (tests may
change ``fake.tasks[id].outcome`` or call ``finish_now``). A background watcher per task
sends the callbacks when it finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Self

import aiohttp
from aiohttp import web

from .media import (
    IMAGE_FORMATS,
    LOOPBACK_HOSTS,
    MAX_IMAGE_BYTES,
    ImageInfo,
    ImageProblem,
    decode_image,
    is_http_url,
    is_int,
    is_loopback_url,
    load_image,
    make_mp4,
    small_dims,
)
from .records import CallbackAttempt, FakeTask, RecordedRequest

__all__ = [
    "IMAGE_FORMATS",
    "LOOPBACK_HOSTS",
    "MAX_IMAGE_BYTES",
    "OTHER",
    "STATUS",
    "SUBMIT",
    "CallbackAttempt",
    "FakeProvider",
    "FakeTask",
    "ImageInfo",
    "ImageProblem",
    "RecordedRequest",
    "decode_image",
    "is_http_url",
    "is_int",
    "is_loopback_url",
    "load_image",
    "make_mp4",
    "small_dims",
]

SUBMIT, STATUS, OTHER = "submit", "status", "other"
GATEWAY_PAGE = "<html><head><title>502 Bad Gateway</title></head><body>502</body></html>"
_CREATED_HERE: ContextVar[bool] = ContextVar("_CREATED_HERE", default=False)  # per request


Impl = Callable[[web.Request, RecordedRequest], Awaitable[web.StreamResponse]]


class FakeProvider:
    """Base emulator: server lifecycle, recording, switches, task timing, callbacks, files."""

    default_api_key = "test-key"
    status_5xx_codes: tuple[int, ...] = (500,)

    def __init__(
        self, api_key: str | None = None, *, queue_s: float = 0.2, task_s: float = 0.6
    ) -> None:
        self.api_key = self.default_api_key if api_key is None else api_key
        self.queue_s, self.task_s = queue_s, task_s
        self.tasks: dict[str, FakeTask] = {}
        self.requests: list[RecordedRequest] = []
        self.submits_accepted = 0
        self.callbacks_sent: list[CallbackAttempt] = []
        # misbehaviour switches
        self.fail_submits_with_429 = 0
        self.retry_after: float = 1
        self.status_429s = 0
        self.status_5xx = 0
        # A create that made its task but whose answer is lost in a gateway: a bare 502
        # page from a proxy in front, not the provider's own error body.
        self.submit_5xx_after_create = False
        self.submit_delay_s = 0.0
        self.status_delay_s = 0.0
        self.outcome = "success"
        self.callback_mode = "normal"  # normal | drop | duplicate | early
        self.callback_duplicates = 3  # copies sent in "duplicate" mode
        self.callback_attempts = 4  # first try + retries on non-2xx
        self.callback_retry_delay_s = 0.2
        self.callback_timeout_s = 30.0
        self.early_callback_wait_s = 1.0  # how long the create reply waits for an early callback
        self.retired_models: set[str] = set()
        self.balance_exhausted = False
        self.forbidden = False
        self.files_expired = False  # GET /files/... answers 403
        self.video_bytes: bytes | None = None  # serve these instead of a generated MP4
        self.video_file: Path | None = None  # or stream this file (large results, benchmarks)
        self._5xx_count = 0
        self._bg: set[asyncio.Task[Any]] = set()
        self._inflight: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.base_url = ""
        self.app = web.Application(client_max_size=32 * 1024 * 1024)
        self.app.router.add_get("/files/{name}", self._handle_file)
        self.setup_routes(self.app.router)

    # ----- hooks for subclasses -------------------------------------------------------
    def setup_routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def check_auth(self, request: web.Request) -> bool:
        raise NotImplementedError

    def error(
        self, kind: str, message: str | None = None, status: int | None = None
    ) -> web.Response:
        """kinds: auth, forbidden, rate_limit, server, bad_request, not_found, model, balance."""
        raise NotImplementedError

    def render(self, task: FakeTask, phase: str, outcome: str) -> dict[str, Any]:
        """The provider's status document for ``task`` in ``phase`` with ``outcome``."""
        raise NotImplementedError

    def callback_payload(self, task: FakeTask, outcome: str) -> dict[str, Any]:
        return self.render(task, "done", outcome)

    def callback_payloads(self, task: FakeTask, outcome: str) -> list[tuple[str, dict[str, Any]]]:
        """(URL, payload) of each callback a finished task sends; one shape by default."""
        return [(url, self.callback_payload(task, outcome)) for url in task.callback_urls]

    def on_task_finished(self, task: FakeTask) -> None:
        """Called once when a task reaches its outcome (before callbacks)."""

    async def prepare_result(self, task: FakeTask) -> None:
        """Awaited once when a task reaches its outcome, before ``on_task_finished``: for
        work a result needs that should not block the loop (measuring the video)."""

    def webhook_request(self, task: FakeTask, payload: dict[str, Any],
                        event: str) -> tuple[bytes, dict[str, str]]:
        """The raw body and headers of one callback (``event`` names it, the same across
        its retries); providers that sign their webhooks add the signature here."""
        return json.dumps(payload).encode(), {"Content-Type": "application/json"}

    # ----- lifecycle -------------------------------------------------------------------
    async def start(self) -> Self:
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def restart(self, pause_s: float) -> None:
        """The provider goes down for ``pause_s`` seconds (connections refused) and comes
        back on the same address with everything it knew: tasks keep rendering, and the
        callbacks they owe are still sent."""
        assert self._runner is not None, "emulator not started"
        port = self._runner.addresses[0][1]
        await self._runner.cleanup()
        await asyncio.sleep(pause_s)
        self.app = web.Application(client_max_size=32 * 1024 * 1024)
        self.app.router.add_get("/files/{name}", self._handle_file)
        self.setup_routes(self.app.router)
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    async def close(self) -> None:
        for task in [*self._bg, *self._inflight]:
            task.cancel()
        await asyncio.gather(*self._bg, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----- helpers for tests -----------------------------------------------------------
    @property
    def callbacks_delivered(self) -> list[CallbackAttempt]:
        return [c for c in self.callbacks_sent if c.delivered]

    def requests_to(self, method: str, path_prefix: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def finish_now(self, task_id: str) -> None:
        """Make a task reach its outcome now (its watcher sends callbacks within ~50 ms)."""
        task = self.tasks[task_id]
        elapsed = time.monotonic() - task.created_mono
        task.queue_s = task.task_s = min(task.task_s, elapsed)

    async def wait_until(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not reached in time")
            await asyncio.sleep(0.02)

    def file_url(self, task: FakeTask) -> str:
        return f"{self.base_url}/files/{task.id}.mp4"

    # ----- request plumbing ------------------------------------------------------------
    def route(self, method: str, path: str, kind: str, impl: Impl) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            current = asyncio.current_task()
            assert current is not None
            self._inflight.add(current)  # so close() can cancel handlers stuck in a delay
            try:
                return await self._handle(request, kind, impl)
            finally:
                self._inflight.discard(current)

        self.app.router.add_route(method, path, handler)

    async def _handle(self, request: web.Request, kind: str, impl: Impl) -> web.StreamResponse:
        rec = await self._record(request)
        _CREATED_HERE.set(False)
        gated = self._gate(request, kind)
        response = gated if gated is not None else await impl(request, rec)
        if kind == SUBMIT and _CREATED_HERE.get() and self.submit_5xx_after_create:
            response = web.Response(status=502, text=GATEWAY_PAGE, content_type="text/html")
        delay = self.submit_delay_s if kind == SUBMIT else self.status_delay_s
        if delay > 0 and kind != OTHER:
            await asyncio.sleep(delay)
        return response

    async def _record(self, request: web.Request) -> RecordedRequest:
        raw = await request.read() if request.can_read_body else b""
        parsed: Any = None
        if raw:
            with contextlib.suppress(ValueError):
                parsed = json.loads(raw)
        rec = RecordedRequest(
            request.method, request.path, dict(request.headers), parsed, dict(request.query)
        )
        self.requests.append(rec)
        return rec

    def _gate(self, request: web.Request, kind: str) -> web.Response | None:
        if not self.check_auth(request):
            return self.error("auth")
        if self.forbidden:
            return self.error("forbidden")
        if kind == SUBMIT and self.fail_submits_with_429 > 0:
            self.fail_submits_with_429 -= 1
            return self.with_retry_after(self.error("rate_limit"))
        if kind == STATUS and self.status_429s > 0:
            self.status_429s -= 1
            return self.with_retry_after(self.error("rate_limit"))
        if kind == STATUS and self.status_5xx > 0:
            self.status_5xx -= 1
            code = self.status_5xx_codes[self._5xx_count % len(self.status_5xx_codes)]
            self._5xx_count += 1
            return self.error("server", None, code)
        return None

    def with_retry_after(self, response: web.Response) -> web.Response:
        value = self.retry_after
        response.headers["Retry-After"] = (
            str(int(value)) if float(value).is_integer() else f"{float(value):g}"
        )
        return response

    @staticmethod
    def is_json_request(request: web.Request) -> bool:
        return request.content_type == "application/json"

    async def fetch_image(self, ref: str, *, allow_data_uri: bool = False,
                          max_bytes: int = MAX_IMAGE_BYTES) -> ImageInfo:
        assert self._session is not None, "emulator not started"
        return await load_image(self._session, ref, allow_data_uri=allow_data_uri,
                                max_bytes=max_bytes)

    # ----- tasks and callbacks -----------------------------------------------------------
    def new_task(self, task_id: str, model: str, body: dict[str, Any], **kw: Any) -> FakeTask:
        kw.setdefault("outcome", self.outcome)
        return FakeTask(task_id, model, body, queue_s=self.queue_s, task_s=self.task_s, **kw)

    async def accept(self, task: FakeTask) -> None:
        """Register a created task, start its clock and (callback_mode="early") send a
        completed-looking callback before the create reply goes out."""
        task.created_mono, task.created_wall = time.monotonic(), time.time()
        self.tasks[task.id] = task
        self.submits_accepted += 1
        _CREATED_HERE.set(True)
        self._spawn(self._watch(task))
        if self.callback_mode == "early" and task.callback_urls:
            sends = [
                self._spawn(self._deliver(task, url, payload, "early", 0))
                for url, payload in self.callback_payloads(task, "success")
            ]
            await asyncio.wait(sends, timeout=self.early_callback_wait_s)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)
        return task

    async def _watch(self, task: FakeTask) -> None:
        # a loop, not one sleep: tests may move the deadline (finish_now, task.task_s = ...)
        while (remaining := task.created_mono + task.task_s - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(remaining, 0.05))
        await self.prepare_result(task)
        task.finished = True
        self.on_task_finished(task)
        if not task.callback_urls or self.callback_mode == "drop":
            return
        copies = max(1, self.callback_duplicates) if self.callback_mode == "duplicate" else 1
        await asyncio.gather(
            *(
                self._deliver(task, url, payload, "final", copy)
                for url, payload in self.callback_payloads(task, task.outcome)
                for copy in range(copies)
            )
        )

    async def _deliver(
        self, task: FakeTask, url: str, payload: dict[str, Any], kind: str, copy: int
    ) -> None:
        for attempt in range(1, max(1, self.callback_attempts) + 1):
            rec = CallbackAttempt(task.id, url, kind, copy, attempt, payload)
            self.callbacks_sent.append(rec)
            if not is_loopback_url(url):
                rec.error = "refused: emulator only calls loopback URLs"
                return
            if self._session is None:
                rec.error = "emulator closed"
                return
            try:
                timeout = aiohttp.ClientTimeout(total=self.callback_timeout_s)
                body, headers = self.webhook_request(task, payload, f"{kind}-{copy}")
                async with self._session.post(url, data=body, headers=headers,
                                              timeout=timeout) as resp:
                    rec.status = resp.status
                    await resp.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                rec.error = repr(exc)
            if rec.delivered:
                return
            await asyncio.sleep(self.callback_retry_delay_s)

    # ----- result files ------------------------------------------------------------------
    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        name = request.match_info["name"]
        task = self.tasks.get(name.removesuffix(".mp4")) if name.endswith(".mp4") else None
        if task is None or not task.succeeded:
            return web.Response(status=404, text="Not Found")
        if self.files_expired:
            return web.Response(status=403, text="Request has expired")
        if self.video_file is not None:
            return web.FileResponse(self.video_file, headers={"Content-Type": "video/mp4"})
        body = self.video_bytes
        if body is None:
            body = await asyncio.to_thread(make_mp4, float(task.duration), *task.video_size)
        return web.Response(body=body, content_type="video/mp4")
