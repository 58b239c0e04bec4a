"""``python -m bot generate``: one job through the provider code, without Discord."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import aiohttp

from bot.catalog import (
    ModelSpec,
    Orientation,
    UnknownModel,
    default_model,
    get_model,
    models_for,
    money,
    request_price,
)
from bot.config import Settings, SettingsError
from bot.jobs.waiting import PollSchedule, wait_for_task
from bot.media.images import ImageProblem, check_rules, fit_image, image_orientation, inspect_image
from bot.media.video import VideoProblem, probe_mp4
from bot.providers import make_provider
from bot.providers.base import GenerationRequest, SourceImage, TaskState, TaskStatus, VideoProvider
from bot.providers.errors import AuthenticationFailed, ProviderError
from bot.providers.validation import validate_request
from bot.web.server import WebhookServer

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class BadInput(Exception):
    """Something the user typed is wrong; nothing was sent."""


@dataclass
class GenerateArgs:
    prompt: str
    out: Path
    image: Path | None = None
    provider: str | None = None
    model: str | None = None
    duration: int | None = None
    orientation: str | None = None
    end_image: Path | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    audio: bool | None = None  # None: AUDIO_DEFAULT where the model lets you choose


def pick_model(args: GenerateArgs, settings: Settings) -> ModelSpec:
    provider = args.provider or settings.provider
    if args.model:
        model = args.model
    elif provider == settings.provider:
        model = settings.model
    else:
        offered = models_for(provider)
        if not offered:
            raise BadInput(f"unknown provider '{provider}'")
        model = (default_model(provider) or offered[0]).id
    try:
        return get_model(provider, model)
    except UnknownModel as exc:
        raise BadInput(str(exc)) from None


def build_request(args: GenerateArgs, spec: ModelSpec, audio_default: bool = True
                  ) -> GenerationRequest:
    """Validate everything the user gave, before any request is sent."""
    orientation: Orientation | None = None
    if args.orientation is not None:
        try:
            orientation = Orientation(args.orientation.lower())
        except ValueError:
            raise BadInput("orientation must be landscape or portrait") from None
    if args.end_image is not None and args.image is None:
        raise BadInput("--end-image needs --image (the start frame)")
    image = _fitted(args.image, spec, orientation) if args.image is not None else None
    if image is not None:
        orientation = orientation or (
            Orientation.LANDSCAPE if image.width >= image.height else Orientation.PORTRAIT)
    end = _fitted(args.end_image, spec, orientation) if args.end_image is not None else None
    fixed = spec.fixed_length
    if fixed is not None and args.duration not in (None, fixed):
        raise BadInput(f"{spec.id} makes {spec.describe_lengths()}; leave --duration out")
    duration = spec.length_for(args.duration)
    if args.audio is not None and not spec.takes_audio:
        raise BadInput(f"{spec.id} on {spec.provider} does not let you choose sound; leave "
                       "--audio out")
    audio = (audio_default if args.audio is None else args.audio) if spec.takes_audio else None
    request = GenerationRequest(
        prompt=args.prompt,
        duration=duration,
        orientation=orientation or Orientation.LANDSCAPE,
        image=image,
        end_image=end,
        negative_prompt=args.negative_prompt,
        seed=args.seed,
        audio=audio,
    )
    checked = request
    if image is not None and spec.image.transport == "url":
        # The real URL comes from the webhook server later; everything else is checked now.
        placeholder = "https://placeholder.invalid/image"
        checked = request.model_copy(update={
            key: value.model_copy(update={"url": placeholder})
            for key, value in (("image", image), ("end_image", end)) if value is not None})
    try:
        validate_request(spec, checked)
    except ProviderError as exc:
        raise BadInput(exc.user_message) from None
    return request


def _fitted(path: Path, spec: ModelSpec, orientation: Orientation | None) -> SourceImage:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read the image {path}: {exc.strerror}") from None
    try:
        info = inspect_image(data)
        check_rules(info, spec.image)
        return fit_image(data, spec.image, orientation or image_orientation(info)).to_source(None)
    except ImageProblem as exc:
        raise BadInput(f"{path}: {exc.user_message}") from None


class Progress:
    """State and elapsed time on the terminal (one line, redrawn on a TTY)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self._last: tuple[str, int] | None = None

    def show(self, state: str, extra: str = "") -> None:
        elapsed = int(time.monotonic() - self.start)
        key = (state + extra, elapsed // 15)
        if not self.tty and key == self._last:
            return
        self._last = key
        line = f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {state}{extra}"
        write = self.stream.write
        if self.tty:
            write("\r\033[K" + line)
        else:
            write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")


async def _download(
    provider: VideoProvider,
    session: aiohttp.ClientSession,
    status: TaskStatus,
    out: Path,
    max_bytes: int,
) -> str:
    from bot.providers.download import DownloadError

    partial = out.with_name(f".{out.name}.part")
    try:
        await provider.download(session, status.video_urls[0], partial, max_bytes)
        info = await asyncio.to_thread(probe_mp4, partial)
    except (DownloadError, VideoProblem) as exc:
        partial.unlink(missing_ok=True)
        raise ProviderError(f"the result could not be used: {exc.user_message}") from None
    partial.replace(out)
    return f"{info.duration_s:.1f} s, {info.width}x{info.height}, {info.size_bytes / 1e6:.1f} MB"


async def run_job(args: GenerateArgs, settings: Settings, progress: Progress) -> str:
    spec = pick_model(args, settings)
    request = build_request(args, spec, settings.audio_default)
    out = args.out
    if out.parent and not out.parent.exists():
        raise BadInput(f"the folder {out.parent} does not exist")

    token = secrets.token_urlsafe(24)
    wake = asyncio.Event()
    delivered: list[TaskStatus] = []  # the final status a verified webhook carried

    async def on_callback(provider_name: str, path_token: str, body: bytes,
                          headers: Mapping[str, str]) -> bool:
        if provider_name != spec.provider or not hmac.compare_digest(path_token, token):
            return False
        if provider.signed_webhooks:  # verified first (raises: refused with a 4xx)
            news = await provider.read_webhook(headers, body)
            if news.status is not None:
                delivered.append(news.status)
        progress.show("callback received")
        wake.set()
        return True

    async def pushed() -> TaskStatus | None:
        return delivered[-1] if delivered else None

    async def health() -> dict[str, bool]:
        return {"cli": True}

    async with aiohttp.ClientSession() as session:
        provider = make_provider(spec.provider, settings, session)
        server: WebhookServer | None = None
        if settings.public_base_url:
            server = WebhookServer(
                settings.webhook_host,
                settings.webhook_port,
                on_callback=on_callback,
                health=health,
                public_base_url=settings.public_base_url,
            )
            await server.start()
        try:
            if request.image is not None and spec.image.transport == "url":
                hosted: dict[str, SourceImage] = {}
                for key in ("image", "end_image"):
                    image: SourceImage | None = getattr(request, key)
                    if image is None:
                        continue
                    url = await server.image_url(image.data, image.mime) if server else None
                    if url is None:
                        raise BadInput(
                            f"{spec.provider} fetches images by URL: set PUBLIC_BASE_URL so it "
                            "can reach this machine's webhook server"
                        )
                    hosted[key] = image.model_copy(update={"url": url})
                request = request.model_copy(update=hosted)
            callback_url = server.callback_url(spec.provider, token) if server else None
            progress.show(f"submitting to {spec.provider} ({spec.id})")
            task_id = await provider.submit(spec, request, callback_url)
            progress.show("submitted", f" (task {task_id})")
            schedule = PollSchedule.for_job(
                spec,
                request.duration,
                timeout_s=settings.job_timeout_s,
                first_s=settings.poll_first_s,
                interval_s=settings.poll_interval_s,
                callbacks=callback_url is not None,
            )

            async def on_status(status: TaskStatus, elapsed: float) -> None:
                pct = f" {status.progress:.0%}" if status.progress is not None else ""
                progress.show(status.state.value, pct)

            status = await wait_for_task(
                provider, spec, task_id, schedule,
                wake=wake if server else None, on_status=on_status, pushed=pushed,
                signed=provider.signed_webhooks,
            )
            if status.state is TaskState.FAILED or not status.video_urls:
                raise ProviderError(status.error_message or "the provider returned no video")
            progress.show("downloading")
            summary = await _download(provider, session, status, out, settings.max_video_bytes)
        finally:
            if server is not None:
                await server.stop()
    progress.done()
    note = " - a SANDBOX test card, made locally, not by AI" if spec.provider == "sandbox" else ""
    cost = request_price(spec, request.duration, settings.model_prices, shape=request.shape,
                         audio=bool(request.audio))
    price = "" if cost is None else f", est. {money(cost)}"
    made = f"{spec.id}: {request.duration} s of video{price}"
    return f"wrote {out} ({summary}; {made}){note}"


def generate(args: GenerateArgs, settings: Settings) -> int:
    progress = Progress()
    try:
        line = asyncio.run(run_job(args, settings, progress))
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SettingsError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AuthenticationFailed:
        provider = (args.provider or settings.provider).upper()
        progress.done()
        print(f"error: the {provider} API key was rejected; check {provider}_API_KEY",
              file=sys.stderr)
        return EXIT_FAILED
    except ProviderError as exc:
        progress.done()
        print(f"error: {exc.user_message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        progress.done()
        print("interrupted: a submitted task may still finish at the provider", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(line)
    return EXIT_OK
