"""The sandbox provider: no key, no network, costs nothing.

It "makes" a video by rendering a test card locally (bot.media.testcard) that says
plainly it is a SANDBOX video, not made by AI. Task ids are self-describing (the
request and creation time, base64url JSON), so a task survives a restart of the bot:
any SandboxProvider on the same work_dir resolves any id it ever issued. Rendering is
deterministic per id, so a pruned file is simply rendered again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import re
import secrets
import shutil
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.catalog import ModelSpec, Orientation
from bot.providers.base import GenerationRequest, TaskState, TaskStatus, VideoProvider
from bot.providers.download import DownloadError, DownloadTooLarge
from bot.providers.errors import TaskNotFound
from bot.providers.validation import validate_request

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

PREFIX = "sbx_"
URL_SCHEME = "sandbox://"
_PROMPT_KEEP = 300
_MAX_ID_LEN = 4096
_FILE_RE = re.compile(r"sandbox-[0-9a-f]{32}\.mp4")
_PRUNE_AFTER_S = 24 * 3600


class SandboxProvider(VideoProvider):
    name = "sandbox"

    def __init__(self, delay_s: float, work_dir: Path) -> None:
        self.delay_s = max(0.0, float(delay_s))
        self.work_dir = Path(work_dir)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def submit(
        self, spec: ModelSpec, request: GenerationRequest, callback_url: str | None = None
    ) -> str:
        validate_request(spec, request)
        task: dict[str, Any] = {
            "p": request.prompt.strip()[:_PROMPT_KEEP],
            "d": request.duration,
            "o": request.orientation.value,
            "t": int(time.time() * 1000) / 1000,  # floored: never in the future
            "n": secrets.token_hex(4),
        }
        if request.image is not None:
            task["i"] = [request.image.width, request.image.height]
        if request.end_image is not None:
            task["e"] = [request.end_image.width, request.end_image.height]
        raw = json.dumps(task, ensure_ascii=False, separators=(",", ":")).encode()
        task_id = PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
        log.info("sandbox task submitted: %ss %s", request.duration, request.orientation.value)
        return task_id

    async def status(self, spec: ModelSpec, task_id: str) -> TaskStatus:
        task = _decode(task_id, spec)
        elapsed = time.time() - task["t"]
        if self.delay_s > 0 and elapsed < self.delay_s:
            progress = max(0.0, min(0.99, elapsed / self.delay_s))
            return TaskStatus(task_id=task_id, state=TaskState.RUNNING, progress=progress)
        name = _file_name(task_id)
        try:
            await self._render(name, task)
        except Exception:
            log.exception("sandbox could not render its test card")
            return TaskStatus(
                task_id=task_id,
                state=TaskState.FAILED,
                error_code="sandbox_render_failed",
                error_message="The sandbox could not render its test video.",
            )
        return TaskStatus(
            task_id=task_id,
            state=TaskState.SUCCEEDED,
            progress=1.0,
            video_urls=[URL_SCHEME + name],
        )

    async def _render(self, name: str, task: dict[str, Any]) -> None:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        async with lock:
            path = self.work_dir / name
            if await asyncio.to_thread(self._prepare, path):
                return  # rendered before (by this process or an earlier one)
            prompt = str(task["p"])
            if "i" in task:
                width, height = task["i"]
                ends = " to an end frame" if "e" in task else ""
                prompt = f"[animated from a {width}×{height} image{ends}] {prompt}"
            from bot.media.testcard import make_test_card  # PyAV: loaded when first used

            await asyncio.to_thread(
                make_test_card,
                path,
                prompt=prompt,
                duration_s=int(task["d"]),
                orientation=Orientation(task["o"]),
                audio=True,
            )
            log.info("sandbox test card rendered: %s", name)

    def _prepare(self, path: Path) -> bool:
        """True when the card exists; else make room for it: work_dir, old cards pruned."""
        if path.is_file():
            return True
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._prune()
        return False

    def _prune(self) -> None:
        """Forget test cards nobody fetched for a day (they can be rendered again)."""
        cutoff = time.time() - _PRUNE_AFTER_S
        for old in self.work_dir.glob("sandbox-*.mp4"):
            try:
                if old.stat().st_mtime < cutoff:
                    old.unlink()
            except OSError:
                pass

    def parse_callback(self, body: bytes) -> str | None:
        return None

    async def check_key(self) -> None:
        return None

    async def download(
        self, session: aiohttp.ClientSession, url: str, dest: Path, max_bytes: int
    ) -> int:
        """Copy a rendered card (only ``sandbox://<card file>`` names in work_dir)."""
        name = url[len(URL_SCHEME) :] if url.startswith(URL_SCHEME) else ""
        if not _FILE_RE.fullmatch(name):
            raise DownloadError(detail="not a sandbox video URL")
        return await asyncio.to_thread(self._copy_out, name, Path(dest), max_bytes)

    async def fetch_result(
        self, session: aiohttp.ClientSession, url: str, dest: Path, max_bytes: int, *,
        keep_in_memory: int,
    ) -> bytes | None:
        """Cards are copied to ``dest`` whatever their size (they are on disk already)."""
        await self.download(session, url, dest, max_bytes)
        return None

    def _copy_out(self, name: str, dest: Path, max_bytes: int) -> int:
        src = (self.work_dir / name).resolve()
        if src.parent != self.work_dir.resolve() or not src.is_file():
            raise DownloadError("The sandbox video is no longer available.", detail=name)
        size = src.stat().st_size
        if size > max_bytes:
            raise DownloadTooLarge(detail=f"{size} bytes > cap {max_bytes}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
        try:
            shutil.copyfile(src, tmp)
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)
        return size


def _file_name(task_id: str) -> str:
    return f"sandbox-{hashlib.sha256(task_id.encode()).hexdigest()[:32]}.mp4"


def _decode(task_id: str, spec: ModelSpec) -> dict[str, Any]:
    """The task a sandbox id describes; TaskNotFound for anything else."""
    not_found = TaskNotFound(detail="not a sandbox task id")
    if not task_id.startswith(PREFIX) or len(task_id) > _MAX_ID_LEN:
        raise not_found
    body = task_id[len(PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        task = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise not_found from None
    if not isinstance(task, dict):
        raise not_found
    prompt, duration, orient, created = task.get("p"), task.get("d"), task.get("o"), task.get("t")
    image, end = task.get("i"), task.get("e")
    valid = (
        isinstance(prompt, str)
        and len(prompt) <= _PROMPT_KEEP
        and type(duration) is int
        and duration in spec.durations  # also bounds the rendering work
        and orient in {o.value for o in Orientation}
        and isinstance(created, int | float)
        and created > 0
        and _is_size(image, optional=True)
        and _is_size(end, optional=True)
        and (end is None or image is not None)
    )
    if not valid:
        raise not_found
    return task


def _is_size(value: Any, *, optional: bool) -> bool:
    if value is None:
        return optional
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(type(v) is int and 0 < v < 100_000 for v in value)
    )
