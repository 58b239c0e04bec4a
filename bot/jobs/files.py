"""The job service's working files: source images kept for Retry, downloaded videos."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.catalog import ModelSpec, Orientation
from bot.media.images import ImageInfo, ImageProblem, inspect_image
from bot.providers.base import GenerationRequest, SourceImage
from bot.providers.errors import ProviderError
from bot.store import Job
from bot.web.server import WebhookServer

EXTENSIONS = {"image/png": "png", "image/webp": "webp"}


async def save_image(work_dir: Path, job_id: str, image: SourceImage) -> Path:
    path = work_dir / "images" / f"{job_id}.{EXTENSIONS.get(image.mime, 'jpg')}"
    await asyncio.to_thread(path.write_bytes, image.data)
    return path


def _load_image(path: Path) -> tuple[bytes, ImageInfo]:
    data = path.read_bytes()
    return data, inspect_image(data)


PLACEHOLDER_URL = "https://placeholder.invalid/image"


async def build_request(
    job: Job, spec: ModelSpec, webhook: WebhookServer | None, *,
    placeholder_urls: bool = False,
) -> GenerationRequest:
    """The provider request for a stored job; the images are handed over as the model
    wants them (the bot's own URL when public, else the attachment's URL, or inline).
    ``placeholder_urls``: only to check the request (nothing is hosted)."""
    fallback = PLACEHOLDER_URL if placeholder_urls else None
    image = await _kept(job.id, job.image_path, job.context.get("image_url") or fallback,
                        spec, webhook)
    end = await _kept(job.id, job.context.get("end_image_path"),
                      job.context.get("end_image_url") or fallback, spec, webhook)
    extras = job.context.get("options") or {}
    negative, seed, audio = extras.get("negative_prompt"), extras.get("seed"), extras.get("audio")
    return GenerationRequest(
        prompt=job.prompt,
        duration=job.duration,
        orientation=Orientation(job.orientation),
        image=image,
        end_image=end if image is not None else None,
        negative_prompt=negative if isinstance(negative, str) else None,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        audio=audio if isinstance(audio, bool) and spec.takes_audio else None,
    )


async def _kept(
    job_id: str, path: str | None, fallback_url: str | None, spec: ModelSpec,
    webhook: WebhookServer | None,
) -> SourceImage | None:
    if not path:
        return None
    try:
        # Reading and decoding (Pillow: CPU-bound) happen in a worker thread.
        data, info = await asyncio.to_thread(_load_image, Path(path))
    except (OSError, ImageProblem):
        raise ProviderError("The source image was lost; please ask again.") from None
    url: str | None = None
    if spec.image.transport == "url":
        url = await webhook.image_url(data, info.mime, job_id) if webhook else None
        url = url or fallback_url
        if not url:
            raise ProviderError("The image could not be handed to the provider.")
    return SourceImage(data=data, mime=info.mime, width=info.width, height=info.height, url=url)


def sweep(work_dir: Path, busy: set[str], cutoff: float) -> int:
    """Delete images and leftover videos last changed before ``cutoff`` (Unix time),
    except those of the jobs in ``busy``. Returns how many files went."""
    removed = 0
    for sub in ("images", "videos"):
        for path in (work_dir / sub).glob("*"):
            if path.name.split(".", 1)[0] in busy or path.stat().st_mtime > cutoff:
                continue
            path.unlink(missing_ok=True)
            removed += 1
    return removed
