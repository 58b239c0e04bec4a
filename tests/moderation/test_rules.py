"""The moderation rules without Discord: normalisation, the blocklist, pattern time limits,
the rule order and the per-member gate."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.jobs.intake import Refusal
from bot.moderation.blocklist import (
    MATCH_BUDGET_S,
    PATTERN_MAX_CHARS,
    BadTerm,
    check_pattern,
    find_blocked,
    word_key,
)
from bot.moderation.gate import RuleGate
from bot.moderation.policy import BlockedMember, BlockEntry, GuildPolicy, RuleSnapshot
from bot.moderation.rules import ORDER, RequestFacts, Rule, RuleRefusal, check_request
from bot.moderation.text import normalise, term_key, views
from bot.quota import QuotaSettings
from bot.store import NewJob, Store
from cogs.errors import explain

GUILD, USER, CHANNEL, OTHER_CHANNEL, ROLE = 1, 2, 30, 31, 40
NOW = 1_700_000_000.0


def word(value: str, entry_id: int = 1) -> BlockEntry:
    return BlockEntry(id=entry_id, kind="word", value=value, key=word_key(value))


def pattern(value: str, entry_id: int = 1) -> BlockEntry:
    return BlockEntry(id=entry_id, kind="pattern", value=value, key=value)


# -- normalisation --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("ｂａｄ", "bad"),  # fullwidth
    ("bаd", "bad"),  # Cyrillic а
    ("ВАD", "bad"),  # Cyrillic capitals
    ("βαδ", "bad".replace("d", "δ")),  # Greek delta has no Latin twin: left alone
    ("ΗΕΥ", "hey"),  # Greek capitals look like Latin capitals
    ("bád", "bad"),  # accents
    ("b̶a̶d̶", "bad"),  # combining strike-through
    ("𝐛𝐚𝐝", "bad"),  # mathematical bold
    ("ⓑⓐⓓ", "bad"),  # circled
    ("ʙᴀᴅ", "bad"),  # small capitals
    ("b\u200ba\u200dd\u00ad", "bad"),  # zero-width space and joiner, soft hyphen
    ("BAD", "bad"),
])
def test_normalise_folds_look_alikes(text: str, expected: str) -> None:
    assert normalise(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("b.a.d", "bad"),
    ("b a d", "bad"),
    ("b - a - d", "bad"),
    ("ba-d", "bad"),
    ("B.A.D!", "bad"),
    ("b_a_d", "bad"),
])
def test_separator_tricks_join_up(text: str, expected: str) -> None:
    assert any(expected in view.split() for view in views(text))


def test_hyphenated_words_are_also_split() -> None:
    assert "sex" in views("a sex-free movie")[0].split()


def test_term_key_is_normalised_tokens() -> None:
    assert term_key("  Bad   WORD ") == "bad word"
    assert term_key("ｂａｄ-Word") == "bad word"


# -- words ------------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", [
    "a bad fox", "a BAD fox", "a bаd fox", "a ｂａｄ fox", "a b.a.d fox", "a b a d fox",
    "a bád fox", "bad", "(bad)", "a fox,bad,cat", "a b\u200bad fox", "a ba-d fox",
])
def test_a_blocked_word_matches_its_disguises(prompt: str) -> None:
    verdict = find_blocked(prompt, [word("bad")])
    assert verdict.refused and verdict.entry is not None and verdict.entry.value == "bad"


@pytest.mark.parametrize("prompt", [
    "a badge", "a badly lit room", "abad", "the class of grass", "b ad", "",
])
def test_a_blocked_word_matches_whole_words_only(prompt: str) -> None:
    assert not find_blocked(prompt, [word("bad"), word("ass", 2)]).refused


@pytest.mark.parametrize("prompt", [
    "a bad word here", "a BAD  WORD", "a b.a.d w.o.r.d", "a b a d w o r d", "a badword",
])
def test_a_blocked_phrase_matches_across_separators(prompt: str) -> None:
    assert find_blocked(prompt, [word("bad word")]).refused


def test_a_phrase_needs_its_words_together() -> None:
    assert not find_blocked("a bad fox found a word", [word("bad word")]).refused


@pytest.mark.parametrize(("term", "message"), [
    ("...", "no letters"),
    ("x" * 101, "100 characters"),
    (" ".join(["w"] * 11), "10 words"),
])
def test_unusable_words_are_refused(term: str, message: str) -> None:
    with pytest.raises(BadTerm, match=message):
        word_key(term)


# -- patterns ---------------------------------------------------------------------------------


@pytest.mark.parametrize("good", [
    r"gr[a@]pes? of wrath", r"\bkill(ing|ed)?\b", r"s[e3]x", r"\bb+a+d+\b",
    r"(?:foo|bar)\d{2,4}",
])
def test_ordinary_patterns_are_accepted_quickly(good: str) -> None:
    started = time.monotonic()
    assert check_pattern(f"  {good} ") == good
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(("bad", "message"), [
    (r"(a|aa)+$", "too long"),
    (r"(x+x+)+y", "too long"),
    (r"(\w+\s?)+$", "too long"),
    (r"((a+)+)+b", "too long"),
    (r"((", "not a valid regular expression"),
    (r"x*", "empty prompt"),
    (r"^", "empty prompt"),
    (r"a|", "empty prompt"),
    ("a" * (PATTERN_MAX_CHARS + 1), "limited"),
    ("   ", "empty"),
])
def test_dangerous_or_broken_patterns_are_refused_when_added(bad: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(BadTerm, match=message):
        check_pattern(bad)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(("prompt", "refused"), [
    ("The GRAPE of W.R.A.T.H.", True),
    ("grapes of wrath", True),
    ("gr@pes of wrath", False),  # "@" is a separator once normalised
    ("a bowl of grapes", False),
])
def test_patterns_match_the_normalised_prompt(prompt: str, refused: bool) -> None:
    assert find_blocked(prompt, [pattern(r"gr[a@]pes? of wrath")]).refused is refused


def test_a_pathological_pattern_cannot_stall_the_check() -> None:
    # As if it had been stored before validation existed: time runs out, the prompt is
    # refused (fail closed) and the check returns within its budget.
    prompt = "a" * 100
    started = time.monotonic()
    verdict = find_blocked(prompt, [pattern(r"(a|aa)+b")])
    elapsed = time.monotonic() - started
    assert verdict.timed_out and verdict.refused and verdict.entry is None
    assert elapsed < MATCH_BUDGET_S + 0.5


def test_words_are_checked_before_patterns() -> None:
    verdict = find_blocked("a bad fox", [pattern(r"fox", 1), word("bad", 2)])
    assert verdict.entry is not None and verdict.entry.kind == "word"


# -- the rule check ---------------------------------------------------------------------------


def facts(**changes: object) -> RequestFacts:
    values: dict[str, object] = {
        "guild_id": GUILD, "user_id": USER, "channel_ids": (CHANNEL,), "model": "sora-2",
        "duration": 8, "prompt": "a red fox", "role_ids": frozenset(),
    }
    values.update(changes)
    return RequestFacts(**values)  # type: ignore[arg-type]


def everything_refuses() -> RuleSnapshot:
    return RuleSnapshot(
        policy=GuildPolicy(channels=(OTHER_CHANNEL,), roles=(ROLE,), models=("sora-2-pro",),
                           max_duration=4, cooldown_s=60, max_queued=1),
        entries=(word("fox"),),
        blocked=BlockedMember(user_id=USER),
        last_request_at=NOW - 10,
        unfinished=1,
    )


def relax(snapshot: RuleSnapshot, rule: Rule) -> RuleSnapshot:
    policy = snapshot.policy
    changes: dict[Rule, RuleSnapshot] = {
        Rule.BLOCKED: snapshot.model_copy(update={"blocked": None}),
        Rule.CHANNEL: snapshot.model_copy(update={"policy": policy.model_copy(
            update={"channels": ()})}),
        Rule.ROLE: snapshot.model_copy(update={"policy": policy.model_copy(
            update={"roles": ()})}),
        Rule.MODEL: snapshot.model_copy(update={"policy": policy.model_copy(
            update={"models": ()})}),
        Rule.DURATION: snapshot.model_copy(update={"policy": policy.model_copy(
            update={"max_duration": None})}),
        Rule.BLOCKLIST: snapshot.model_copy(update={"entries": ()}),
        Rule.COOLDOWN: snapshot.model_copy(update={"last_request_at": None}),
        Rule.QUEUED: snapshot.model_copy(update={"unfinished": 0}),
    }
    return changes[rule]


def test_rules_are_checked_in_a_fixed_order() -> None:
    snapshot = everything_refuses()
    seen: list[Rule] = []
    for _ in ORDER:
        with pytest.raises(RuleRefusal) as caught:
            check_request(facts(), snapshot, NOW)
        seen.append(caught.value.rule)
        snapshot = relax(snapshot, caught.value.rule)
    assert seen == list(ORDER) == [
        Rule.BLOCKED, Rule.CHANNEL, Rule.ROLE, Rule.MODEL, Rule.DURATION, Rule.BLOCKLIST,
        Rule.COOLDOWN, Rule.QUEUED,
    ]
    check_request(facts(), snapshot, NOW)  # every rule relaxed: allowed


def refusal(snapshot: RuleSnapshot, **changes: object) -> RuleRefusal:
    with pytest.raises(RuleRefusal) as caught:
        check_request(facts(**changes), snapshot, NOW)
    return caught.value


def test_refusals_name_their_rule_and_help() -> None:
    channel = refusal(RuleSnapshot(policy=GuildPolicy(channels=(OTHER_CHANNEL, 32))))
    assert channel.user_message == (
        f"This channel is not one where videos can be made; try <#{OTHER_CHANNEL}>, <#32>."
    )
    role = refusal(RuleSnapshot(policy=GuildPolicy(roles=(ROLE,))))
    assert f"<@&{ROLE}>" in role.user_message
    model = refusal(RuleSnapshot(policy=GuildPolicy(models=("sora-2-pro",))))
    assert "`sora-2` is not allowed" in model.user_message and "`sora-2-pro`" in model.user_message
    duration = refusal(RuleSnapshot(policy=GuildPolicy(max_duration=4)))
    assert duration.user_message.startswith("Videos here are limited to 4 s")
    blocked = refusal(RuleSnapshot(entries=(word("fox"),)))
    assert "a term this server does not allow" in blocked.user_message
    assert "fox" not in blocked.user_message
    member = refusal(RuleSnapshot(blocked=BlockedMember(user_id=USER, reason="spam")))
    assert "blocked" in member.user_message and "spam" not in member.user_message
    queued = refusal(RuleSnapshot(policy=GuildPolicy(max_queued=2), unfinished=2))
    assert "2 video(s) on the way" in queued.user_message
    # Each is an ordinary Refusal to the central error handler.
    assert explain(queued) == queued.user_message and isinstance(queued, Refusal)


def test_the_cooldown_says_when_to_ask_again() -> None:
    snapshot = RuleSnapshot(policy=GuildPolicy(cooldown_s=60), last_request_at=NOW - 10)
    caught = refusal(snapshot)
    assert caught.rule is Rule.COOLDOWN and caught.retry_at == NOW + 50
    assert caught.user_message.startswith("Slow down")
    assert f"<t:{int(NOW + 50) + 1}:R>" in caught.user_message
    check_request(facts(), snapshot, NOW + 60)  # time is up: allowed


def test_everyone_role_and_a_thread_parent_count() -> None:
    check_request(facts(), RuleSnapshot(policy=GuildPolicy(roles=(GUILD,))), NOW)
    check_request(facts(role_ids=frozenset({ROLE})),
                  RuleSnapshot(policy=GuildPolicy(roles=(ROLE,))), NOW)
    check_request(facts(channel_ids=(99, OTHER_CHANNEL)),
                  RuleSnapshot(policy=GuildPolicy(channels=(OTHER_CHANNEL,))), NOW)


def test_no_settings_allow_everything() -> None:
    check_request(facts(duration=12, model="anything"), RuleSnapshot(), NOW)


# -- the gate ---------------------------------------------------------------------------------


async def test_the_gate_serialises_a_members_requests(db_target: str | Path) -> None:
    """Two requests at once cannot both pass a cooldown: the second waits for the first's
    reservation, then sees it."""
    store = await Store.open(db_target)
    try:
        await store.edit_policy(GUILD, lambda p: p.model_copy(update={"cooldown_s": 60}), None)
        gate = RuleGate(store)
        new = NewJob(guild_id=GUILD, channel_id=CHANNEL, user_id=USER, provider="sandbox",
                     model="sora-2", mode="text-to-video", prompt="a fox", duration=4,
                     orientation="landscape", seconds=4)

        async def request() -> str:
            try:
                async with gate.admit(facts()):
                    await asyncio.sleep(0.05)  # image fitting, say
                    await store.reserve(new, QuotaSettings(seconds=100))
            except RuleRefusal as exc:
                return exc.rule.value
            return "reserved"

        results = await asyncio.gather(request(), request())
        assert sorted(results) == ["cooldown", "reserved"]
        assert len(await store.jobs_for(GUILD, USER)) == 1
    finally:
        await store.close()


async def test_the_gate_adds_validated_terms(db_target: str | Path) -> None:
    store = await Store.open(db_target)
    try:
        gate = RuleGate(store)
        entry = await gate.add_term(GUILD, "word", " Bád  Word ", USER)
        assert (entry.kind, entry.value, entry.key) == ("word", "Bád  Word", "bad word")
        with pytest.raises(Refusal, match="already on the blocklist"):
            await gate.add_term(GUILD, "word", "BAD word", USER)
        with pytest.raises(Refusal, match="too long"):
            await gate.add_term(GUILD, "pattern", r"(a|aa)+$", USER)
        await gate.add_term(GUILD, "pattern", r"\bb+a+d+\b", USER)
        assert [e.kind for e in await store.block_entries(GUILD)] == ["word", "pattern"]
        with pytest.raises(RuleRefusal) as caught:
            await gate.check(facts(prompt="a bbbaaad fox"))
        assert caught.value.rule is Rule.BLOCKLIST
    finally:
        await store.close()
