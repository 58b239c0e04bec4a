"""Provider adapters: one per video API, all sharing the application's aiohttp session."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.config import SettingsError
from bot.providers.adapter import HttpAdapter
from bot.providers.aivideoapi import AivideoapiProvider
from bot.providers.apixo import ApixoProvider
from bot.providers.base import (
    GenerationRequest,
    SourceImage,
    TaskState,
    TaskStatus,
    VideoProvider,
)
from bot.providers.pixazo import PixazoProvider

if TYPE_CHECKING:
    import aiohttp

    from bot.config import Settings

__all__ = [
    "AivideoapiProvider",
    "ApixoProvider",
    "GenerationRequest",
    "PixazoProvider",
    "SourceImage",
    "TaskState",
    "TaskStatus",
    "VideoProvider",
    "make_provider",
]

_HTTP_ADAPTERS: dict[str, type[HttpAdapter]] = {
    "apixo": ApixoProvider,
    "aivideoapi": AivideoapiProvider,
    "pixazo": PixazoProvider,
}


def make_provider(
    name: str, settings: Settings, session: aiohttp.ClientSession
) -> VideoProvider:
    """The adapter for provider ``name``, configured from ``settings``.

    Raises SettingsError when the provider is unknown or its API key is missing.
    """
    if name == "sandbox":
        # Imported only when used (it renders video locally and pulls in PyAV).
        from bot.providers.sandbox import SandboxProvider

        return SandboxProvider(
            delay_s=settings.sandbox_delay_s,
            work_dir=settings.database_path.parent / "sandbox",
        )
    if name == "fal":  # signed webhooks: the verifier's keys come from FAL_JWKS_URL
        from bot.providers.fal import FalProvider

        return FalProvider(session, settings.base_url(name), _key(name, settings),
                           jwks_url=settings.fal_jwks_url)
    if name == "replicate":
        from bot.providers.replicate import ReplicateProvider

        return ReplicateProvider(session, settings.base_url(name), _key(name, settings))
    adapter = _HTTP_ADAPTERS.get(name)
    if adapter is None:
        known = ", ".join([*_HTTP_ADAPTERS, "fal", "replicate", "sandbox"])
        raise SettingsError([f"PROVIDER: unknown provider {name!r} (known: {known})"])
    return adapter(session, settings.base_url(name), _key(name, settings))


def _key(name: str, settings: Settings) -> str:
    key = settings.api_key(name)
    if not key:
        raise SettingsError([f"{name.upper()}_API_KEY: required to use the {name} provider"])
    return key
