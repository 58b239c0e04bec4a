"""The per-guild moderation data the store hands out. Plain data, no I/O."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EntryKind = Literal["word", "pattern"]


class GuildPolicy(BaseModel):
    """What ``/settings`` sets. Empty tuples mean "no restriction"."""

    model_config = ConfigDict(frozen=True)

    channels: tuple[int, ...] = ()  # channels where videos can be made (empty: all)
    roles: tuple[int, ...] = ()  # roles allowed to make videos (empty: everyone)
    models: tuple[str, ...] = ()  # catalog ids allowed (empty: every model)
    max_duration: int | None = Field(default=None, ge=1)  # longest video, seconds
    cooldown_s: int = Field(default=0, ge=0)  # seconds between a member's requests
    max_queued: int | None = Field(default=None, ge=1)  # a member's unfinished jobs
    audit_channel_id: int | None = None

    @property
    def is_default(self) -> bool:
        return self == GuildPolicy()


class BlockEntry(BaseModel):
    """One blocked word/phrase (``key``: its normalised tokens) or pattern (``key``: the
    regular expression). ``value`` is what the moderator typed."""

    model_config = ConfigDict(frozen=True)

    id: int
    kind: EntryKind
    value: str
    key: str
    added_by: int | None = None
    added_at: float = 0.0


class BlockedMember(BaseModel):
    user_id: int
    reason: str | None = None
    blocked_by: int | None = None
    blocked_at: float = 0.0


class RuleSnapshot(BaseModel):
    """Everything the rule check needs about a guild and one member, read at once."""

    policy: GuildPolicy = GuildPolicy()
    entries: tuple[BlockEntry, ...] = ()
    blocked: BlockedMember | None = None
    last_request_at: float | None = None  # the member's latest job in this guild
    unfinished: int = 0  # the member's jobs in this guild that are not finished

    @property
    def has_patterns(self) -> bool:
        return any(entry.kind == "pattern" for entry in self.entries)


class ForgetResult(BaseModel):
    """What ``/forget-me`` removed: prompts replaced, image files to delete."""

    prompts: int
    image_paths: list[str]
    unfinished: int  # jobs still running, whose prompts are needed until they end
