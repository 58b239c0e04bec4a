"""The fake CDN: every stored attachment is served under /attachments/{channel}/{id}/{name}.

URLs are signed like Discord's (``?ex=<hex expiry>&is=<hex issued>&hm=<hex mac>&``); once
``ex`` has passed, or the signature is wrong, the CDN answers 404 "This content is no longer
available." (what cdn.discordapp.com says). Every GET is recorded in ``downloads``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web

from .models import DownloadRecord, StoredAttachment, guess_content_type, image_size

if TYPE_CHECKING:
    from .world import Snowflakes

DEFAULT_URL_TTL_S = 24 * 3600.0


class Cdn:
    def __init__(self, ids: Snowflakes, origin: Callable[[], str],
                 on_change: Callable[[], None]) -> None:
        self._ids = ids
        self._origin = origin
        self._on_change = on_change
        self._secret = hashlib.sha256(str(time.time_ns()).encode()).digest()
        self.files: dict[int, StoredAttachment] = {}
        self.downloads: list[DownloadRecord] = []
        self.url_ttl_s = DEFAULT_URL_TTL_S

    def _sign(self, att_id: int, issued: int, expires: int) -> str:
        msg = f"{att_id}:{issued}:{expires}".encode()
        return hmac.new(self._secret, msg, hashlib.sha256).hexdigest()[:32]

    def store(self, channel_id: int, filename: str, data: bytes, *,
              content_type: str | None = None, description: str | None = None,
              ephemeral: bool = False, expires_in_s: float | None = None) -> StoredAttachment:
        att_id = self._ids.next()
        ctype = guess_content_type(filename, content_type)
        width, height = image_size(data, ctype)
        issued = int(time.time())
        ttl = self.url_ttl_s if expires_in_s is None else expires_in_s
        expires = time.time() + ttl
        prefix = "ephemeral-attachments" if ephemeral else "attachments"
        path = f"/{prefix}/{channel_id}/{att_id}/{quote(filename)}"
        query = f"?ex={int(expires):x}&is={issued:x}&hm={self._sign(att_id, issued, int(expires))}&"
        origin = self._origin()
        att = StoredAttachment(
            id=att_id, filename=filename, content_type=ctype, data=bytes(data),
            url=f"{origin}{path}{query}", proxy_url=f"{origin}/media{path}{query}",
            description=description, width=width, height=height, ephemeral=ephemeral,
            expires_at=expires, path=path,
        )
        self.files[att_id] = att
        return att

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/attachments/{channel}/{att}/{name}", self.serve),
            web.get("/ephemeral-attachments/{channel}/{att}/{name}", self.serve),
            web.get("/media/{kind}/{channel}/{att}/{name}", self.serve),
        ]

    async def serve(self, request: web.Request) -> web.StreamResponse:
        status, body, ctype = 404, b"This content is no longer available.", "text/plain"
        att_id: int | None = None
        try:
            att_id = int(request.match_info["att"])
        except ValueError:
            att_id = None
        att = self.files.get(att_id) if att_id is not None else None
        if att is not None and self._valid(att, request):
            status, body, ctype = 200, att.data, att.content_type
        self.downloads.append(DownloadRecord(att_id, request.path, time.monotonic(), status))
        self._on_change()
        if status != 200:
            return web.Response(status=status, body=body, content_type=ctype)
        return web.Response(body=body, headers={"Content-Type": ctype})

    def _valid(self, att: StoredAttachment, request: web.Request) -> bool:
        try:
            expires = int(request.query["ex"], 16)
            issued = int(request.query["is"], 16)
        except (KeyError, ValueError):
            return False
        if not hmac.compare_digest(request.query.get("hm", ""),
                                   self._sign(att.id, issued, expires)):
            return False
        return time.time() < expires and (att.expires_at is None or time.time() < att.expires_at)
