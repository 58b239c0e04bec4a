"""Test helpers: a scripted loopback HTTP server that records requests, and test images."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from PIL import Image

from bot.catalog import ModelSpec
from bot.providers.base import SourceImage, TaskStatus, VideoProvider

KEY = "sk-secret-test-key-123"


@dataclass
class Step:
    """One scripted answer: status, JSON body (or raw text), headers, delay, or a drop."""

    status: int = 200
    body: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without answering


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    raw_path: str = ""
    raw: bytes = b""


class ScriptServer:
    """Answers every request with the next scripted Step (then ``default``)."""

    def __init__(self) -> None:
        self.script: list[Step] = []
        self.default = Step(200, {"ok": True})
        self.seen: list[Seen] = []
        self.images: dict[str, bytes] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None

    def then(self, *steps: Step) -> ScriptServer:
        self.script.extend(steps)
        return self

    def count(self, method: str = "POST") -> int:
        return sum(1 for s in self.seen if s.method == method)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path.startswith("/img/"):
            data = self.images.get(request.path.removeprefix("/img/"))
            return web.Response(body=data) if data else web.Response(status=404)
        raw = await request.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        self.seen.append(Seen(request.method, request.path, dict(request.query),
                              dict(request.headers), parsed, request.raw_path, raw))
        step = self.script.pop(0) if self.script else self.default
        if step.delay:
            await asyncio.sleep(step.delay)
        if step.drop:
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError
        if step.text is not None:
            return web.Response(status=step.status, text=step.text, headers=step.headers)
        return web.json_response(step.body, status=step.status, headers=step.headers)

    async def start(self) -> ScriptServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def wait_finished(
    provider: VideoProvider, spec: ModelSpec, task_id: str, limit_s: float = 5.0
) -> TaskStatus:
    """Poll until the task is finished (the emulators finish in well under a second)."""
    deadline = time.monotonic() + limit_s
    while True:
        status = await provider.status(spec, task_id)
        if status.state.finished or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.05)


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def image_bytes(width: int = 1280, height: int = 720, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (30, 120, 200)).save(buf, fmt)
    return buf.getvalue()


def source_image(
    width: int = 1280, height: int = 720, url: str | None = "https://img.example/a.png"
) -> SourceImage:
    return SourceImage(data=image_bytes(width, height), mime="image/png", width=width,
                       height=height, url=url)
