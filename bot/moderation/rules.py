"""The moderation rules, checked before any charge: pure, no I/O, no Discord types.

``check_request`` evaluates the rules in a fixed order and raises ``RuleRefusal`` (a
``bot.jobs.intake.Refusal`` that names its ``rule``) at the first that refuses:

1. blocked member   2. channel   3. role   4. model   5. duration
6. blocklist        7. cooldown  8. queued jobs per member

Who is asking comes first (a blocked member hears that, wherever they ask), then where and
with what, then what they asked for, and last how often: a refused request writes nothing,
so it never starts a cooldown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from bot.jobs.intake import Refusal
from bot.moderation.blocklist import find_blocked
from bot.moderation.policy import RuleSnapshot

LISTED_MAX = 5  # channels/roles/models named in a refusal


class Rule(StrEnum):
    BLOCKED = "blocked member"
    CHANNEL = "channel"
    ROLE = "role"
    MODEL = "model"
    DURATION = "duration"
    BLOCKLIST = "blocklist"
    COOLDOWN = "cooldown"
    QUEUED = "queued jobs"


ORDER: tuple[Rule, ...] = tuple(Rule)


class RuleRefusal(Refusal):
    """A moderation rule refused the request; nothing was charged."""

    def __init__(self, rule: Rule, user_message: str, *, retry_at: float | None = None) -> None:
        super().__init__(user_message)
        self.rule = rule
        self.retry_at = retry_at


@dataclass(frozen=True)
class RequestFacts:
    """One request, as plain values."""

    guild_id: int
    user_id: int
    channel_ids: tuple[int, ...]  # the channel, and its parent for a thread
    model: str
    duration: int
    prompt: str
    role_ids: frozenset[int] = field(default_factory=frozenset)


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:LISTED_MAX])
    more = len(items) - LISTED_MAX
    return f"{shown} and {more} more" if more > 0 else shown


def check_request(facts: RequestFacts, snapshot: RuleSnapshot, now: float) -> None:
    """Raise RuleRefusal for the first rule that refuses; return when all allow."""
    policy = snapshot.policy
    if snapshot.blocked is not None:
        raise RuleRefusal(
            Rule.BLOCKED,
            "You are blocked from making videos in this server. Nothing was charged; ask a "
            "moderator if you think this is a mistake.",
        )
    if policy.channels and not set(facts.channel_ids) & set(policy.channels):
        where = _listed([f"<#{c}>" for c in policy.channels])
        raise RuleRefusal(
            Rule.CHANNEL, f"This channel is not one where videos can be made; try {where}."
        )
    # The @everyone role's id is the guild's: listing it allows every member.
    if policy.roles and not ({facts.guild_id, *facts.role_ids} & set(policy.roles)):
        roles = _listed([f"<@&{r}>" for r in policy.roles])
        raise RuleRefusal(
            Rule.ROLE, f"Videos here can be made by members with one of these roles: {roles}."
        )
    if policy.models and facts.model not in policy.models:
        allowed = _listed([f"`{m}`" for m in policy.models])
        raise RuleRefusal(
            Rule.MODEL,
            f"The model `{facts.model}` is not allowed in this server; choose {allowed} "
            "with the model option.",
        )
    if policy.max_duration is not None and facts.duration > policy.max_duration:
        raise RuleRefusal(
            Rule.DURATION,
            f"Videos here are limited to {policy.max_duration} s; please pick a shorter length.",
        )
    verdict = find_blocked(facts.prompt, snapshot.entries)
    if verdict.timed_out:
        raise RuleRefusal(
            Rule.BLOCKLIST,
            "Your prompt could not be checked against this server's prompt rules in time; "
            "please shorten or rephrase it.",
        )
    if verdict.entry is not None:
        raise RuleRefusal(
            Rule.BLOCKLIST,
            "Your prompt contains a term this server does not allow; please rephrase it.",
        )
    if policy.cooldown_s and snapshot.last_request_at is not None:
        retry_at = snapshot.last_request_at + policy.cooldown_s
        if now < retry_at:
            raise RuleRefusal(
                Rule.COOLDOWN,
                f"Slow down: this server allows one request every {policy.cooldown_s} s. "
                f"You can ask again <t:{int(retry_at) + 1}:R>.",
                retry_at=retry_at,
            )
    if policy.max_queued is not None and snapshot.unfinished >= policy.max_queued:
        raise RuleRefusal(
            Rule.QUEUED,
            f"You already have {snapshot.unfinished} video(s) on the way, this server's limit "
            "per member. Wait for one to finish, or stop one with /cancel.",
        )
