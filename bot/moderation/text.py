"""Text normalisation for the blocklist: look-alike letters and spacing tricks fold away.

``normalise`` applies, in order: NFKC (fullwidth, mathematical and circled letters become
plain ones), a map of capital look-alikes (Greek Eta looks like H, not like the n its
lower case resembles), casefold, removal of combining marks (accents, strike-throughs),
a map of lower-case look-alikes (Cyrillic, Greek, small capitals, IPA), and removal of
invisible format characters (zero-width spaces and joiners, soft hyphens).

``views`` then gives the token sequences a prompt is matched in. Splitting at every
separator keeps "sex-free" as two words; joining inside whitespace-delimited chunks turns
"b.a.d" and "ba-d" into "bad"; and runs of single letters join up ("b a d"). A word
matches only as whole tokens in one of the views (or inside a run of spelled-out letters),
so "class" never matches "ass".
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Capitals whose look-alike differs from their lower case's look-alike.
_UPPER = str.maketrans({
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P",
    "С": "C", "Т": "T", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ү": "Y",
})

_LOWER = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
    "п": "n", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ь": "b", "ѕ": "s",
    "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l",
    "ү": "y", "ɡ": "g",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "ζ": "z", "η": "n", "ι": "i", "κ": "k",
    "μ": "u", "ν": "v", "ο": "o", "ρ": "p", "σ": "o", "ς": "s", "τ": "t", "υ": "u",
    "χ": "x", "ω": "w",
    # Latin letters without a decomposition, small capitals and IPA
    "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ŧ": "t", "ƀ": "b", "ɑ": "a",
    "ɩ": "i", "ɪ": "i", "ʟ": "l", "ɴ": "n", "ʀ": "r", "ʙ": "b", "ɢ": "g", "ʜ": "h",
    "ʏ": "y", "ᴀ": "a", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ᴊ": "j", "ᴋ": "k", "ᴍ": "m",
    "ᴏ": "o", "ᴘ": "p", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ᴢ": "z", "ꜱ": "s",
    "ſ": "s",
})

_MARKS = ("Mn", "Mc", "Me")


def normalise(text: str) -> str:
    """Lower case, look-alikes folded, marks and invisible characters removed."""
    text = unicodedata.normalize("NFKC", text).translate(_UPPER).casefold()
    text = unicodedata.normalize("NFD", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _MARKS)
    text = unicodedata.normalize("NFC", text).translate(_LOWER)
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LN"


def tokens(normalised: str) -> list[str]:
    """Split at every character that is not a letter or a digit."""
    out: list[str] = []
    word: list[str] = []
    for ch in normalised:
        if _is_word_char(ch):
            word.append(ch)
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    return out


def _joined_chunks(normalised: str) -> list[str]:
    """Whitespace-delimited chunks with the separators inside them removed ("b.a.d")."""
    chunks = ("".join(ch for ch in chunk if _is_word_char(ch)) for chunk in normalised.split())
    return [c for c in chunks if c]


def single_runs(words: list[str]) -> list[str]:
    """Runs of two or more one-letter tokens, joined ("a b a d" -> "abad")."""
    runs: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1:
            run.append(word)
            continue
        if len(run) > 1:
            runs.append("".join(run))
        run = []
    return runs


def _join_singles(words: list[str]) -> list[str]:
    """Runs of two or more one-letter tokens become one token ("b a d" -> "bad")."""
    out: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1:
            run.append(word)
            continue
        if len(run) > 1:
            out.append("".join(run))
        else:
            out.extend(run)
        run = []
        if word:
            out.append(word)
    return out


@dataclass(frozen=True)
class Forms:
    """A prompt as the blocklist sees it.

    ``views``: the distinct token sequences (tokens joined by single spaces) that words
    match as whole tokens and patterns search. ``runs``: spelled-out letters ("b a d"),
    which words match anywhere inside, since a run may start with a real one-letter word
    ("a b a d" -> "abad").
    """

    views: tuple[str, ...]
    runs: tuple[str, ...]


def analyse(text: str) -> Forms:
    norm = normalise(text)
    split = tokens(norm)
    found: list[str] = []
    for words in (split, _joined_chunks(norm), _join_singles(split)):
        view = " ".join(words)
        if view not in found:
            found.append(view)
    return Forms(views=tuple(found), runs=tuple(single_runs(split)))


def views(text: str) -> list[str]:
    """The distinct forms a prompt is matched in: tokens joined by single spaces."""
    return list(analyse(text).views)


def term_key(term: str) -> str:
    """A blocked word or phrase as it is stored and matched: normalised tokens."""
    return " ".join(tokens(normalise(term)))
