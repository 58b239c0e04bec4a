"""What the fake stores and records: attachments, messages, interactions, syncs, requests."""

from __future__ import annotations

import io
import mimetypes
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .world import iso

if TYPE_CHECKING:
    from .world import World

FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_EMBEDS = 1 << 2


def guess_content_type(filename: str, declared: str | None = None) -> str:
    """Discord sniffs the type; discord.py always declares application/octet-stream."""
    if declared and declared != "application/octet-stream":
        return declared
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


def image_size(data: bytes, content_type: str) -> tuple[int | None, int | None]:
    if not content_type.startswith("image/"):
        return None, None
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            return img.width, img.height
    except Exception:
        return None, None


@dataclass
class StoredAttachment:
    """A file on the fake CDN: uploaded by the bot or hosted by a test (``fd.host_file``)."""

    id: int
    filename: str
    content_type: str
    data: bytes
    url: str
    proxy_url: str
    description: str | None = None
    width: int | None = None
    height: int | None = None
    ephemeral: bool = False
    expires_at: float | None = None  # time.time(); None = never
    path: str = ""

    @property
    def size(self) -> int:
        return len(self.data)

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id), "filename": self.filename, "size": self.size, "url": self.url,
            "proxy_url": self.proxy_url, "content_type": self.content_type,
            "width": self.width, "height": self.height,
        }
        if self.description is not None:
            data["description"] = self.description
        if self.ephemeral:
            data["ephemeral"] = True
        return data


@dataclass
class Message:
    """A message as the fake holds it. ``source`` is "channel" (POST /channels/{id}/messages),
    "interaction" (an interaction callback: original response) or "followup"."""

    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[StoredAttachment] = field(default_factory=list)
    allowed_mentions: dict[str, Any] | None = None
    flags: int = 0
    type: int = 0
    tts: bool = False
    nonce: str | None = None
    message_reference: dict[str, Any] | None = None
    source: str = "channel"
    interaction_id: int | None = None
    webhook_id: int | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    edited_at: datetime | None = None
    deleted: bool = False
    embeds_dropped: bool = False
    edits: int = 0
    request_payload: dict[str, Any] = field(default_factory=dict)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & FLAG_LOADING)

    def payload(self, world: World, interaction: InteractionRecord | None = None,
                ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id), "channel_id": str(self.channel_id), "type": self.type,
            "content": self.content, "author": world.users[self.author_id].payload(),
            "attachments": [a.payload() for a in self.attachments], "embeds": self.embeds,
            "components": self.components, "mentions": [], "mention_roles": [],
            "mention_everyone": False, "pinned": False, "tts": self.tts,
            "timestamp": iso(self.created_at),
            "edited_timestamp": iso(self.edited_at) if self.edited_at else None,
            "flags": self.flags,
        }
        if self.nonce is not None:
            data["nonce"] = self.nonce
        if self.message_reference is not None:
            data["message_reference"] = self.message_reference
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
            data["application_id"] = str(self.webhook_id)
        if interaction is not None:
            user = world.users[interaction.user_id].payload()
            data["interaction_metadata"] = {
                "id": str(interaction.id), "type": interaction.type, "user": user,
                "authorizing_integration_owners": {"0": str(interaction.guild_id)},
            }
            if interaction.name:
                data["interaction_metadata"]["name"] = interaction.name
                data["interaction"] = {"id": str(interaction.id), "type": interaction.type,
                                       "name": interaction.name, "user": user}
        return data


@dataclass
class CallbackRecord:
    """One POST /interactions/{id}/{token}/callback, accepted or not."""

    type: int | None
    data: dict[str, Any] | None
    at: float  # time.monotonic() when received
    elapsed_s: float | None  # seconds since the interaction was dispatched
    status: int = 0
    error_code: int | None = None


@dataclass
class InteractionRecord:
    id: int
    token: str
    type: int
    payload: dict[str, Any]
    guild_id: int | None
    channel_id: int | None
    user_id: int
    attachment_size_limit: int
    name: str | None = None
    message_id: int | None = None  # the message a component interaction came from
    dispatched_at: float | None = None
    callbacks: list[CallbackRecord] = field(default_factory=list)
    response_type: int | None = None
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return self.response_type is not None


@dataclass
class CommandSync:
    """One PUT of the command list (bulk overwrite): global when ``guild_id`` is None."""

    guild_id: int | None
    commands: list[dict[str, Any]]
    at: float  # time.monotonic()
    wall: float  # time.time()

    @property
    def is_global(self) -> bool:
        return self.guild_id is None


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    at: float  # time.monotonic() on arrival
    status: int = 0
    authorized: bool = False


@dataclass
class DownloadRecord:
    attachment_id: int | None
    path: str
    at: float
    status: int
