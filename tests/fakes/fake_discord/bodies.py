"""Discord's error bodies, request-body parsing (JSON or multipart) and message validation.

Error bodies are Discord's: ``{"message": ..., "code": ...}`` plus ``errors`` for 50035.
Multipart is what discord.py sends (http.py ``handle_message_parameters``): a ``payload_json``
part and ``files[n]`` parts, with ``payload.attachments = [{"id": n, "filename": ...}]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web


def json_response(data: Any, *, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    """Exactly ``Content-Type: application/json`` (no charset), as Discord sends it:
    discord.py's ``json_or_text`` compares the header verbatim and otherwise returns text."""
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={**(headers or {}), "Content-Type": "application/json"})


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, *,
                 errors: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message = status, code, message
        self.errors, self.headers, self.extra = errors, headers or {}, extra

    def response(self) -> web.Response:
        body: dict[str, Any] = {"message": self.message}
        if self.status != 429:  # Discord's 429 body: {message, retry_after, global}
            body["code"] = self.code
        if self.errors:
            body["errors"] = self.errors
        if self.extra:
            body.update(self.extra)
        return json_response(body, status=self.status, headers=self.headers)


def unauthorized() -> ApiError:
    return ApiError(401, 0, "401: Unauthorized")


def not_found() -> ApiError:
    return ApiError(404, 0, "404: Not Found")


def unknown(what: str, code: int) -> ApiError:
    return ApiError(404, code, f"Unknown {what}")


def missing_access() -> ApiError:
    return ApiError(403, 50001, "Missing Access")


def missing_permissions() -> ApiError:
    return ApiError(403, 50013, "Missing Permissions")


def too_large() -> ApiError:
    return ApiError(413, 40005, "Request entity too large")


def form_error(path: str, code: str, message: str) -> ApiError:
    errors: dict[str, Any] = {}
    node = errors
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = {"_errors": [{"code": code, "message": message}]}
    return ApiError(400, 50035, "Invalid Form Body", errors=errors)


@dataclass
class UploadedFile:
    index: int
    filename: str
    content_type: str | None
    data: bytes


async def read_body(request: web.Request) -> tuple[dict[str, Any], list[UploadedFile]]:
    """The JSON payload and any uploaded files of a request."""
    ctype = request.content_type
    if ctype.startswith("multipart/"):
        payload: dict[str, Any] = {}
        files: list[UploadedFile] = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            name = getattr(part, "name", None) or ""
            data = await part.read()  # type: ignore[union-attr]
            if name == "payload_json":
                payload = _loads(data)
            elif name.startswith("files[") or name.startswith("file"):
                digits = "".join(ch for ch in name if ch.isdigit())
                index = int(digits) if digits else len(files)
                filename = getattr(part, "filename", None) or f"file{index}"
                files.append(UploadedFile(index, filename,
                                          part.headers.get("Content-Type"), bytes(data)))
        return payload, files
    raw = await request.read()
    if not raw:
        return {}, []
    return _loads(raw), []


def _loads(raw: bytes | bytearray) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
    if not isinstance(value, dict):
        raise ApiError(400, 50109, "The request body contains invalid JSON.")
    return value


EMBED_LIMITS = {"title": 256, "description": 4096}


def validate_message(payload: dict[str, Any], files: list[UploadedFile], *,
                     creating: bool) -> None:
    """Discord's checks on message bodies (sizes, counts, emptiness)."""
    content = payload.get("content")
    if content is not None and not isinstance(content, str):
        raise form_error("content", "STRING_TYPE_CONVERT", "Could not interpret value as string.")
    if content is not None and len(content) > 2000:
        raise form_error("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    embeds = payload.get("embeds") or []
    if len(embeds) > 10:
        raise form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    total = 0
    for i, embed in enumerate(embeds):
        for key, limit in EMBED_LIMITS.items():
            if len(embed.get(key) or "") > limit:
                raise form_error(f"embeds.{i}.{key}", "BASE_TYPE_MAX_LENGTH",
                                 f"Must be {limit} or fewer in length.")
        if len(embed.get("fields") or []) > 25:
            raise form_error(f"embeds.{i}.fields", "BASE_TYPE_MAX_LENGTH",
                             "Must be 25 or fewer in length.")
        total += len(embed.get("title") or "") + len(embed.get("description") or "")
        total += sum(len(f.get("name", "")) + len(f.get("value", ""))
                     for f in embed.get("fields") or [])
        total += len((embed.get("footer") or {}).get("text", ""))
        total += len((embed.get("author") or {}).get("name", ""))
    if total > 6000:
        raise form_error("embeds", "MAX_EMBED_SIZE_EXCEEDED",
                         "Embed size exceeds maximum size of 6000")
    if len(files) > 10:
        raise form_error("files", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    if len(payload.get("components") or []) > 40:
        raise form_error("components", "BASE_TYPE_MAX_LENGTH", "Must be 40 or fewer in length.")
    if creating and not (content or embeds or files or payload.get("components")
                         or payload.get("sticker_ids") or payload.get("poll")):
        raise ApiError(400, 50006, "Cannot send an empty message")


def check_file_sizes(files: list[UploadedFile], limit: int) -> None:
    for upload in files:
        if len(upload.data) > limit:
            raise too_large()


def uploads_by_index(payload: dict[str, Any], files: list[UploadedFile],
                     ) -> list[tuple[UploadedFile, str, str | None]]:
    """New files as (upload, filename, description), following ``payload.attachments``."""
    by_index = {f.index: f for f in files}
    entries = payload.get("attachments")
    if entries is None:
        return [(f, f.filename, None) for f in files]
    out = []
    used: set[int] = set()
    for entry in entries:
        try:
            index = int(entry.get("id"))
        except (TypeError, ValueError):
            continue
        if index in by_index and index not in used:
            used.add(index)
            out.append((by_index[index], entry.get("filename") or by_index[index].filename,
                        entry.get("description")))
    out.extend((f, f.filename, None) for f in files if f.index not in used)
    return out


def kept_attachment_ids(payload: dict[str, Any], files: list[UploadedFile]) -> set[int] | None:
    """Existing attachment ids an edit keeps (None: the edit does not touch attachments)."""
    entries = payload.get("attachments")
    if entries is None:
        return None
    indexes = {f.index for f in files}
    kept = set()
    for entry in entries:
        try:
            value = int(entry.get("id"))
        except (TypeError, ValueError):
            continue
        if value not in indexes or value > 1_000_000:
            kept.add(value)
    return kept
