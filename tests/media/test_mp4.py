"""The MP4 structure reader on files built box by box (each case a layout real muxers
write: 32- and 64-bit offsets and sizes, compact sample sizes, or a broken one)."""

from __future__ import annotations

import struct

import pytest

from bot.media.mp4 import Layout, Malformed, read_layout


def box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full(kind: bytes, *parts: bytes) -> bytes:
    """A "full box": version 0 and no flags before its fields."""
    return box(kind, b"\0\0\0\0", *parts)


def sizes_box(frames: list[int], kind: str) -> bytes:
    n = len(frames)
    if kind == "stsz":
        return full(b"stsz", struct.pack(f">II{n}I", 0, n, *frames))
    if kind == "stsz-constant":
        assert len(set(frames)) == 1
        return full(b"stsz", struct.pack(">II", frames[0], n))
    if kind == "stz2-16":
        return full(b"stz2", b"\0\0\0\x10", struct.pack(f">I{n}H", n, *frames))
    assert kind == "stz2-4"
    padded = [*frames, 0] if n % 2 else frames
    nibbles = bytes(padded[i] << 4 | padded[i + 1] for i in range(0, len(padded), 2))
    return full(b"stz2", b"\0\0\0\x04", struct.pack(">I", n), nibbles)


def movie(
    frames: list[int],
    *,
    sizes: str = "stsz",
    wide: bool = False,
    handler: bytes = b"vide",
    per_chunk: int = 1,
    chunks: int | None = None,
    shift: int = 0,
) -> bytes:
    """ftyp, moov (one track of ``frames``, 1000 units a second, 2 s), mdat.

    ``wide``: 64-bit chunk offsets (co64) and a 64-bit mdat size; ``shift`` moves every
    chunk offset; ``chunks`` lists fewer chunks than the frames need."""
    ftyp = box(b"ftyp", b"isom", b"\0\0\2\0", b"isomiso2avc1mp41")
    entry = box(b"avc1", b"\0" * 6, struct.pack(">H", 1), b"\0" * 16,
                struct.pack(">HH", 320, 240), b"\0" * 50)
    stsd = full(b"stsd", struct.pack(">I", 1), entry)
    stsc = full(b"stsc", struct.pack(">IIII", 1, 1, per_chunk, 1))
    count = chunks if chunks is not None else -(-len(frames) // per_chunk)

    def build(offsets: list[int]) -> bytes:
        if wide:
            table = full(b"co64", struct.pack(f">I{count}Q", count, *offsets))
        else:
            table = full(b"stco", struct.pack(f">I{count}I", count, *offsets))
        stbl = box(b"stbl", stsd, sizes_box(frames, sizes), stsc, table)
        mdia = box(
            b"mdia",
            full(b"mdhd", struct.pack(">IIII", 0, 0, 1000, 2000), b"\0" * 4),
            full(b"hdlr", b"\0" * 4, handler, b"\0" * 12),
            box(b"minf", stbl),
        )
        mvhd = full(b"mvhd", struct.pack(">IIII", 0, 0, 1000, 2000), b"\0" * 80)
        return box(b"moov", mvhd, box(b"trak", mdia))

    header = 16 if wide else 8
    start = len(ftyp) + len(build([0] * count)) + header
    offsets, at = [], start
    for index in range(0, count * per_chunk, per_chunk):
        offsets.append(at + shift)
        at += sum(frames[index : index + per_chunk])
    media = bytes(range(256)) * (sum(frames) // 256 + 1)
    media = media[: sum(frames)]
    if wide:
        mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + len(media)) + media
    else:
        mdat = box(b"mdat", media)
    return ftyp + build(offsets) + mdat


def layout(data: bytes) -> Layout:
    return read_layout(lambda offset, length: data[offset : offset + length], len(data))


FRAMES = [900, 120, 130, 110, 500, 90, 95]


@pytest.mark.parametrize("sizes", ["stsz", "stz2-16"])
@pytest.mark.parametrize("wide", [False, True])
def test_a_complete_movie_is_read(sizes: str, wide: bool) -> None:
    found = layout(movie(FRAMES, sizes=sizes, wide=wide, per_chunk=3))
    assert found == Layout(duration_s=2.0, width=320, height=240, codec="h264",
                           has_audio=False)


@pytest.mark.parametrize("frames", [[15, 1, 2], [3, 14, 15, 1]])
def test_four_bit_sample_sizes_are_read(frames: list[int]) -> None:
    assert layout(movie(frames, sizes="stz2-4")).width == 320


def test_one_size_for_every_frame_is_read() -> None:
    assert layout(movie([400] * 6, sizes="stsz-constant", per_chunk=2)).codec == "h264"


def test_frames_past_the_end_of_the_file_are_a_cut_download() -> None:
    data = movie(FRAMES)
    mdat = data.index(b"mdat") - 4
    open_ended = data[:mdat] + struct.pack(">I", 0) + data[mdat + 4 :]  # "to the end"
    assert layout(open_ended).width == 320
    with pytest.raises(Malformed) as err:
        layout(open_ended[: len(open_ended) - 200])
    assert err.value.truncated
    assert "past the end" in err.value.detail


def test_a_frame_outside_the_media_data_is_refused() -> None:
    with pytest.raises(Malformed) as err:
        layout(movie(FRAMES, shift=-40))  # every chunk starts inside the moov
    assert not err.value.truncated
    assert "outside the media data" in err.value.detail


def test_a_track_without_frames_is_refused() -> None:
    with pytest.raises(Malformed, match="no frames"):
        layout(movie([]))


def test_a_file_without_a_video_track_is_refused() -> None:
    with pytest.raises(Malformed, match="no video track"):
        layout(movie(FRAMES, handler=b"soun"))


def test_chunks_that_hold_fewer_frames_than_the_track_are_refused() -> None:
    with pytest.raises(Malformed, match="fewer frames"):
        layout(movie(FRAMES, chunks=3))


def test_a_sample_table_shorter_than_its_count_is_refused() -> None:
    data = movie(FRAMES)
    at = data.index(b"stsz") + 12  # the sample count
    lying = data[:at] + struct.pack(">I", 10_000) + data[at + 4 :]
    with pytest.raises(Malformed, match="shorter than its count"):
        layout(lying)


def test_a_missing_movie_box_after_media_data_means_a_cut_file() -> None:
    data = movie(FRAMES)
    moov = data.index(b"moov") - 4
    without = data[:moov] + data[data.index(b"mdat") - 4 :]
    with pytest.raises(Malformed) as err:
        layout(without)
    assert err.value.truncated


def crafted_stz2(count: int, *, per_chunk: int, packed_bytes: int) -> bytes:
    """A small valid movie whose 4-bit sample size table claims ``count`` samples (its
    packed table ``packed_bytes`` long) and whose chunk table places ``per_chunk``."""
    data = movie([3, 5, 7, 9], sizes="stz2-4")
    start = data.index(b"stz2") - 4
    end = start + struct.unpack(">I", data[start:start + 4])[0]
    big = full(b"stz2", b"\0\0\0\x04", struct.pack(">I", count), b"\x11" * packed_bytes)
    data = data[:start] + big + data[end:]
    at = data.index(b"stsc") + 16  # samples per chunk of the one run
    data = data[:at] + struct.pack(">I", per_chunk) + data[at + 4:]
    grow = len(big) - (end - start)  # the boxes around the table grew with it
    for kind in (b"stbl", b"minf", b"mdia", b"trak", b"moov"):
        pos = data.index(kind) - 4
        size = struct.unpack(">I", data[pos:pos + 4])[0]
        data = data[:pos] + struct.pack(">I", size + grow) + data[pos + 4:]
    at = data.index(b"stco") + 12
    offset = struct.unpack(">I", data[at:at + 4])[0]  # the media moved along
    return data[:at] + struct.pack(">I", offset + grow) + data[at + 4:]


def refused_cheaply(data: bytes, match: str, mib: float) -> None:
    """``data`` is refused (the message matching ``match``) within ``mib`` MiB of memory."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(Malformed, match=match):
            layout(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < mib * 1024 * 1024, f"{peak / 2**20:.1f} MiB to refuse it"


def test_a_crafted_four_bit_table_is_refused_before_it_is_expanded() -> None:
    """A 4-bit table claiming two samples per byte of the whole file (and chunk tables
    that could place them all) is refused at once, never unpacked sample by sample: on a
    30 MB file that took 28 s and 543 MiB."""
    data = crafted_stz2(8_000_000, per_chunk=2**31, packed_bytes=4_000_000)
    refused_cheaply(data, "more frames than the file has bytes", 12)


def test_a_table_larger_than_its_chunks_place_is_refused_before_it_is_expanded() -> None:
    data = crafted_stz2(2_000_000, per_chunk=3, packed_bytes=2_500_000)
    refused_cheaply(data, "fewer frames", 6)


def test_a_long_four_bit_table_is_still_read() -> None:
    frames = [1 + i % 15 for i in range(60_001)]  # odd: the last byte holds one size
    assert layout(movie(frames, sizes="stz2-4", per_chunk=600)).width == 320
