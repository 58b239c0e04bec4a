"""Interaction responses and the interaction webhook (follow-ups, @original).

Callback (POST /interactions/{id}/{token}/callback, no auth, as discord.py sends it):
every attempt is recorded with its time since dispatch. A second response -> 400 40060
"Interaction has already been acknowledged."; a first response later than the ack deadline
(3 s) -> 404 10062 "Unknown interaction". ``?with_response=1`` (discord.py always asks)
returns the InteractionCallbackResponse object; otherwise 204.

Webhook (/webhooks/{app}/{token}...): unknown token or an interaction never acknowledged ->
404 10015 Unknown Webhook; token older than ``interaction_token_ttl_s`` -> 401 50027 Invalid
Webhook Token. The first follow-up after a deferred (thinking) response fills the loading
message instead of creating a new one (Discord's behaviour). Interaction responses are not
subject to the bot's channel permissions; files are checked against the interaction's
``attachment_size_limit`` (413 40005).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .bodies import (
    ApiError,
    check_file_sizes,
    form_error,
    json_response,
    read_body,
    unknown,
    validate_message,
)
from .models import FLAG_EPHEMERAL, FLAG_LOADING, CallbackRecord, InteractionRecord, Message

if TYPE_CHECKING:
    from .server import FakeDiscord

# interaction type -> callback types Discord accepts for it
ALLOWED_CALLBACKS = {2: {4, 5, 9, 12}, 3: {4, 5, 6, 7, 9, 12}, 4: {8}, 5: {4, 5, 6, 7, 12}}


class WebhookApi:
    def __init__(self, fd: FakeDiscord) -> None:
        self.fd = fd

    def routes(self, prefix: str) -> list[web.RouteDef]:
        w = f"{prefix}/webhooks/{{app_id}}/{{token}}"
        return [
            web.post(f"{prefix}/interactions/{{interaction_id}}/{{token}}/callback",
                     self.callback),
            web.post(w, self.followup),
            web.get(f"{w}/messages/{{message_id}}", self.get_message),
            web.patch(f"{w}/messages/{{message_id}}", self.edit_message),
            web.delete(f"{w}/messages/{{message_id}}", self.delete_message),
        ]

    # -- callback -------------------------------------------------------------------------
    async def callback(self, request: web.Request) -> web.Response:
        fd = self.fd
        now = time.monotonic()
        try:
            record = fd.interactions.get(int(request.match_info["interaction_id"]))
        except ValueError:
            record = None
        if record is None or record.token != request.match_info["token"]:
            raise unknown("interaction", 10062)
        elapsed = None if record.dispatched_at is None else now - record.dispatched_at
        entry = CallbackRecord(None, None, now, elapsed)
        record.callbacks.append(entry)
        fd.changed()
        try:
            body, files = await read_body(request)
            entry.type, entry.data = body.get("type"), body.get("data")
            result = self._respond(record, body, files, elapsed)
        except ApiError as err:
            entry.status, entry.error_code = err.status, err.code
            raise
        entry.status = 200 if request.query.get("with_response") in ("1", "true") else 204
        fd.changed()
        if entry.status == 204:
            return web.Response(status=204)
        return json_response(result)

    def _respond(self, record: InteractionRecord, body: dict[str, Any], files: list[Any],
                 elapsed: float | None) -> dict[str, Any]:
        fd = self.fd
        if record.acknowledged:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if elapsed is None or elapsed > fd.interaction_ack_deadline_s:
            raise unknown("interaction", 10062)
        rtype, data = body.get("type"), body.get("data") or {}
        if rtype not in ALLOWED_CALLBACKS.get(record.type, set()):
            raise form_error("type", "INTERACTION_RESPONSE_TYPE_INVALID",
                             "Interaction response type is invalid for this interaction")
        message: Message | None = None
        ephemeral = bool(int(data.get("flags") or 0) & FLAG_EPHEMERAL)
        if rtype == 4:
            validate_message(data, files, creating=True)
            check_file_sizes(files, record.attachment_size_limit)
            message = self._original(record, data, files, extra_flags=0)
        elif rtype == 5:
            message = self._original(record, {"flags": data.get("flags")}, [],
                                     extra_flags=FLAG_LOADING)
        elif rtype in (6, 7):
            message = fd.store.get(record.message_id or 0)
            record.original_message_id = record.message_id
            if rtype == 7 and message is not None:
                validate_message(data, files, creating=False)
                check_file_sizes(files, record.attachment_size_limit)
                fd.store.edit(message, data, files)
            ephemeral = bool(message and message.ephemeral)
        record.response_type = rtype
        interaction: dict[str, Any] = {"id": str(record.id), "type": record.type}
        resource: dict[str, Any] = {"type": rtype}
        if message is not None and rtype in (4, 5, 6, 7):
            interaction["response_message_id"] = str(message.id)
            interaction["response_message_loading"] = rtype == 5
            interaction["response_message_ephemeral"] = ephemeral
            if rtype in (4, 7):
                resource["message"] = fd.store.payload(message)
        return {"interaction": interaction, "resource": resource}

    def _original(self, record: InteractionRecord, data: dict[str, Any], files: list[Any], *,
                  extra_flags: int) -> Message:
        fd = self.fd
        message = fd.store.create(
            record.channel_id or 0, data, files, author_id=fd.bot_user_id,
            source="interaction", interaction=record, extra_flags=extra_flags,
            msg_type=20 if record.type == 2 else 0)
        record.original_message_id = message.id
        return message

    # -- webhook --------------------------------------------------------------------------
    def _record(self, request: web.Request) -> InteractionRecord:
        fd = self.fd
        record = fd.interaction_by_token(request.match_info["token"])
        if record is None or request.match_info["app_id"] != str(fd.application_id):
            raise unknown("Webhook", 10015)
        start = record.dispatched_at if record.dispatched_at is not None else 0.0
        if time.monotonic() - start > fd.interaction_token_ttl_s:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if not record.acknowledged:
            raise unknown("Webhook", 10015)
        return record

    def _target(self, request: web.Request, record: InteractionRecord) -> Message:
        raw = request.match_info["message_id"]
        if raw == "@original":
            mid = record.original_message_id
        else:
            try:
                mid = int(raw)
            except ValueError:
                raise unknown("Message", 10008) from None
            if mid != record.original_message_id and mid not in record.followup_ids:
                raise unknown("Message", 10008)
        message = self.fd.store.get(mid or 0)
        if message is None:
            raise unknown("Message", 10008)
        return message

    async def followup(self, request: web.Request) -> web.Response:
        fd = self.fd
        record = self._record(request)
        payload, files = await read_body(request)
        validate_message(payload, files, creating=True)
        check_file_sizes(files, record.attachment_size_limit)
        original = fd.store.get(record.original_message_id or 0)
        if original is not None and original.loading and original.source == "interaction":
            message = fd.store.edit(original, payload, files, clear_loading=True)
        else:
            message = fd.store.create(
                record.channel_id or 0, payload, files, author_id=fd.bot_user_id,
                source="followup", interaction=record)
            record.followup_ids.append(message.id)
        if request.query.get("wait") in ("1", "true", "True"):
            return json_response(fd.store.payload(message))
        return web.Response(status=204)

    async def get_message(self, request: web.Request) -> web.Response:
        record = self._record(request)
        return json_response(self.fd.store.payload(self._target(request, record)))

    async def edit_message(self, request: web.Request) -> web.Response:
        fd = self.fd
        record = self._record(request)
        message = self._target(request, record)
        headers = fd.check_edit_rate(f"PATCH /webhooks/{fd.application_id}/{record.token}")
        payload, files = await read_body(request)
        validate_message(payload, files, creating=False)
        check_file_sizes(files, record.attachment_size_limit)
        fd.store.edit(message, payload, files, clear_loading=True)
        return json_response(fd.store.payload(message), headers=headers)

    async def delete_message(self, request: web.Request) -> web.Response:
        record = self._record(request)
        self.fd.store.delete(self._target(request, record))
        return web.Response(status=204)
