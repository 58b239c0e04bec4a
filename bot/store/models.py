"""The rows the store hands out: jobs, their states and ledger movements."""

from __future__ import annotations

import os
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from bot.catalog.pricing import dollars, micros


class JobState(StrEnum):
    RESERVED = "reserved"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Charge(StrEnum):
    RESERVED = "reserved"
    COMMITTED = "committed"
    REFUNDED = "refunded"
    NONE = "none"


TERMINAL = frozenset({JobState.DELIVERED, JobState.FAILED, JobState.CANCELLED})
UNFINISHED = (JobState.RESERVED, JobState.SUBMITTING, JobState.SUBMITTED, JobState.SUCCEEDED)
_ENDABLE = UNFINISHED  # what fail_job/cancel_job may end
_CHARGED = ("reserved", "committed")


def _path_str(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


class NewJob(BaseModel):
    """What ``reserve`` needs to record a job."""

    guild_id: int | None
    channel_id: int | None = None
    user_id: int | None = None
    provider: str
    model: str
    mode: str
    prompt: str
    duration: int
    orientation: str
    image_path: str | None = None
    seconds: int = Field(ge=0)
    # The job's list price in micro-dollars (None: unknown); given per second instead,
    # it is that times the seconds.
    price_micros: int | None = Field(default=None, ge=0)
    price_per_second: float | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    # The process that will run the job holds its lease from the start.
    owner: str | None = None
    lease_until: float | None = None

    _path = field_validator("image_path", mode="before")(_path_str)

    @model_validator(mode="after")
    def _price(self) -> NewJob:
        if self.price_micros is None and self.price_per_second is not None:
            self.price_micros = micros(self.price_per_second * self.seconds)
        if self.price_micros is not None and self.price_per_second is None and self.seconds:
            self.price_per_second = round(self.price_micros / self.seconds / 1_000_000, 6)
        return self


class Job(BaseModel):
    """One row of ``jobs``; ``context`` is the Discord layer's opaque JSON, parsed."""

    id: str
    token_hash: str = Field(repr=False)
    guild_id: int | None
    channel_id: int | None
    user_id: int | None
    # Nullable columns that ``reserve`` always fills, hence typed as present.
    provider: str
    model: str
    mode: str
    prompt: str
    duration: int
    orientation: str
    image_path: str | None
    state: JobState
    charge: Charge
    seconds: int
    price_per_second: float | None
    price_micros: int | None = None  # the list price reserved with the seconds
    task_id: str | None
    task_hint: str | None
    video_url: str | None
    video_path: str | None
    error_code: str | None
    error_message: str | None
    context: dict[str, Any]
    message_id: int | None
    created_at: float
    updated_at: float
    submitted_at: float | None
    finished_at: float | None
    prompt_deleted_at: float | None = None  # /forget-me replaced the prompt
    owner: str | None = None  # the process holding the job's lease
    lease_until: float | None = None
    slot: int = 0  # 1 while the job holds one of its model's concurrent-task slots

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def cost(self) -> float | None:
        """The list price in US dollars, None when unknown."""
        return None if self.price_micros is None else dollars(self.price_micros)


class LedgerRow(BaseModel):
    id: int
    job_id: str | None
    guild_id: int | None
    user_id: int | None
    kind: Literal["reserve", "commit", "refund", "reset"]
    seconds: int
    cost: float | None
    created_at: float
    note: str | None
    money_micros: int | None = None  # reserved (+) or refunded (-) with the seconds
