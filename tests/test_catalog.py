"""The catalog after Sora: live defaults, retired models, and what members are offered."""

from __future__ import annotations

import pytest

from bot.catalog import (
    MODELS,
    Mode,
    default_model,
    get_model,
    live_models,
    offered_models,
    request_price,
    retired_notice,
)
from bot.config import Settings
from bot.jobs.intake import Refusal, check_options


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_every_sora_entry_is_retired_and_every_other_apixo_entry_live() -> None:
    for spec in MODELS:
        if spec.provider != "sandbox":
            assert spec.retired == spec.id.startswith("sora-"), spec.key
    assert {m.id for m in live_models("apixo")} == {
        "veo-3-1", "veo-3-1-fast", "wan-2-5-video", "kling-2-5-turbo-pro", "kling-2-1",
        "hailuo-2-3", "hailuo-2-3-pro"}
    assert live_models("aivideoapi") == [] and live_models("pixazo") == []


def test_model_unset_means_a_live_default() -> None:
    assert settings(provider="apixo", apixo_api_key="k").model == "veo-3-1-fast"
    assert default_model("apixo") == get_model("apixo", "veo-3-1-fast")
    assert settings().model == "sora-2"  # the sandbox's own 4/8/12 s test card
    # aivideoapi and Pixazo have only Sora pages: no live model; the bot says so.
    aiv = settings(provider="aivideoapi", aivideoapi_api_key="k")
    assert aiv.model == "sora-2" and default_model("aivideoapi") is None
    notice = retired_notice("aivideoapi", aiv.model)
    assert notice is not None and "no live model" in notice and "MODEL" in notice


def test_an_explicit_retired_model_is_kept_with_a_warning() -> None:
    kept = settings(provider="apixo", apixo_api_key="k", model="sora-2")
    assert kept.model == "sora-2"
    notice = retired_notice("apixo", "sora-2")
    assert notice is not None and "retired" in notice and "veo-3-1-fast" in notice
    assert retired_notice("apixo", "veo-3-1") is None


def test_members_are_offered_live_models_and_the_owner_s_choice() -> None:
    assert all(not m.retired for m in offered_models("apixo"))
    kept = offered_models("apixo", "sora-2")
    assert "sora-2" in {m.id for m in kept} and "sora-2-pro" not in {m.id for m in kept}


@pytest.mark.parametrize("model", ["sora-2", "sora-2-pro"])
def test_naming_a_retired_model_is_refused_with_the_alternatives(model: str) -> None:
    config = settings(provider="apixo", apixo_api_key="k")
    with pytest.raises(Refusal) as info:
        check_options(config, prompt="a fox", duration=None, orientation=None, model=model,
                      mode=Mode.TEXT)
    text = info.value.user_message
    assert f"`{model}` is retired" in text
    assert "`veo-3-1-fast`" in text and "`wan-2-5-video`" in text
    assert "`sora-2" not in text.split("Try one of:")[1]


def test_the_owner_s_retired_model_may_be_named() -> None:
    config = settings(provider="apixo", apixo_api_key="k", model="sora-2")
    options = check_options(config, prompt="a fox", duration=12, orientation=None,
                            model="sora-2", mode=Mode.TEXT)
    assert options.spec.id == "sora-2" and options.duration == 12


def test_prices_per_video_and_per_second() -> None:
    fast, quality = get_model("apixo", "veo-3-1-fast"), get_model("apixo", "veo-3-1")
    assert request_price(fast, 8) == 200_000 and request_price(quality, 8) == 1_500_000
    assert request_price(get_model("apixo", "wan-2-5-video"), 10) == 800_000
    assert request_price(get_model("apixo", "kling-2-1"), 5) is None
    assert request_price(fast, 8, {"apixo/veo-3-1-fast": 0.5}) == 4_000_000


@pytest.mark.parametrize(
    ("model", "asked", "seconds"),
    [("veo-3-1-fast", None, 8), ("veo-3-1", 8, 8), ("hailuo-2-3-pro", None, 5),
     ("hailuo-2-3", None, 6), ("hailuo-2-3", 10, 10), ("wan-2-5-video", 10, 10)],
)
def test_the_request_carries_the_seconds_the_model_makes(model: str, asked: int | None,
                                                         seconds: int) -> None:
    config = settings(provider="apixo", apixo_api_key="k")
    options = check_options(config, prompt="a fox", duration=asked, orientation=None,
                            model=model, mode=Mode.TEXT)
    assert options.duration == seconds


@pytest.mark.parametrize(("model", "asked", "needle"), [
    ("veo-3-1", 4, "`veo-3-1` makes 8-second videos: leave the length out."),
    ("hailuo-2-3-pro", 10, "`hailuo-2-3-pro` makes 5-second videos"),
    ("wan-2-5-video", 8, "`wan-2-5-video` makes videos of 5 or 10 seconds, not 8."),
])
def test_a_length_the_model_does_not_make_is_refused(model: str, asked: int,
                                                     needle: str) -> None:
    config = settings(provider="apixo", apixo_api_key="k")
    with pytest.raises(Refusal) as info:
        check_options(config, prompt="a fox", duration=asked, orientation=None, model=model,
                      mode=Mode.TEXT)
    assert needle in info.value.user_message
