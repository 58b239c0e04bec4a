"""Types shared by the job service and whoever drives it (the Discord layer, tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from bot.media.video import HeldVideo, VideoInfo
from bot.store import Job


class Phase(StrEnum):
    QUEUED = "queued"
    SUBMITTING = "submitting"
    RENDERING = "rendering"
    DOWNLOADING = "downloading"
    POSTING = "posting"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class JobUpdate:
    job: Job
    phase: Phase
    position: int | None = None  # place in the provider queue (1 = next)
    progress: float | None = None
    message: str | None = None  # a sentence for the member (failures, notes)
    refunded: bool = False


class DeliveryFailed(Exception):
    """The video could not be posted. ``permanent``: retrying cannot help."""

    def __init__(self, user_message: str, *, permanent: bool) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.permanent = permanent


# Posts the finished video and returns the new message's id. Called at least once per
# job: it must be idempotent by job id (a restart between posting and recording the
# post calls it again for the same job).
Deliver = Callable[[Job, HeldVideo, VideoInfo], Awaitable[int]]
OnUpdate = Callable[[JobUpdate], Awaitable[None]]
