"""What the provider emulators record: the requests they answered, the callbacks they
tried, and the tasks they run (whose life is computed from elapsed time). Re-exported by
``common``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .media import ImageInfo


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any | None
    query: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class CallbackAttempt:
    task_id: str
    url: str
    kind: str  # "early" (sent at create time), "final" (at completion), or a provider's own
    # event such as Replicate's "start"
    copy: int  # 0, or 1.. for the extra copies of callback_mode="duplicate"
    attempt: int  # 1-based retry counter
    payload: dict[str, Any]
    status: int | None = None  # HTTP status the receiver answered, None if no answer
    error: str | None = None

    @property
    def delivered(self) -> bool:
        """The receiver took it (any 2xx); anything else is retried."""
        return self.status is not None and 200 <= self.status < 300


@dataclass
class FakeTask:
    id: str
    model: str
    body: dict[str, Any]
    outcome: str
    queue_s: float
    task_s: float
    duration: int
    video_size: tuple[int, int]  # (width, height) of the served MP4
    callback_urls: list[str] = field(default_factory=list)
    image_info: ImageInfo | None = None
    prompt: str = ""
    created_mono: float = field(default_factory=time.monotonic)
    created_wall: float = field(default_factory=time.time)
    finished: bool = False  # completion handled (callbacks started)
    extra: dict[str, Any] = field(default_factory=dict)

    def phase(self, now: float | None = None) -> str:
        """'queued', 'processing' or 'done'."""
        elapsed = (time.monotonic() if now is None else now) - self.created_mono
        if elapsed >= self.task_s:
            return "done"
        return "queued" if elapsed < self.queue_s else "processing"

    @property
    def succeeded(self) -> bool:
        return self.phase() == "done" and self.outcome == "success"

    @property
    def completed_wall(self) -> float:
        return self.created_wall + self.task_s
