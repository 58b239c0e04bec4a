"""A guild's blocked words and patterns: validation when added, matching with a time limit.

Words (and phrases) match whole tokens of a normalised prompt (see ``text``). Patterns are
regular expressions (the ``regex`` package) matched case-insensitively against the same
normalised views, so moderators write them in plain lower-case letters with single spaces.
A pattern is refused when added if it does not compile, is too long, matches the empty
text (it would refuse every prompt) or runs out of time on probe texts built from its own
letters; at request time all patterns share a time budget, and a prompt that exhausts it
is refused rather than waved through (fail closed).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.moderation.policy import BlockEntry
from bot.moderation.text import analyse, term_key

if TYPE_CHECKING:
    import regex

# ``regex`` (~1.4 MB resident) is imported when a pattern is first compiled, not with this
# module: most guilds have no blocked patterns.

TERM_MAX_CHARS = 100
TERM_MAX_WORDS = 10
PATTERN_MAX_CHARS = 200
ENTRIES_MAX = 500  # per guild, words and patterns together
PROBE_TIMEOUT_S = 0.05  # per probe text when a pattern is added
MATCH_BUDGET_S = 0.25  # for all of a guild's patterns on one prompt
PROBE_LENGTH = 10_000  # the longest prompt any model takes


class BadTerm(ValueError):
    """A word or pattern a moderator cannot add; ``user_message`` says why."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking a prompt: ``entry`` matched, or the time ran out."""

    entry: BlockEntry | None = None
    timed_out: bool = False

    @property
    def refused(self) -> bool:
        return self.entry is not None or self.timed_out


def word_key(term: str) -> str:
    """The stored form of a blocked word or phrase; raises BadTerm when unusable."""
    if len(term) > TERM_MAX_CHARS:
        raise BadTerm(f"Blocked words are limited to {TERM_MAX_CHARS} characters.")
    key = term_key(term)
    if not key:
        raise BadTerm("That has no letters or digits to match; nothing was added.")
    if key.count(" ") + 1 > TERM_MAX_WORDS:
        raise BadTerm(f"A blocked phrase is limited to {TERM_MAX_WORDS} words.")
    return key


@functools.lru_cache(maxsize=1024)
def compiled(pattern: str) -> regex.Pattern[str]:
    import regex

    return regex.compile(pattern, regex.IGNORECASE | regex.UNICODE)


def _probes(pattern: str) -> list[str]:
    """Texts that make catastrophic backtracking show: long runs of the pattern's own
    letters (and of common ones) that end in a character likely to fail the match."""
    letters = sorted({ch for ch in pattern.lower() if ch.isalnum()})[:12]
    chars = [*letters, *(c for c in "a1 " if c not in letters)]
    probes = [c * PROBE_LENGTH + end for c in chars for end in ("!", "")]
    if letters:
        cycle = "".join(letters)
        probes.append((cycle * (PROBE_LENGTH // len(cycle) + 1))[:PROBE_LENGTH] + "!")
        probes.append(" ".join(letters * (PROBE_LENGTH // (2 * len(letters)) + 1)) + "!")
    probes.append(("lorem ipsum dolor sit amet " * (PROBE_LENGTH // 27 + 1)) + "!")
    return probes


def check_pattern(pattern: str) -> str:
    """The pattern, stripped, if it is safe to use; raises BadTerm otherwise.

    Slow (up to a few tenths of a second for a bad pattern): call it off the event loop.
    """
    import regex

    pattern = pattern.strip()
    if not pattern:
        raise BadTerm("The pattern is empty.")
    if len(pattern) > PATTERN_MAX_CHARS:
        raise BadTerm(f"Patterns are limited to {PATTERN_MAX_CHARS} characters.")
    try:
        compiled_pattern = compiled(pattern)
    except (regex.error, OverflowError, RecursionError) as exc:
        raise BadTerm(f"That is not a valid regular expression: {exc}.") from None
    for empty in ("", " "):
        if compiled_pattern.search(empty, timeout=PROBE_TIMEOUT_S) is not None:
            raise BadTerm("That pattern matches an empty prompt, so it would refuse every "
                          "prompt; nothing was added.")
    for probe in _probes(pattern):
        try:
            compiled_pattern.search(probe, timeout=PROBE_TIMEOUT_S, concurrent=True)
        except TimeoutError:
            raise BadTerm(
                "That pattern takes too long on long prompts and could stall the bot; "
                "please simplify it: avoid nested or overlapping repeats such as (a+)+ or "
                "(a|aa)+, and anchor repeats with \\b where you can."
            ) from None
    return pattern


def find_blocked(
    prompt: str, entries: Iterable[BlockEntry], *, budget_s: float = MATCH_BUDGET_S
) -> Verdict:
    """The first entry the prompt matches, words before patterns.

    Blocking (CPU-bound up to ``budget_s``): run it in a worker thread when the guild has
    patterns; ``concurrent=True`` lets the regex engine release the GIL meanwhile.
    """
    forms = analyse(prompt)
    padded = [f" {view} " for view in forms.views]
    patterns: list[BlockEntry] = []
    for entry in entries:
        if entry.kind == "pattern":
            patterns.append(entry)
            continue
        joined = entry.key.replace(" ", "")
        if any(f" {entry.key} " in text or f" {joined} " in text for text in padded) or any(
            joined in run for run in forms.runs
        ):
            return Verdict(entry=entry)
    if not patterns:
        return Verdict()
    import regex

    deadline = time.monotonic() + budget_s
    for entry in patterns:
        try:
            pattern = compiled(entry.key)
        except regex.error:
            continue  # checked when added; an engine upgrade could still reject one
        for form in forms.views:
            left = deadline - time.monotonic()
            if left <= 0:
                return Verdict(timed_out=True)
            try:
                if pattern.search(form, timeout=left, concurrent=True) is not None:
                    return Verdict(entry=entry)
            except TimeoutError:
                return Verdict(timed_out=True)
    return Verdict()
