"""Streaming downloads of result videos, with a byte cap and retries.

Result URLs are often signed: their query strings are secrets-ish, so only the scheme,
host and path are ever logged or put into an error.

Redirects are followed by hand, each hop checked before it is requested: only http(s),
at most ``MAX_REDIRECTS``, and only to the server the provider's URL named (same host
and port) or to a host whose every address is public. A result URL cannot send the bot
to a private, loopback, link-local or otherwise non-public address it was not already
given: the first URL comes from the provider the operator configured (tests and
self-hosted relays use loopback ones), a redirect comes from whoever answers it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
import socket
import time
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import aiohttp
import yarl
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
MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class DownloadError(Exception):
    """A result could not be fetched; ``user_message`` is a sentence for chat."""

    default_message = "The finished video could not be downloaded from the provider."

    def __init__(self, user_message: str | None = None, *, detail: str | None = None) -> None:
        self.user_message = user_message or self.default_message
        self.detail = detail  # for logs; never holds a query string
        super().__init__(self.user_message if detail is None else f"{self.user_message} ({detail})")


class DownloadTooLarge(DownloadError):
    default_message = "The finished video is larger than the bot will download."


class RedirectRefused(DownloadError):
    default_message = (
        "The provider's link to the video redirected somewhere the bot will not follow."
    )


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
    size, _ = await _download(session, url, dest, max_bytes, 0, timeout_s)
    return size


async def download_video(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    max_bytes: int,
    *,
    keep_in_memory: int,
    timeout_s: float = 600,
) -> bytes | None:
    """``download_to_file``, except that a body of at most ``keep_in_memory`` bytes is
    returned and nothing is written; a larger one is in ``dest`` (returns None)."""
    _, data = await _download(session, url, dest, max_bytes, keep_in_memory, timeout_s)
    return data


async def _download(
    session: aiohttp.ClientSession, url: str, dest: Path, max_bytes: int, keep: int,
    timeout_s: float,
) -> tuple[int, bytes | None]:
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
                size, data = await _fetch_once(session, url, dest, max_bytes, keep, deadline)
                log.info("downloaded %s: %d bytes", safe, size)
                return size, data
    except _Transient as exc:
        log.warning("download of %s failed: %s", safe, exc.detail)
        raise DownloadError(detail=f"{exc.detail} from {safe}") from None
    raise AssertionError("unreachable")  # pragma: no cover


async def _fetch_once(
    session: aiohttp.ClientSession, url: str, dest: Path, max_bytes: int, keep: int,
    deadline: float,
) -> tuple[int, bytes | None]:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DownloadError("The video download took too long.", detail="deadline passed")
    timeout = aiohttp.ClientTimeout(total=remaining, sock_connect=30, sock_read=120)
    current, must_be_public = url, False
    for _hop in range(MAX_REDIRECTS + 1):
        outcome = await _get_once(session, current, must_be_public, dest, max_bytes, keep,
                                  timeout)
        if not isinstance(outcome, str):
            return outcome
        current, must_be_public = outcome, await check_redirect(url, outcome)
    raise DownloadError(detail=f"more than {MAX_REDIRECTS} redirects from {redact_url(url)}")


async def _get_once(
    session: aiohttp.ClientSession, url: str, must_be_public: bool, dest: Path,
    max_bytes: int, keep: int, client_timeout: aiohttp.ClientTimeout,
) -> str | tuple[int, bytes | None]:
    """One request: the redirect target it names (str), or the body's size and, when it
    was kept in memory, the body."""
    try:
        async with session.get(url, timeout=client_timeout, allow_redirects=False) as resp:
            if must_be_public:
                _check_peer(resp, url)
            if resp.status in _REDIRECT_STATUSES:
                location = resp.headers.get("Location")
                if not location:
                    raise DownloadError(detail=f"HTTP {resp.status} without a Location")
                try:
                    return str(resp.url.join(yarl.URL(location)))
                except ValueError:
                    raise RedirectRefused(detail="an unreadable Location") from None
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
            return await _stream_to(resp, dest, max_bytes, keep)
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        raise _Transient(type(exc).__name__) from None
    except TimeoutError:
        raise _Transient("timeout") from None
    except aiohttp.ClientError as exc:  # InvalidURL, TooManyRedirects, ...
        raise DownloadError(detail=type(exc).__name__) from None


def _server(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.hostname.lower(), parts.port or _DEFAULT_PORTS[parts.scheme]


def is_public_address(address: str) -> bool:
    """True for a globally routable unicast address (not private, loopback, link-local,
    shared, reserved, multicast or unspecified)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def check_redirect(origin: str, target: str) -> bool:
    """Refuse a redirect from ``origin`` to ``target`` unless it is http(s) and goes to the
    same server or to public addresses only. Returns True when the target had to be
    public (the connection's peer is then checked too: the name may resolve anew)."""
    safe = redact_url(target)
    try:
        to, start = _server(target), _server(origin)
    except ValueError:
        to = start = None
    if to is None:
        raise RedirectRefused(detail=f"to a non-http(s) URL: {safe}")
    if to == start:
        return False  # the server the provider's URL already named
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(to[0], to[1], type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise RedirectRefused(detail=f"to a host that does not resolve: {safe}") from None
    addresses = {str(info[4][0]) for info in infos}
    private = sorted(a for a in addresses if not is_public_address(a))
    if not addresses or private:
        log.warning("refused a redirect to %s (non-public address %s)", safe,
                    private[0] if private else "none")
        raise RedirectRefused(detail=f"to a non-public address: {safe}")
    return True


def _check_peer(resp: aiohttp.ClientResponse, url: str) -> None:
    """The address actually connected to must be public too (DNS may have changed)."""
    transport = resp.connection.transport if resp.connection is not None else None
    peer = transport.get_extra_info("peername") if transport is not None else None
    if peer and not is_public_address(str(peer[0])):
        raise RedirectRefused(detail=f"connected to a non-public address for {redact_url(url)}")


async def _stream_to(
    resp: aiohttp.ClientResponse, dest: Path, max_bytes: int, keep: int
) -> tuple[int, bytes | None]:
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    fh: BinaryIO | None = None
    total = 0
    # Chunks go to a worker thread as they came (no copy), 8 MB at a time: memory stays
    # bounded, and a typical result (a few MB) takes one trip to the thread, which
    # creates, writes and renames the file. A body of at most ``keep`` bytes is never
    # written: it is returned whole.
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
        if fh is None and total <= keep:
            done = True
            return total, b"".join(pending)
        await asyncio.to_thread(_finish, fh, tmp, dest, pending)
        done = True
        return total, None
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
