"""Command line: ``python -m bot`` [run | generate ... | check | copy-db --to URL]."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import SecretStr

from bot.config import PAID_PROVIDERS, SettingsError, load_settings, url_password
from bot.logs import setup_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="AI video Discord bot")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the Discord bot (the default)")
    gen = sub.add_parser("generate", help="make one video without Discord")
    gen.add_argument("--prompt", required=True, help="what the video should show")
    gen.add_argument("--image", type=Path, help="a JPEG, PNG or WebP to animate")
    gen.add_argument("--provider",
                     help="apixo, fal, replicate, aivideoapi, pixazo or sandbox")
    gen.add_argument("--end-image", type=Path,
                     help="an end frame, for models that take one (with --image)")
    gen.add_argument("--model", help="a model id from the catalog, e.g. veo-3-1-fast")
    gen.add_argument("--duration", type=int, help="seconds of video, as the model offers")
    gen.add_argument("--orientation", help="landscape or portrait")
    gen.add_argument("--negative-prompt", help="what to avoid, for models that take one")
    gen.add_argument("--seed", type=int, help="a seed, for models that take one")
    gen.add_argument("--audio", choices=("on", "off"),
                     help="sound on or off, for models whose provider lets you choose "
                          "(default: AUDIO_DEFAULT)")
    gen.add_argument("--out", type=Path, required=True, help="where to write the MP4")
    sub.add_parser("check", help="check the settings and each configured provider key")
    copy = sub.add_parser("copy-db", help="copy the SQLite database into empty PostgreSQL")
    copy.add_argument("--to", required=True, metavar="postgresql://...",
                      help="the empty PostgreSQL database to fill")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "run"
    if command == "check":
        from bot.cli.check import check

        return check()
    try:
        settings = load_settings()
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    secrets = [s for s in (settings.api_key(p) for p in PAID_PROVIDERS) if s]
    if settings.discord_token is not None:
        secrets.append(settings.discord_token.get_secret_value())
    for url in (settings.database_url, getattr(args, "to", None)):  # database passwords
        password = url_password(url.get_secret_value() if isinstance(url, SecretStr) else url)
        if password:
            secrets.append(password)
    if command == "copy-db":
        from bot.cli.copy_db import copy_db

        setup_logging("WARNING" if settings.log_level == "INFO" else settings.log_level, secrets)
        return copy_db(settings, args.to)
    if command == "generate":
        from bot.cli.generate import GenerateArgs, generate

        setup_logging("WARNING" if settings.log_level == "INFO" else settings.log_level, secrets)
        return generate(
            GenerateArgs(
                prompt=args.prompt,
                out=args.out,
                image=args.image,
                provider=args.provider.lower() if args.provider else None,
                model=args.model,
                duration=args.duration,
                orientation=args.orientation,
                end_image=args.end_image,
                negative_prompt=args.negative_prompt,
                seed=args.seed,
                audio=None if args.audio is None else args.audio == "on",
            ),
            settings,
        )
    setup_logging(settings.log_level, secrets)
    if settings.discord_token is None:
        print("error: DISCORD_TOKEN: required to run the bot (see .env.example)", file=sys.stderr)
        return 2
    from bot.app import run_bot

    return run_bot(settings)


if __name__ == "__main__":
    sys.exit(main())
