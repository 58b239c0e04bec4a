"""The settings this round adds, as an operator writes them in the environment: the fal.ai
and Replicate keys under both their names, the providers failover may name, sound by
default, a process identity and the sandbox's mirror; mistakes are one line each."""

from __future__ import annotations

import pytest

from bot.catalog import Mode, get_model
from bot.config import SettingsError, load_settings

SECRET = "fal-secret-4d7e"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FAL_API_KEY", "FAL_KEY", "REPLICATE_API_KEY", "REPLICATE_API_TOKEN",
                 "PROVIDER", "MODEL", "FALLBACK_PROVIDERS", "AUDIO_DEFAULT", "INSTANCE_ID",
                 "SANDBOX_LIKE", "APIXO_API_KEY", "SHARD_IDS", "SHARD_COUNT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir("/")  # no .env file


def test_the_resellers_keys_under_both_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVIDER", "fal")
    monkeypatch.setenv("FAL_KEY", SECRET)
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_token")
    monkeypatch.setenv("FALLBACK_PROVIDERS", "replicate, apixo")
    monkeypatch.setenv("APIXO_API_KEY", "k")
    settings = load_settings()
    assert settings.api_key("fal") == SECRET and settings.api_key("replicate") == "r8_token"
    assert settings.provider_chain == ["fal", "replicate", "apixo"]
    assert settings.model == "veo-3-1-fast"  # fal's live default
    assert settings.base_url("fal") == "https://queue.fal.run"
    assert settings.fal_jwks_url == "https://rest.alpha.fal.ai/.well-known/jwks.json"
    assert settings.base_url("replicate") == "https://api.replicate.com/v1"
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(("env", "needle"), [
    ({"PROVIDER": "replicate"}, "REPLICATE_API_KEY: required when PROVIDER=replicate"),
    ({"FALLBACK_PROVIDERS": "fal"}, "FAL_API_KEY: required when FALLBACK_PROVIDERS names fal"),
    ({"FALLBACK_PROVIDERS": "gemini"}, "'gemini' is not a provider that makes videos"),
    ({"AUDIO_DEFAULT": "loud"}, "AUDIO_DEFAULT: must be on or off"),
    ({"INSTANCE_ID": "bot one!"}, "INSTANCE_ID: use letters, digits"),
    ({"SANDBOX_LIKE": "pixazo"}, "SANDBOX_LIKE: must be one of apixo, fal, replicate"),
])
def test_mistakes_are_one_line_each(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                                    needle: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert any(needle in problem for problem in info.value.problems), info.value.problems


def test_sound_identity_and_the_sandbox_s_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIO_DEFAULT", "off")
    monkeypatch.setenv("SHARD_COUNT", "4")
    monkeypatch.setenv("SHARD_IDS", "2,3")
    settings = load_settings()
    assert settings.audio_default is False
    assert settings.process_identity.endswith(":shards-2,3")  # stable across restarts
    monkeypatch.setenv("INSTANCE_ID", "bot-east-1")
    monkeypatch.setenv("SANDBOX_LIKE", "Replicate")
    settings = load_settings()
    assert settings.process_identity == "bot-east-1"
    assert Mode.TEXT not in get_model("sandbox", "kling-2-1").modes  # images only there
    assert get_model("sandbox", "veo-3-1-fast").durations == (4, 6, 8)
    monkeypatch.delenv("SANDBOX_LIKE")
    load_settings()
    assert get_model("sandbox", "veo-3-1-fast").durations == (8,)
