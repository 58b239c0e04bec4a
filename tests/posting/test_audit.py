"""Audit lines: one compact line per request, refusal and outcome (pure formatting)."""

from __future__ import annotations

from typing import Any

from bot.jobs.types import JobUpdate, Phase
from bot.posting.audit import excerpt, outcome_line, refusal_line, request_line
from bot.store import Charge, Job, JobState

JOB_ID = "0123456789abcdef" * 2


def job(**changes: Any) -> Job:
    fields: dict[str, Any] = {
        "id": JOB_ID, "token_hash": "h", "guild_id": 1, "channel_id": 2, "user_id": 3,
        "provider": "apixo", "model": "sora-2", "mode": "text-to-video",
        "prompt": "a fox\nin the `snow` <@&5>", "duration": 8, "orientation": "landscape",
        "image_path": None, "state": JobState.RESERVED, "charge": Charge.RESERVED,
        "seconds": 8, "price_per_second": 0.09, "price_micros": 720_000,
        "task_id": None, "task_hint": None,
        "video_url": None, "video_path": None, "error_code": None, "error_message": None,
        "context": {}, "message_id": None, "created_at": 0.0, "updated_at": 0.0,
        "submitted_at": None, "finished_at": None,
    }
    fields.update(changes)
    return Job(**fields)


def test_request_line() -> None:
    line = request_line(job())
    assert line == ("🎬 request `01234567` · <@3> · <#2> · `sora-2` on apixo · 8 s · est. $0.72 · "
                    "`a fox in the ˋsnowˋ <@&5>`")
    assert "\n" not in line


def test_excerpts_are_short_code_spans_and_spoilers_when_hidden() -> None:
    long = excerpt("word " * 100)
    assert long.startswith("`word") and long.endswith("…`") and len(long) <= 82
    assert excerpt("bad", hidden=True) == "||`bad`||"
    assert excerpt("") == "` `"


def test_refusal_line_names_rule_and_reason() -> None:
    line = refusal_line(user_id=3, channel_id=2, model="sora-2", seconds=12, cost=1.08,
                        prompt="a bad fox", rule="blocklist",
                        reason="Your prompt contains a term this server does not allow.",
                        hide_prompt=True)
    assert line == ("⛔ refused · <@3> · <#2> · `sora-2` · 12 s · est. $1.08 · "
                    "||`a bad fox`|| · rule: blocklist · Your prompt contains a term this "
                    "server does not allow.")
    unknown = refusal_line(user_id=3, channel_id=None, model="nope", seconds=None, cost=None,
                           prompt="x", rule="options", reason="There is no model called nope")
    assert unknown == "⛔ refused · <@3> · `nope` · `x` · rule: options · There is no model " \
                      "called nope"


def test_outcome_lines() -> None:
    done = job(state=JobState.DELIVERED, charge=Charge.COMMITTED, message_id=9)
    assert outcome_line(JobUpdate(done, Phase.DONE)) == (
        "✅ done `01234567` · <@3> · `sora-2` on apixo · 8 s · est. $0.72 · "
        "[video](https://discord.com/channels/1/2/9)"
    )
    failed = job(state=JobState.FAILED, charge=Charge.REFUNDED)
    assert outcome_line(JobUpdate(failed, Phase.FAILED, message="Refused by the provider.",
                                  refunded=True)) == (
        "❌ failed `01234567` · <@3> · `sora-2` on apixo · 8 s · 8 s refunded · "
        "Refused by the provider."
    )
    kept = job(state=JobState.CANCELLED, charge=Charge.COMMITTED)
    assert outcome_line(JobUpdate(kept, Phase.CANCELLED, message="Cancelled by a moderator.")) \
        == ("🛑 cancelled `01234567` · <@3> · `sora-2` on apixo · 8 s · not refunded, est. $0.72 · "
            "Cancelled by a moderator.")
    free = job(price_per_second=None, price_micros=None, state=JobState.DELIVERED,
               charge=Charge.COMMITTED)
    assert "cost unknown" in (outcome_line(JobUpdate(free, Phase.DONE)) or "")


def test_progress_updates_make_no_line() -> None:
    for phase in (Phase.QUEUED, Phase.SUBMITTING, Phase.RENDERING, Phase.DOWNLOADING,
                  Phase.POSTING):
        assert outcome_line(JobUpdate(job(), phase)) is None
