"""``python -m bot check``: what is missing or wrong in the settings, and whether keys work."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable

import aiohttp

from bot.catalog import PROVIDERS, retired_notice
from bot.config import Settings, SettingsError, load_settings
from bot.providers import make_provider
from bot.providers.errors import AuthenticationFailed, InsufficientBalance, ProviderError

Report = Callable[[str, str], None]


async def _check_discord(settings: Settings, session: aiohttp.ClientSession) -> tuple[bool, str]:
    if settings.discord_token is None:
        return False, "DISCORD_TOKEN is not set; `python -m bot` needs it (generate does not)"
    url = f"{settings.discord_api_base_url}/users/@me"
    headers = {"Authorization": f"Bot {settings.discord_token.get_secret_value()}"}
    try:
        async with session.get(url, headers=headers) as resp:
            if resp.status == 200:
                me = await resp.json()
                return True, f"token accepted (bot user {me.get('username', '?')})"
            if resp.status == 401:
                return False, "DISCORD_TOKEN was rejected by Discord"
            return False, f"Discord answered HTTP {resp.status} to the token check"
    except (aiohttp.ClientError, TimeoutError):
        return False, "could not reach DISCORD_API_BASE_URL to check the token"


async def _check_provider(
    name: str, settings: Settings, session: aiohttp.ClientSession
) -> tuple[bool, str]:
    try:
        provider = make_provider(name, settings, session)
        await provider.check_key()
    except AuthenticationFailed:
        return False, f"{name.upper()}_API_KEY was rejected"
    except InsufficientBalance:
        return False, f"{name.upper()}_API_KEY works, but the account is out of credit"
    except SettingsError as exc:
        return False, "; ".join(exc.problems)
    except ProviderError as exc:
        return False, f"could not confirm the key: {exc.user_message}"
    return True, "key accepted" if name != "sandbox" else "ready (no key needed, costs nothing)"


def _database_problem(settings: Settings) -> str | None:
    folder = settings.database_path.parent
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        return f"DATABASE_PATH: cannot write in {probe}"
    if settings.database_path.exists() and not os.access(settings.database_path, os.W_OK):
        return f"DATABASE_PATH: {settings.database_path} is not writable"
    return None


async def run_checks(settings: Settings, report: Report) -> bool:
    ok = True

    def line(good: bool, what: str, text: str) -> None:
        nonlocal ok
        ok = ok and good
        report("ok" if good else "PROBLEM", f"{what}: {text}")

    if settings.database_url is not None:
        from bot.store.postgres import probe

        good, text = await probe(settings.database_url.get_secret_value())
        line(good, "database", text)
    else:
        db = _database_problem(settings)
        line(db is None, "database", db or f"{settings.database_path}")
    if settings.public_base_url is None:
        report("note", "PUBLIC_BASE_URL is not set: the bot will poll providers (no callbacks)")
    elif settings.public_base_url.startswith("http://"):
        report("note", "PUBLIC_BASE_URL is http: use https in production (a proxy in front)")
    notice = retired_notice(settings.provider, settings.model)
    if notice is not None:
        report("warning", notice)
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        good, text = await _check_discord(settings, session)
        line(good, "discord", text)
        names = [p for p in PROVIDERS if p == settings.provider or settings.api_key(p)]
        results = await asyncio.gather(*(_check_provider(n, settings, session) for n in names))
        for name, (good, text) in zip(names, results, strict=True):
            active = " (PROVIDER)" if name == settings.provider else (
                " (fallback)" if name in settings.fallback_providers else "")
            line(good, f"provider {name}{active}", text)
    return ok


def check() -> int:
    def report(level: str, text: str) -> None:
        print(f"{level:>7}  {text}")

    try:
        settings = load_settings()
    except SettingsError as exc:
        for problem in exc.problems:
            report("PROBLEM", problem)
        return 1
    ok = asyncio.run(run_checks(settings, report))
    print("all good" if ok else "some settings need attention", file=sys.stderr)
    return 0 if ok else 1
