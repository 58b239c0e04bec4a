"""Video checks, and shrinking with PyAV. A video over HOLD_IN_MEMORY_BYTES is never read
whole: it streams from disk.

``probe_mp4`` tells a real MP4/MOV from an HTML error page, another container or a
truncated download by its structure alone (bot/media/mp4.py), so posting a video never
imports PyAV; ``shrink_to_fit`` re-encodes a video to H.264/AAC under a byte cap
(Discord's upload limit). Both block: callers run them in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from bot.media import mp4

if TYPE_CHECKING:  # PyAV costs ~17 MB resident: imported only when a video is shrunk
    import av

log = logging.getLogger(__name__)

_MARGIN = 0.92  # share of the byte cap planned for; the rest absorbs rate-control error
_MIN_VIDEO_BPS = 40_000
_MIN_BITS_PER_PIXEL = 0.045  # below this per frame, x264 output is mush: downscale instead
_MIN_SHORT_SIDE = 144


class VideoProblem(Exception):
    """A video is unusable or cannot be made to fit; ``user_message`` is for chat."""

    def __init__(self, user_message: str, *, detail: str | None = None) -> None:
        self.user_message = user_message
        self.detail = detail
        super().__init__(user_message if detail is None else f"{user_message} ({detail})")


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float
    width: int
    height: int
    video_codec: str
    has_audio: bool
    size_bytes: int


# A finished video up to this size is held in memory from download to post: no disk.
HOLD_IN_MEMORY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class HeldVideo:
    """A finished video: its bytes when held in memory, else the file at ``path``
    (``path`` is also where a held video is written when it must be shrunk)."""

    path: Path
    data: bytes | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.path.stat().st_size

    def read_bytes(self) -> bytes:
        return self.data if self.data is not None else self.path.read_bytes()

    def probe(self) -> VideoInfo:
        return probe_mp4(self.path) if self.data is None else probe_mp4_bytes(self.data)

    def save(self) -> Path:
        """The video as a file (written, atomically, when it is held in memory)."""
        if self.data is not None:
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.part")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                tmp.write_bytes(self.data)
                os.replace(tmp, self.path)
            finally:
                tmp.unlink(missing_ok=True)
        return self.path


_NOT_VIDEO = "The provider's file is not a playable MP4 video."
_TRUNCATED = "The video file is incomplete (the download was cut short)."


def probe_mp4(path: Path) -> VideoInfo:
    """Check that ``path`` is a complete MP4/MOV with a video track whose every frame is
    in the file (bot/media/mp4.py: the boxes and sample tables, nothing decoded)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:

            def read(offset: int, length: int) -> bytes:
                fh.seek(offset)
                return fh.read(length)

            return _probe(read, size)
    except OSError as exc:
        raise VideoProblem("The video file is missing.", detail=type(exc).__name__) from None


def probe_mp4_bytes(data: bytes) -> VideoInfo:
    """``probe_mp4`` for a video held in memory."""
    view = memoryview(data)
    return _probe(lambda offset, length: bytes(view[offset : offset + length]), len(data))


def _probe(read: mp4.Read, size: int) -> VideoInfo:
    if size == 0:
        raise VideoProblem("The video file is empty.")
    try:
        layout = mp4.read_layout(read, size)
    except mp4.Malformed as exc:
        raise VideoProblem(_TRUNCATED if exc.truncated else _NOT_VIDEO, detail=exc.detail) from None
    return VideoInfo(
        duration_s=layout.duration_s,
        width=layout.width,
        height=layout.height,
        video_codec=layout.codec,
        has_audio=layout.has_audio,
        size_bytes=size,
    )


def shrink_to_fit(src: Path, dest: Path, max_bytes: int) -> VideoInfo:
    """Re-encode ``src`` into ``dest`` (H.264 yuv420p, AAC, faststart) under ``max_bytes``.

    The bitrate comes from the duration and the cap with a safety margin; the picture is
    downscaled when the bits per pixel would be too few. One retry at a lower bitrate if
    the first result is still too big, then VideoProblem.
    """
    src, dest = Path(src), Path(dest)
    info = probe_mp4(src)
    if info.duration_s <= 0:
        raise VideoProblem(_NOT_VIDEO, detail="unknown duration")
    cannot_fit = (
        "The video is too large to post here, even after shrinking it "
        f"(the limit is {max_bytes / 1_048_576:.1f} MB)."
    )
    overhead = 8_192 + int(info.duration_s * 60 * 24)  # moov tables and headers
    total_bps = max(0.0, (max_bytes * _MARGIN - overhead) * 8 / info.duration_s)
    audio_bps = 0
    if info.has_audio:
        audio_bps = 64_000 if total_bps >= 640_000 else 32_000
    video_bps = int(total_bps - audio_bps)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        for attempt in (1, 2):
            if video_bps < _MIN_VIDEO_BPS:
                raise VideoProblem(cannot_fit, detail=f"only {video_bps} bit/s left for video")
            _transcode(src, tmp, info, video_bps, audio_bps)
            produced = tmp.stat().st_size
            log.info(
                "shrink attempt %d: %d -> %d bytes (cap %d, video %d bit/s)",
                attempt,
                info.size_bytes,
                produced,
                max_bytes,
                video_bps,
            )
            if produced <= max_bytes:
                os.replace(tmp, dest)
                return probe_mp4(dest)
            video_bps = int(video_bps * (max_bytes * _MARGIN / produced) * 0.9)
        raise VideoProblem(cannot_fit, detail="still over the cap after a retry")
    finally:
        tmp.unlink(missing_ok=True)


async def shrink_to_fit_async(src: Path, dest: Path, max_bytes: int) -> VideoInfo:
    return await asyncio.to_thread(shrink_to_fit, src, dest, max_bytes)


def _target_size(width: int, height: int, fps: float, video_bps: int) -> tuple[int, int]:
    """The largest even size (aspect kept, never upscaled) with enough bits per pixel."""
    scale = 1.0
    bpp = video_bps / (width * height * fps)
    if bpp < _MIN_BITS_PER_PIXEL:
        scale = math.sqrt(bpp / _MIN_BITS_PER_PIXEL)
        scale = max(scale, _MIN_SHORT_SIDE / min(width, height))
    scale = min(scale, 1.0)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def _transcode(src: Path, tmp: Path, info: VideoInfo, video_bps: int, audio_bps: int) -> None:
    import av

    try:
        with av.open(str(src), "r") as inp:
            vin = inp.streams.video[0]
            vin.thread_type = "AUTO"
            ain = inp.streams.audio[0] if audio_bps and inp.streams.audio else None
            rate = vin.average_rate or vin.guessed_rate or Fraction(30)
            fps = Fraction(rate).limit_denominator(1001)
            if not 1 <= fps <= 60:
                fps = Fraction(30)
            width, height = _target_size(info.width, info.height, float(fps), video_bps)
            with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
                vout = out.add_stream("libx264", rate=fps)
                vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
                vout.bit_rate = video_bps
                vout.options = {
                    "preset": "veryfast",
                    "maxrate": str(video_bps),
                    "bufsize": str(video_bps * 2),
                }
                aout = None
                if ain is not None:
                    channels = min(2, max(1, ain.codec_context.channels))
                    aout = out.add_stream("aac", rate=ain.codec_context.sample_rate or 48_000)
                    aout.layout = "stereo" if channels == 2 else "mono"
                    aout.bit_rate = audio_bps
                _copy(inp, out, vin, vout, ain, aout, fps)
    except av.FFmpegError as exc:
        raise VideoProblem(
            "The video could not be re-encoded.", detail=f"{type(exc).__name__}: {exc.strerror}"
        ) from None


def _copy(
    inp: av.container.InputContainer,
    out: av.container.OutputContainer,
    vin: av.VideoStream,
    vout: av.VideoStream,
    ain: av.AudioStream | None,
    aout: av.AudioStream | None,
    fps: Fraction,
) -> None:
    """Decode, scale and encode every frame, muxing as it goes (constant memory)."""
    import av

    width, height = vout.width, vout.height
    last_pts = -1
    for packet in inp.demux([vin] if ain is None else [vin, ain]):
        for frame in packet.decode():
            if isinstance(frame, av.VideoFrame):
                pts = round(frame.time * fps) if frame.time is not None else last_pts + 1
                if pts <= last_pts:
                    continue  # keep timestamps strictly increasing
                last_pts = pts
                picture = frame.reformat(width=width, height=height, format="yuv420p")
                picture.pts = pts
                picture.time_base = Fraction(1) / fps
                out.mux(vout.encode(picture))
            elif isinstance(frame, av.AudioFrame) and aout is not None:
                out.mux(aout.encode(frame))
    out.mux(vout.encode(None))
    if aout is not None:
        out.mux(aout.encode(None))
