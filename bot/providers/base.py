"""The provider contract: one request model in, one normalized status out."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from bot.catalog import Mode, ModelSpec, Orientation, Shape

if TYPE_CHECKING:
    import aiohttp


class SourceImage(BaseModel):
    """An image already checked and fitted to the model's image rules."""

    model_config = ConfigDict(frozen=True)

    data: bytes = Field(repr=False)
    mime: str  # image/jpeg, image/png or image/webp
    width: int
    height: int
    # A URL the provider can fetch it from; None when only a data URI will do.
    url: str | None = None

    def data_uri(self) -> str:
        import base64

        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


class GenerationRequest(BaseModel):
    """What a member asked for, validated against the catalog."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    duration: int
    orientation: Orientation = Orientation.LANDSCAPE
    image: SourceImage | None = None  # the start frame
    end_image: SourceImage | None = None  # the end frame (models that take one)
    negative_prompt: str | None = None
    seed: int | None = None
    audio: bool | None = None  # sound on or off; None: the model's own (no choice offered)

    @property
    def mode(self) -> Mode:
        return Mode.IMAGE if self.image is not None else Mode.TEXT

    @property
    def shape(self) -> Shape:
        if self.image is None:
            return Shape.TEXT
        return Shape.FRAMES if self.end_image is not None else Shape.IMAGE


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED)


class TaskStatus(BaseModel):
    """A provider task's status, the same whatever the provider."""

    task_id: str
    state: TaskState
    progress: float | None = None  # 0.0-1.0 when the provider says
    video_urls: list[str] = Field(default_factory=list)
    error_code: str | None = None
    # A sentence a chat member can read; set when state is FAILED.
    error_message: str | None = None


class CancelOutcome(StrEnum):
    """What asking a provider to cancel a task came to."""

    CANCELLED = "cancelled"  # confirmed: the task stopped and nothing is charged
    REQUESTED = "requested"  # asked; the task's final status tells how it ended
    FINISHED = "finished"  # too late: the task had already ended
    UNSUPPORTED = "unsupported"  # the API cannot cancel a task


@dataclass(frozen=True)
class WebhookNews:
    """What a verified (signed) webhook says: which task, and its final status when the
    webhook carries it (None for a non-final event or one without a usable result)."""

    task_id: str
    status: TaskStatus | None = None


class VideoProvider(abc.ABC):
    """One adapter per provider API. All adapters share one aiohttp ClientSession."""

    name: str
    # True: the provider signs its webhooks, and ``read_webhook`` verifies them (a verified
    # webhook may carry the result). False: a callback is only a hint (``parse_callback``).
    signed_webhooks = False

    @abc.abstractmethod
    async def submit(
        self, spec: ModelSpec, request: GenerationRequest, callback_url: str | None = None
    ) -> str:
        """Create a task and return its provider task id.

        Raises a ProviderError; SubmitUncertain when the task may exist anyway.
        """

    @abc.abstractmethod
    async def status(self, spec: ModelSpec, task_id: str) -> TaskStatus:
        """Ask the provider for a task's status (retrying transient failures)."""

    @abc.abstractmethod
    def parse_callback(self, body: bytes) -> str | None:
        """The task id a callback body names, or None. Only a hint: never trusted."""

    @abc.abstractmethod
    async def check_key(self) -> None:
        """Make one cheap authenticated call; raise AuthenticationFailed on a bad key."""

    async def read_webhook(self, headers: Mapping[str, str], body: bytes) -> WebhookNews:
        """Verify a signed webhook over its raw body, then say what it tells (signed
        providers only). Raises WebhookRejected (refused with a 4xx, nothing changes) or
        WebhookUnverifiable (the keys could not be fetched: the provider retries later)."""
        raise NotImplementedError(f"{self.name} does not sign its webhooks")

    def task_key(self, task_id: str) -> str:
        """The part of a stored task id a webhook names (the id itself, for most)."""
        return task_id

    async def cancel(self, spec: ModelSpec, task_id: str) -> CancelOutcome:
        """Ask the provider to stop a task; most APIs cannot."""
        return CancelOutcome.UNSUPPORTED

    async def download(
        self, session: aiohttp.ClientSession, url: str, dest: Path, max_bytes: int
    ) -> int:
        """Stream a result to ``dest``; return its size. Overridden by the sandbox."""
        from bot.providers.download import download_to_file

        return await download_to_file(session, url, dest, max_bytes)

    async def fetch_result(
        self, session: aiohttp.ClientSession, url: str, dest: Path, max_bytes: int, *,
        keep_in_memory: int,
    ) -> bytes | None:
        """A result for posting: its bytes when it is at most ``keep_in_memory`` bytes
        (nothing written), else None once it is in ``dest``. Overridden by the sandbox."""
        from bot.providers.download import download_video

        return await download_video(
            session, url, dest, max_bytes, keep_in_memory=keep_in_memory
        )
