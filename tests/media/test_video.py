from __future__ import annotations

from pathlib import Path

import av
import pytest

from bot.catalog import Orientation
from bot.media.testcard import make_test_card
from bot.media.video import (
    HeldVideo,
    VideoProblem,
    _target_size,
    probe_mp4,
    probe_mp4_bytes,
    shrink_to_fit,
    shrink_to_fit_async,
)
from tests.fakes.media import make_mp4_with_sound


def count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_probe_of_a_real_mp4(card_mp4: Path) -> None:
    info = probe_mp4(card_mp4)
    assert info.duration_s == pytest.approx(4.0, abs=0.1)
    assert (info.width, info.height) == (640, 360)
    assert info.video_codec == "h264"
    assert info.has_audio
    assert info.size_bytes == card_mp4.stat().st_size


def test_html_page_saved_as_mp4_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "video.mp4"
    page.write_text("<!DOCTYPE html><html><body>403 Forbidden: signature expired</body></html>")
    with pytest.raises(VideoProblem) as err:
        probe_mp4(page)
    assert err.value.user_message == "The provider's file is not a playable MP4 video."
    assert "HTML" in str(err.value)


@pytest.mark.parametrize("content", [b"", b"hi", b"\x00" * 5000])
def test_empty_or_junk_files_are_refused(tmp_path: Path, content: bytes) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(content)
    with pytest.raises(VideoProblem):
        probe_mp4(junk)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VideoProblem, match="missing"):
        probe_mp4(tmp_path / "nope.mp4")


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.02])
def test_truncated_mp4_is_refused(tmp_path: Path, card_mp4: Path, keep: float) -> None:
    data = card_mp4.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(VideoProblem, match="incomplete"):
        probe_mp4(cut)


def test_other_container_is_refused(tmp_path: Path) -> None:
    mkv = tmp_path / "clip.mp4"  # a Matroska file wearing an .mp4 name
    with av.open(str(mkv), "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        frame = av.VideoFrame(64, 64, "yuv420p")
        frame.pts = 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with pytest.raises(VideoProblem, match="not a playable MP4"):
        probe_mp4(mkv)


def test_a_video_held_in_memory_probes_as_its_file(card_mp4: Path, tmp_path: Path) -> None:
    held = HeldVideo(tmp_path / "held.mp4", card_mp4.read_bytes())
    assert probe_mp4_bytes(card_mp4.read_bytes()) == held.probe() == probe_mp4(card_mp4)
    assert held.size == card_mp4.stat().st_size
    assert held.save() == held.path and held.path.read_bytes() == card_mp4.read_bytes()
    assert HeldVideo(held.path).probe() == probe_mp4(card_mp4)


def _encode(path: Path, *, video: bool, audio: bool, movflags: str = "") -> None:
    options = {"movflags": movflags} if movflags else {}
    with av.open(str(path), "w", format="mp4", options=options) as out:
        vstream = out.add_stream("libx264", rate=12) if video else None
        astream = out.add_stream("aac", rate=48_000) if audio else None
        if vstream is not None:
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
            for index in range(24):
                frame = av.VideoFrame(64, 48, "yuv420p")
                frame.pts = index
                out.mux(vstream.encode(frame))
            out.mux(vstream.encode(None))
        if astream is not None:
            for index in range(10):
                sound = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
                for plane in sound.planes:
                    plane.update(bytes(plane.buffer_size))
                sound.sample_rate, sound.pts = 48_000, index * 1024
                out.mux(astream.encode(sound))
            out.mux(astream.encode(None))


def test_a_fragmented_mp4_is_accepted(tmp_path: Path) -> None:
    clip = tmp_path / "fragmented.mp4"
    _encode(clip, video=True, audio=False, movflags="frag_keyframe+empty_moov")
    info = probe_mp4(clip)
    assert (info.width, info.height, info.video_codec) == (64, 48, "h264")


def test_sound_without_pictures_is_refused(tmp_path: Path) -> None:
    clip = tmp_path / "sound.mp4"
    _encode(clip, video=False, audio=True)
    with pytest.raises(VideoProblem, match="not a playable MP4") as err:
        probe_mp4(clip)
    assert "no video track" in str(err.value)


def test_shrink_noise_video_under_the_cap(tmp_path: Path, noise_mp4: Path) -> None:
    original = probe_mp4(noise_mp4)
    cap = 400_000
    assert original.size_bytes > 3 * cap
    out = tmp_path / "small.mp4"
    info = shrink_to_fit(noise_mp4, out, cap)
    assert out.stat().st_size == info.size_bytes <= cap
    assert info.video_codec == "h264" and info.has_audio
    assert info.duration_s == pytest.approx(original.duration_s, abs=0.25)
    assert count_frames(out) == count_frames(noise_mp4)
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


async def test_shrink_a_test_card_to_a_smaller_cap(tmp_path: Path) -> None:
    card = tmp_path / "card.mp4"
    make_test_card(
        card,
        prompt="shrink me",
        duration_s=8,
        orientation=Orientation.LANDSCAPE,
        size=(1280, 720),
        audio=True,
    )
    cap = 120_000
    assert card.stat().st_size > cap
    out = tmp_path / "card-small.mp4"
    info = await shrink_to_fit_async(card, out, cap)
    assert info.size_bytes <= cap and info.has_audio
    assert count_frames(out) == 8 * 12


def test_shrink_to_a_tight_cap(tmp_path: Path, noise_mp4: Path) -> None:
    out = tmp_path / "tiny.mp4"
    info = shrink_to_fit(noise_mp4, out, 60_000)
    assert info.size_bytes <= 60_000
    assert count_frames(out) == 48


def test_downscaling_keeps_the_aspect_and_even_sizes() -> None:
    # 1280x720 at 30 fps with 500 kbit/s is too few bits per pixel: scale down.
    width, height = _target_size(1280, 720, 30.0, 500_000)
    assert width < 1280 and width % 2 == 0 and height % 2 == 0
    assert width / height == pytest.approx(16 / 9, rel=0.02)
    # Plenty of bits: never upscaled, never changed.
    assert _target_size(1280, 720, 30.0, 8_000_000) == (1280, 720)
    # Starved: not below the floor of 144 px on the short side.
    assert min(_target_size(1280, 720, 30.0, 1_000)) >= 144


def test_shrink_refuses_an_impossible_cap(tmp_path: Path, noise_mp4: Path) -> None:
    out = tmp_path / "never.mp4"
    with pytest.raises(VideoProblem, match="too large to post"):
        shrink_to_fit(noise_mp4, out, 10_000)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def audio_seconds(path: Path) -> float:
    """How long the decodable sound in a file lasts."""
    with av.open(str(path)) as container:
        assert container.streams.audio, "no audio stream"
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / (stream.codec_context.sample_rate or 48_000)


def test_sound_survives_the_check_and_the_shrink(tmp_path: Path) -> None:
    """A result with an AAC track (Veo with sound): the structure check accepts it and
    says it has sound, and a shrunk copy keeps a decodable track as long as the video."""
    src = tmp_path / "with-sound.mp4"
    src.write_bytes(make_mp4_with_sound(2.0, noisy=True))
    info = probe_mp4(src)
    assert info.has_audio and info.size_bytes > 3_000_000
    out = tmp_path / "shrunk.mp4"
    shrunk = shrink_to_fit(src, out, 1_500_000)
    assert out.stat().st_size <= 1_500_000
    assert shrunk.has_audio
    assert abs(audio_seconds(out) - 2.0) < 0.2
    assert abs(shrunk.duration_s - 2.0) < 0.3
