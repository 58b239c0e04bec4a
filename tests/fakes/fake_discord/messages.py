"""The message store: create, edit, delete, render, and tell the gateway (like Discord).

MESSAGE_CREATE / MESSAGE_UPDATE / MESSAGE_DELETE go to sessions with the GUILD_MESSAGES
intent; ephemeral messages are never dispatched (Discord only shows them to the member).
``enforce_nonce`` is honoured: a repeated nonce from the same author within a few minutes
returns the first message instead of creating a second one.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .bodies import UploadedFile, kept_attachment_ids, uploads_by_index
from .gateway import INTENT_GUILD_MESSAGES
from .models import FLAG_EPHEMERAL, FLAG_LOADING, InteractionRecord, Message

if TYPE_CHECKING:
    from .server import FakeDiscord

NONCE_WINDOW_S = 120.0
EDITABLE = ("content", "embeds", "components", "allowed_mentions")


class MessageStore:
    def __init__(self, fd: FakeDiscord) -> None:
        self.fd = fd
        self.by_id: dict[int, Message] = {}
        self._nonces: dict[tuple[int, str], tuple[float, int]] = {}

    def in_channel(self, channel_id: int, *, include_deleted: bool = False,
                   include_ephemeral: bool = False) -> list[Message]:
        return sorted(
            (m for m in self.by_id.values() if m.channel_id == channel_id
             and (include_deleted or not m.deleted) and (include_ephemeral or not m.ephemeral)),
            key=lambda m: m.id,
        )

    def get(self, message_id: int) -> Message | None:
        msg = self.by_id.get(message_id)
        return None if msg is None or msg.deleted else msg

    def interaction_of(self, msg: Message) -> InteractionRecord | None:
        if msg.interaction_id is None:
            return None
        return self.fd.interactions.get(msg.interaction_id)

    def payload(self, msg: Message) -> dict[str, Any]:
        return msg.payload(self.fd.world, self.interaction_of(msg))

    # -- changes --------------------------------------------------------------------------
    def create(self, channel_id: int, payload: dict[str, Any], files: list[UploadedFile], *,
               author_id: int, source: str = "channel",
               interaction: InteractionRecord | None = None,
               extra_flags: int = 0, drop_embeds: bool = False, msg_type: int = 0,
               dispatch: bool = True) -> Message:
        nonce = payload.get("nonce")
        if nonce is not None and payload.get("enforce_nonce"):
            seen = self._nonces.get((author_id, str(nonce)))
            if seen and time.monotonic() - seen[0] < NONCE_WINDOW_S and self.get(seen[1]):
                return self.by_id[seen[1]]
        guild = self.fd.world.guild_of(channel_id)
        flags = (int(payload.get("flags") or 0) & ~FLAG_LOADING) | extra_flags
        msg = Message(
            id=self.fd.ids.next(), channel_id=channel_id,
            guild_id=guild.id if guild else None, author_id=author_id,
            content=payload.get("content") or "", components=payload.get("components") or [],
            allowed_mentions=payload.get("allowed_mentions"), flags=flags,
            type=19 if payload.get("message_reference") else msg_type,
            tts=bool(payload.get("tts")), nonce=str(nonce) if nonce is not None else None,
            message_reference=payload.get("message_reference"), source=source,
            interaction_id=interaction.id if interaction else None,
            webhook_id=self.fd.application_id if interaction else None,
            request_payload=payload,
        )
        embeds = payload.get("embeds") or []
        msg.embeds, msg.embeds_dropped = ([], True) if drop_embeds and embeds else (embeds, False)
        msg.attachments = self._new_attachments(msg, payload, files)
        self.by_id[msg.id] = msg
        if nonce is not None:
            self._nonces[(author_id, str(nonce))] = (time.monotonic(), msg.id)
        channel = self.fd.world.channel(channel_id)
        if channel is not None and not msg.ephemeral:
            channel.last_message_id = msg.id
        if dispatch:
            self.dispatch("MESSAGE_CREATE", msg)
        self.fd.changed()
        return msg

    def edit(self, msg: Message, payload: dict[str, Any], files: list[UploadedFile], *,
             drop_embeds: bool = False, clear_loading: bool = False) -> Message:
        was_loading = msg.loading
        for key in EDITABLE:
            if key in payload:
                value = payload[key]
                if key == "content":
                    value = value or ""
                elif key in ("embeds", "components"):
                    value = value or []
                setattr(msg, key, value)
        if drop_embeds and msg.embeds:
            msg.embeds, msg.embeds_dropped = [], True
        if "flags" in payload and payload["flags"] is not None:
            # only SUPPRESS_EMBEDS (and the components-v2 bit) can be changed by an edit
            keep = msg.flags & ~((1 << 2) | (1 << 15))
            msg.flags = keep | (int(payload["flags"]) & ((1 << 2) | (1 << 15)))
        kept = kept_attachment_ids(payload, files)
        if kept is not None:
            msg.attachments = [a for a in msg.attachments if a.id in kept]
        msg.attachments.extend(self._new_attachments(msg, payload, files))
        if clear_loading:
            msg.flags &= ~FLAG_LOADING
        if not was_loading:
            msg.edited_at = datetime.now(UTC)
        msg.edits += 1
        msg.request_payload = payload
        self.dispatch("MESSAGE_UPDATE", msg)
        self.fd.changed()
        return msg

    def delete(self, msg: Message) -> None:
        msg.deleted = True
        if not msg.ephemeral:
            data: dict[str, Any] = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
            if msg.guild_id:
                data["guild_id"] = str(msg.guild_id)
            self.fd.gateway.dispatch("MESSAGE_DELETE", data, intent=INTENT_GUILD_MESSAGES)
        self.fd.changed()

    def dispatch(self, event: str, msg: Message) -> None:
        if msg.ephemeral:
            return
        data = self.payload(msg)
        if msg.guild_id:
            data["guild_id"] = str(msg.guild_id)
            member = self.fd.world.guilds[msg.guild_id].members.get(msg.author_id)
            if member is not None:
                data["member"] = member.payload(self.fd.world, with_user=False)
        self.fd.gateway.dispatch(event, data, intent=INTENT_GUILD_MESSAGES)

    def _new_attachments(self, msg: Message, payload: dict[str, Any],
                         files: list[UploadedFile]) -> list[Any]:
        out = []
        for upload, filename, description in uploads_by_index(payload, files):
            out.append(self.fd.cdn.store(
                msg.channel_id, filename, upload.data, content_type=upload.content_type,
                description=description, ephemeral=msg.ephemeral))
        return out


def is_ephemeral(flags: Any) -> bool:
    try:
        return bool(int(flags or 0) & FLAG_EPHEMERAL)
    except (TypeError, ValueError):
        return False
