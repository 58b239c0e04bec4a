"""Media helpers for the provider emulators: a tiny MP4 maker and a loopback-only image
loader/checker (Pillow). Re-exported by ``common``."""

from __future__ import annotations

import base64
import binascii
import functools
import io
import os
import random
from array import array
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import aiohttp
from PIL import Image

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_IMAGE_BYTES = 10 * 1024 * 1024
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP")


def is_loopback_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and host in LOOPBACK_HOSTS


def is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def is_int(value: Any) -> bool:
    """True for real integers (JSON numbers without a fraction), never for bools or strings."""
    return isinstance(value, int) and not isinstance(value, bool)


@functools.lru_cache(maxsize=64)
def make_mp4(seconds: float = 1.0, width: int = 320, height: int = 180, fps: int = 4) -> bytes:
    """A small real H.264/yuv420p MP4 (a few flat-colour frames), cached per arguments."""
    import av

    width, height = max(2, width - width % 2), max(2, height - height % 2)
    frames = max(2, round(seconds * fps))
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            shade = (40 + 200 * i // frames, 90, 160)
            frame = av.VideoFrame.from_image(Image.new("RGB", (width, height), shade))  # type: ignore[no-untyped-call,unused-ignore]
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buf.getvalue()


def small_dims(width: int, height: int, long_side: int = 320) -> tuple[int, int]:
    """Scale (width, height) down so the long side is ``long_side``; even numbers."""
    scale = long_side / max(width, height)
    w, h = round(width * scale), round(height * scale)
    return max(2, w - w % 2), max(2, h - h % 2)


class ImageInfo(NamedTuple):
    format: str
    width: int
    height: int


class ImageProblem(Exception):
    """Why an image was refused; ``reason`` is one of bad_url, not_loopback, unreachable,
    too_large, undecodable, bad_format."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _megabytes(limit: int) -> str:
    return f"{limit / (1024 * 1024):g} MB"


def decode_image(data: bytes, max_bytes: int = MAX_IMAGE_BYTES) -> ImageInfo:
    if len(data) > max_bytes:
        raise ImageProblem("too_large",
                           f"image is {len(data)} bytes; the limit is {_megabytes(max_bytes)}")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height) = img.format or "", img.size
            img.load()
    except Exception as exc:  # Pillow raises many types for bad data
        raise ImageProblem("undecodable", f"image does not decode: {exc}") from None
    if fmt not in IMAGE_FORMATS:
        raise ImageProblem("bad_format", f"image format {fmt} is not JPEG, PNG or WebP")
    return ImageInfo(fmt, width, height)


async def load_image(
    session: aiohttp.ClientSession, ref: str, *, allow_data_uri: bool = False,
    max_bytes: int = MAX_IMAGE_BYTES,
) -> ImageInfo:
    """Fetch a loopback http(s) image URL (or decode a data:image/...;base64 URI) and check
    it with Pillow; at most ``max_bytes``. Raises ImageProblem."""
    if not isinstance(ref, str):
        raise ImageProblem("bad_url", "image reference must be a string")
    if ref.startswith("data:"):
        header, sep, payload = ref.partition(",")
        if not (allow_data_uri and sep and header.startswith("data:image/")):
            raise ImageProblem("bad_url", "data URIs are not accepted here")
        if not header.endswith(";base64"):
            raise ImageProblem("bad_url", "data URI must be base64 encoded")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ImageProblem("undecodable", "data URI is not valid base64") from None
        return decode_image(data, max_bytes)
    if not is_http_url(ref):
        raise ImageProblem("bad_url", "image must be an http(s) URL")
    if not is_loopback_url(ref):
        raise ImageProblem("not_loopback", "emulator refuses to fetch non-loopback URLs")
    chunks, total = [], 0
    try:
        async with session.get(ref, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            if resp.status != 200:
                raise ImageProblem("unreachable", f"image URL answered HTTP {resp.status}")
            async for chunk in resp.content.iter_chunked(1 << 16):
                chunks.append(chunk)
                total += len(chunk)
                if total > max_bytes:
                    raise ImageProblem("too_large",
                                       f"image is larger than {_megabytes(max_bytes)}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ImageProblem("unreachable", f"cannot fetch image: {exc!r}") from None
    return decode_image(b"".join(chunks), max_bytes)


def write_noise_video(
    path: Path, *, seconds: int = 4, fps: int = 12, size: tuple[int, int] = (320, 240)
) -> None:
    """A hard-to-compress H.264 + AAC MP4 (random pixels and hiss, near-lossless)."""
    import av

    width, height = size
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "8"}
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "stereo"
        audio.bit_rate = 192_000
        for index in range(seconds * fps):
            frame = av.VideoFrame.from_bytes(
                os.urandom(width * height * 4), width, height, format="rgba"
            ).reformat(format="yuv420p")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for start in range(0, seconds * 48000, 1024):
            chunk = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
            for plane in chunk.planes:
                hiss = array("f", (random.uniform(-0.3, 0.3) for _ in range(1024)))
                plane.update(hiss.tobytes())
            chunk.sample_rate = 48000
            chunk.pts = start
            chunk.time_base = Fraction(1, 48000)
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))


@functools.lru_cache(maxsize=8)
def make_mp4_with_sound(seconds: float = 2.0, width: int = 640, height: int = 360,
                        fps: int = 12, noisy: bool = False) -> bytes:
    """A real H.264 + AAC MP4: a 440 Hz tone under the pictures (noise pictures with
    ``noisy``, so that shrinking it has work to do)."""
    import math

    import av

    frames = max(2, round(seconds * fps))
    rate, samples = 48_000, 1024
    buf = io.BytesIO()
    rng = random.Random(7)
    with av.open(buf, mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "10" if noisy else "23"}
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "mono"
        for i in range(frames):
            if noisy:
                pixels = rng.randbytes(width * height * 3)
                image = Image.frombytes("RGB", (width, height), pixels)
            else:
                image = Image.new("RGB", (width, height), (40 + 200 * i // frames, 90, 160))
            frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call,unused-ignore]
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        for block in range(int(seconds * rate / samples)):
            tone = array("f", (0.3 * math.sin(2 * math.pi * 440 * (block * samples + n) / rate)
                               for n in range(samples)))
            sound = av.AudioFrame(format="flt", layout="mono", samples=samples)
            sound.planes[0].update(tone.tobytes())
            sound.sample_rate, sound.pts = rate, block * samples
            sound.time_base = Fraction(1, rate)
            container.mux(audio.encode(sound))
        container.mux(audio.encode(None))
    return buf.getvalue()
