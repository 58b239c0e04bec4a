"""Each catalog entry's price per reseller, against the figures the resellers publish
(MODELS_AFTER_SORA.md for APIXO, RESELLERS_BEYOND_APIXO.md for fal.ai and Replicate),
and money as the bot counts and shows it."""

from __future__ import annotations

import pytest

from bot.catalog import Shape, get_model, request_price
from bot.catalog.pricing import Price, micros, money, parse_dollars

T, IMG, F = Shape.TEXT, Shape.IMAGE, Shape.FRAMES

# (provider, catalog id, seconds, shape, sound on, published price in dollars or None)
PUBLISHED = [
    # APIXO: Veo per video (mode fast/quality), Wan 2.5 $0.08/s at 720p; the rest unpublished.
    ("apixo", "veo-3-1-fast", 8, T, False, 0.20),
    ("apixo", "veo-3-1", 8, IMG, False, 1.50),
    ("apixo", "wan-2-5-video", 5, T, False, 0.40),
    ("apixo", "wan-2-5-video", 10, IMG, False, 0.80),
    ("apixo", "kling-2-5-turbo-pro", 5, T, False, None),
    ("apixo", "kling-2-1", 10, IMG, False, None),
    ("apixo", "hailuo-2-3", 6, T, False, None),
    ("apixo", "hailuo-2-3-pro", 5, T, False, None),
    # fal.ai: Veo per second, with and without sound (fast: the first/last-frame page).
    ("fal", "veo-3-1", 8, T, False, 1.60),
    ("fal", "veo-3-1", 8, T, True, 3.20),
    ("fal", "veo-3-1", 4, IMG, True, 1.60),
    ("fal", "veo-3-1-fast", 8, T, False, 0.80),
    ("fal", "veo-3-1-fast", 8, F, True, 1.20),
    ("fal", "veo-3-1-fast", 6, IMG, True, 0.90),
    # Kling 2.5 Turbo Pro: $0.35 for 5 s, + $0.07 each second beyond.
    ("fal", "kling-2-5-turbo-pro", 5, T, False, 0.35),
    ("fal", "kling-2-5-turbo-pro", 10, IMG, False, 0.70),
    # Kling 2.1: master for text ($1.40 / 5 s + $0.28/s), standard for an image
    # ($0.28 / 5 s + $0.056/s).
    ("fal", "kling-2-1", 5, T, False, 1.40),
    ("fal", "kling-2-1", 10, T, False, 2.80),
    ("fal", "kling-2-1", 5, IMG, False, 0.28),
    ("fal", "kling-2-1", 10, IMG, False, 0.56),
    # Wan 2.5 at 720p: $0.10/s.
    ("fal", "wan-2-5-video", 5, T, False, 0.50),
    ("fal", "wan-2-5-video", 10, IMG, False, 1.00),
    # Hailuo 2.3: $0.28 (6 s), $0.56 (10 s); Pro $0.49 a video.
    ("fal", "hailuo-2-3", 6, T, False, 0.28),
    ("fal", "hailuo-2-3", 10, IMG, False, 0.56),
    ("fal", "hailuo-2-3-pro", 6, IMG, False, 0.49),
    # Replicate publishes no price for these models in the pages we have.
    ("replicate", "veo-3-1", 8, T, True, None),
    ("replicate", "veo-3-1-fast", 4, T, False, None),
    ("replicate", "kling-2-5-turbo-pro", 5, T, False, None),
    ("replicate", "kling-2-1", 5, IMG, False, None),
    ("replicate", "wan-2-5-video", 5, IMG, False, None),
    ("replicate", "hailuo-2-3", 6, T, False, None),
    ("replicate", "hailuo-2-3-pro", 6, T, False, None),
    # The sandbox costs nothing.
    ("sandbox", "veo-3-1-fast", 8, T, False, 0.0),
]


@pytest.mark.parametrize(("provider", "model", "seconds", "shape", "audio", "dollars"),
                         PUBLISHED, ids=[f"{p}/{m}/{s}s/{sh.value}/{'sound' if a else 'mute'}"
                                         for p, m, s, sh, a, _ in PUBLISHED])
def test_each_entry_is_priced_as_its_reseller_publishes(
    provider: str, model: str, seconds: int, shape: Shape, audio: bool, dollars: float | None
) -> None:
    spec = get_model(provider, model)
    assert seconds in spec.durations
    expected = None if dollars is None else micros(dollars)
    assert request_price(spec, seconds, shape=shape, audio=audio) == expected


def test_model_prices_override_per_second_and_for_sound() -> None:
    veo = get_model("fal", "veo-3-1")
    overrides = {"fal/veo-3-1": 0.25, "fal/veo-3-1+audio": 0.5,
                 "replicate/veo-3-1": 0.2}
    assert request_price(veo, 8, overrides) == micros(2.00)
    assert request_price(veo, 8, overrides, audio=True) == micros(4.00)
    assert request_price(veo, 8, {"fal/veo-3-1": 0.25}, audio=True) == micros(2.00)
    unpriced = get_model("replicate", "veo-3-1")
    assert request_price(unpriced, 6, overrides, audio=True) == micros(1.20)


def test_money_is_exact_and_readable() -> None:
    assert micros(0.07) * 3 == micros(0.21)  # whole micro-dollars: sums never drift
    assert parse_dollars("20") == 20_000_000 and parse_dollars("$2.50") == 2_500_000
    assert parse_dollars("0") == 0
    for bad in ("-1", "two", "1e9", "nan"):
        with pytest.raises(ValueError):
            parse_dollars(bad)
    assert money(1_600_000) == "$1.60" and money(392_000) == "$0.392"
    assert money(56_000) == "$0.056" and money(None) == "unknown"
    assert money(12_345_678_000) == "$12,345.68"
    assert Price(per_video=0.35, included_s=5, per_second=0.07).describe() == \
        "$0.35 for 5 s + $0.07/s more"
    assert Price(by_length={6: 0.28, 10: 0.56}).describe() == "$0.28 (6 s), $0.56 (10 s)"
