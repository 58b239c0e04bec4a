"""Streaming downloads of result videos, with a byte cap and retries.

Result URLs are often signed: their query strings are secrets-ish, so only the scheme,
host and path are ever logged or put into an error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import aiohttp
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
_WRITE_BATCH = 8 * 1024 * 1024
ATTEMPTS = 4
# 0.5 s, 1 s, 2 s ... (plus up to 0.5 s of jitter), at most 10 s between attempts.
RETRY_WAIT = wait_exponential_jitter(multiplier=0.5, max=10, jitter=0.5)


class DownloadError(Exception):
    """A result could not be fetched; ``user_message`` is a sentence for chat."""

    default_message = "The finished video could not be downloaded from the provider."

    def __init__(self, user_message: str | None = None, *, detail: str | None = None) -> None:
        self.user_message = user_message or self.default_message
        self.detail = detail  # for logs; never holds a query string
        super().__init__(self.user_message if detail is None else f"{self.user_message} ({detail})")


class DownloadTooLarge(DownloadError):
    default_message = "The finished video is larger than the bot will download."


class _Transient(Exception):
    """A failure worth another try (connection trouble, 5xx, 429)."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


def redact_url(url: str) -> str:
    """scheme://host[:port]/path: what may appear in logs (no query, no user info)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


async def download_to_file(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    max_bytes: int,
    *,
    timeout_s: float = 600,
) -> int:
    """Stream ``url`` into ``dest`` (through a temporary name); return its size in bytes.

    Refuses non-http(s) URLs and anything over ``max_bytes`` (by Content-Length, and
    while streaming); retries connection errors, 5xx and 429 a few times within
    ``timeout_s`` overall. A partial file never survives a failure.
    """
    safe = redact_url(url)
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise DownloadError(detail=f"not an http(s) URL: {safe}")
    dest = Path(dest)
    deadline = time.monotonic() + timeout_s
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(_Transient),
        stop=stop_after_attempt(ATTEMPTS) | stop_after_delay(timeout_s),
        wait=RETRY_WAIT,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                if number > 1:
                    log.warning("retrying download of %s (attempt %d)", safe, number)
                size = await _fetch_once(session, url, dest, max_bytes, deadline)
                log.info("downloaded %s: %d bytes", safe, size)
                return size
    except _Transient as exc:
        log.warning("download of %s failed: %s", safe, exc.detail)
        raise DownloadError(detail=f"{exc.detail} from {safe}") from None
    raise AssertionError("unreachable")  # pragma: no cover


async def _fetch_once(
    session: aiohttp.ClientSession, url: str, dest: Path, max_bytes: int, deadline: float
) -> int:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DownloadError("The video download took too long.", detail="deadline passed")
    timeout = aiohttp.ClientTimeout(total=remaining, sock_connect=30, sock_read=120)
    try:
        async with session.get(url, timeout=timeout) as resp:
            if resp.status == 429 or resp.status >= 500:
                raise _Transient(f"HTTP {resp.status}")
            if resp.status >= 400:
                raise DownloadError(
                    "The link to the finished video no longer works.",
                    detail=f"HTTP {resp.status}",
                )
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise DownloadTooLarge(
                    detail=f"Content-Length {resp.content_length} > cap {max_bytes}"
                )
            return await _stream_to(resp, dest, max_bytes)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        raise _Transient(type(exc).__name__) from None
    except TimeoutError:
        raise _Transient("timeout") from None
    except aiohttp.ClientError as exc:  # InvalidURL, TooManyRedirects, ...
        raise DownloadError(detail=type(exc).__name__) from None


async def _stream_to(resp: aiohttp.ClientResponse, dest: Path, max_bytes: int) -> int:
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    fh: BinaryIO | None = None
    total = 0
    # Chunks go to a worker thread as they came (no copy), 8 MB at a time: memory stays
    # bounded, and a typical result (a few MB) takes one trip to the thread, which
    # creates, writes and renames the file.
    pending: list[bytes] = []
    pending_bytes = 0
    done = False
    try:
        async for chunk in resp.content.iter_chunked(CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise DownloadTooLarge(detail=f"body passed the cap of {max_bytes} bytes")
            pending.append(chunk)
            pending_bytes += len(chunk)
            if pending_bytes >= _WRITE_BATCH:
                fh = await asyncio.to_thread(_write, fh, tmp, pending)
                pending, pending_bytes = [], 0
        await asyncio.to_thread(_finish, fh, tmp, dest, pending)
        done = True
        return total
    finally:
        if not done:  # synchronous on purpose: it must also run on cancellation
            _discard(fh, tmp)


def _write(fh: BinaryIO | None, tmp: Path, chunks: list[bytes]) -> BinaryIO:
    """Append ``chunks`` to the temporary file, creating it on the first call."""
    if fh is None:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        fh = tmp.open("wb")
    fh.writelines(chunks)
    return fh


def _finish(fh: BinaryIO | None, tmp: Path, dest: Path, chunks: list[bytes]) -> None:
    """The last chunks, then the atomic rename into place."""
    with _write(fh, tmp, chunks):
        pass
    os.replace(tmp, dest)


def _discard(fh: BinaryIO | None, tmp: Path) -> None:
    if fh is not None:
        fh.close()
    tmp.unlink(missing_ok=True)
