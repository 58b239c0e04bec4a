"""The structure of an MP4/MOV file, read in pure Python (ISO/IEC 14496-12 boxes).

``read_layout`` walks the top-level boxes, reads the movie box (``moov``) and checks that
every frame its sample tables name lies inside the file's media data (``mdat``). That
tells a real, complete video from an HTML error page, another container or a truncated
download without decoding anything: a player finds each frame through those same tables.
It reads only box headers and the movie box, from bytes in memory or from a file.
"""

from __future__ import annotations

import bisect
import struct
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from sys import byteorder

# (offset, length) -> the bytes there (fewer at the end of the file).
Read = Callable[[int, int], bytes]

# Box types an MP4/MOV-family file may start with.
FIRST_BOXES = {b"ftyp", b"styp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid"}
MAX_TOP_BOXES = 200_000
MAX_MOOV_BYTES = 32 * 1024 * 1024
CODEC_NAMES = {
    b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc", b"av01": "av1",
    b"vp09": "vp9", b"vp08": "vp8", b"mp4v": "mpeg4",
}


class Malformed(Exception):
    """Not a usable MP4/MOV: ``truncated`` when the file looks cut short."""

    def __init__(self, detail: str, *, truncated: bool = False) -> None:
        self.detail = detail
        self.truncated = truncated
        super().__init__(detail)


@dataclass(frozen=True)
class Layout:
    duration_s: float
    width: int
    height: int
    codec: str
    has_audio: bool


@dataclass(frozen=True)
class Box:
    kind: bytes
    start: int  # the first byte of the payload
    end: int  # one past the last byte


@dataclass
class _Track:
    handler: bytes = b""
    timescale: int = 0
    duration: int = 0
    fourcc: bytes = b""
    width: int = 0
    height: int = 0
    sample_count: int = 0


def read_layout(read: Read, size: int) -> Layout:
    """The video's layout; Malformed when it is not a complete, playable MP4/MOV."""
    top = top_boxes(read, size)
    moov = next((box for box in top if box.kind == b"moov"), None)
    if moov is None:
        has_media = any(box.kind == b"mdat" for box in top)
        raise Malformed("no movie box", truncated=has_media)
    if moov.end - moov.start > MAX_MOOV_BYTES:
        raise Malformed(f"a movie box of {moov.end - moov.start} bytes")
    buf = read(moov.start, moov.end - moov.start)
    mdats = sorted((box.start, box.end) for box in top if box.kind == b"mdat")
    fragmented = _child(buf, 0, len(buf), b"mvex") is not None and any(
        box.kind == b"moof" for box in top
    )
    tracks = [
        _track(buf, trak, mdats, size)
        for trak in _children(buf, 0, len(buf))
        if trak.kind == b"trak"
    ]
    video = next((t for t in tracks if t.handler == b"vide" and t.fourcc), None)
    if video is None:
        raise Malformed("no video track")
    if video.sample_count == 0 and not fragmented:
        raise Malformed("the video track has no frames")
    if video.width <= 0 or video.height <= 0:
        raise Malformed("no picture size")
    return Layout(
        duration_s=_duration(buf, tracks),
        width=video.width,
        height=video.height,
        codec=CODEC_NAMES.get(video.fourcc, video.fourcc.decode("latin-1").strip()),
        has_audio=any(t.handler == b"soun" for t in tracks),
    )


def top_boxes(read: Read, size: int) -> list[Box]:
    """The top-level boxes: wrong magic first, or a box past the end, is fatal."""
    boxes: list[Box] = []
    pos = 0
    for index in range(MAX_TOP_BOXES):
        if size - pos < 8:
            if index == 0:
                raise Malformed("too short to be a video")
            return boxes  # a few bytes of trailing padding are harmless
        head = read(pos, 16)
        box_size, kind = struct.unpack(">I4s", head[:8])
        if index == 0 and kind not in FIRST_BOXES:
            looks = "an HTML or text page" if head.lstrip()[:1] in (b"<", b"{") else "no MP4"
            raise Malformed(f"starts like {looks}")
        header = 8
        if box_size == 1:
            if len(head) < 16:
                raise Malformed("cut inside a box header", truncated=True)
            box_size, header = struct.unpack(">Q", head[8:16])[0], 16
        elif box_size == 0:
            box_size = size - pos  # "extends to the end of the file"
        if box_size < header:
            raise Malformed(f"bad box size at offset {pos}")
        if pos + box_size > size:
            raise Malformed(f"{kind!r} box ends past the file end", truncated=True)
        boxes.append(Box(kind, pos + header, pos + box_size))
        pos += box_size
        if pos == size:
            return boxes
    raise Malformed(f"more than {MAX_TOP_BOXES} top-level boxes")


def _children(buf: bytes, start: int, end: int) -> Iterator[Box]:
    pos = start
    while end - pos >= 8:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1:
            size, header = _u64(buf, pos + 8, end), 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise Malformed(f"the {kind!r} box does not fit in its parent")
        yield Box(kind, pos + header, pos + size)
        pos += size


def _child(buf: bytes, start: int, end: int, *path: bytes) -> Box | None:
    """The first box along ``path`` below the span, or None."""
    found: Box | None = None
    for kind in path:
        found = next((box for box in _children(buf, start, end) if box.kind == kind), None)
        if found is None:
            return None
        start, end = found.start, found.end
    return found


def _u16(buf: bytes, pos: int, end: int) -> int:
    return int(_unpack(">H", buf, pos, end))


def _u32(buf: bytes, pos: int, end: int) -> int:
    return int(_unpack(">I", buf, pos, end))


def _u64(buf: bytes, pos: int, end: int) -> int:
    return int(_unpack(">Q", buf, pos, end))


def _unpack(fmt: str, buf: bytes, pos: int, end: int) -> int:
    if pos + struct.calcsize(fmt) > end:
        raise Malformed("a box is shorter than its fields")
    return int(struct.unpack_from(fmt, buf, pos)[0])


def _times(buf: bytes, box: Box) -> tuple[int, int]:
    """(timescale, duration) of an mvhd or mdhd box (versions 0 and 1)."""
    if _unpack(">B", buf, box.start, box.end) == 1:
        return _u32(buf, box.start + 20, box.end), _u64(buf, box.start + 24, box.end)
    return _u32(buf, box.start + 12, box.end), _u32(buf, box.start + 16, box.end)


def _duration(buf: bytes, tracks: list[_Track]) -> float:
    mvhd = _child(buf, 0, len(buf), b"mvhd")
    if mvhd is not None:
        timescale, duration = _times(buf, mvhd)
        if timescale and duration and duration != 0xFFFFFFFF:
            return duration / timescale
    spans = [t.duration / t.timescale for t in tracks if t.timescale]
    return max(spans, default=0.0)


def _track(buf: bytes, trak: Box, mdats: list[tuple[int, int]], size: int) -> _Track:
    track = _Track()
    mdia = _child(buf, trak.start, trak.end, b"mdia")
    if mdia is None:
        return track
    hdlr = _child(buf, mdia.start, mdia.end, b"hdlr")
    if hdlr is not None:
        track.handler = bytes(buf[hdlr.start + 8 : hdlr.start + 12])
    mdhd = _child(buf, mdia.start, mdia.end, b"mdhd")
    if mdhd is not None:
        track.timescale, track.duration = _times(buf, mdhd)
    stbl = _child(buf, mdia.start, mdia.end, b"minf", b"stbl")
    if stbl is None:
        return track
    boxes = {box.kind: box for box in _children(buf, stbl.start, stbl.end)}
    stsd = boxes.get(b"stsd")
    if stsd is not None and _u32(buf, stsd.start + 4, stsd.end) > 0:
        entry = stsd.start + 8
        track.fourcc = bytes(buf[entry + 4 : entry + 8])
        if track.handler == b"vide":  # a visual sample entry: width and height at 32
            track.width = _u16(buf, entry + 32, stsd.end)
            track.height = _u16(buf, entry + 34, stsd.end)
    sizes = _sample_sizes(buf, boxes, size)
    track.sample_count = len(sizes)
    if track.sample_count:
        _check_chunks(buf, boxes, sizes, mdats, size)
    return track


class _Sizes:
    """Sample sizes: one size for every sample, or a table of them."""

    def __init__(self, count: int, each: int = 0, table: array[int] | None = None) -> None:
        self._count, self._each, self._table = count, each, table

    def __len__(self) -> int:
        return self._count

    def total(self, first: int, count: int) -> int:
        if self._table is None:
            return self._each * count
        return sum(self._table[first : first + count])


# A byte's high and low nibble, for unpacking 4-bit sample sizes without a Python loop.
_HIGH = bytes(b >> 4 for b in range(256))
_LOW = bytes(b & 0xF for b in range(256))


def _sample_sizes(buf: bytes, boxes: dict[bytes, Box], size: int) -> _Sizes:
    """The track's sample sizes. Their count is checked before anything is read: a track
    cannot have more samples than its chunk tables place, nor than the file has bytes (a
    crafted count would otherwise cost seconds and memory to unpack)."""
    stsz, stz2 = boxes.get(b"stsz"), boxes.get(b"stz2")
    if stsz is not None:
        each, count = _u32(buf, stsz.start + 4, stsz.end), _u32(buf, stsz.start + 8, stsz.end)
        if each or not count:
            return _Sizes(count, each)
        _check_count(buf, boxes, count, size, stsz.start + 12 + 4 * count, stsz.end)
        return _Sizes(count, table=_table(buf, stsz.start + 12, count, 4, stsz.end))
    if stz2 is not None:
        field = _unpack(">B", buf, stz2.start + 7, stz2.end)
        count = _u32(buf, stz2.start + 8, stz2.end)
        if field not in (4, 8, 16):
            raise Malformed(f"a compact sample size of {field} bits")
        length = (count + 1) // 2 if field == 4 else count * field // 8
        _check_count(buf, boxes, count, size, stz2.start + 12 + length, stz2.end)
        if field != 4:
            return _Sizes(count, table=_table(buf, stz2.start + 12, count, field // 8,
                                              stz2.end))
        packed = bytes(buf[stz2.start + 12 : stz2.start + 12 + length])
        nibbles = bytearray(2 * length)  # unpacked without a Python loop per sample
        nibbles[0::2] = packed.translate(_HIGH)
        nibbles[1::2] = packed.translate(_LOW)
        del nibbles[count:]
        return _Sizes(count, table=array("B", nibbles))
    return _Sizes(0)


def _check_count(buf: bytes, boxes: dict[bytes, Box], count: int, size: int,
                 table_end: int, box_end: int) -> None:
    if table_end > box_end:
        raise Malformed("a sample table is shorter than its count")
    if count > size:
        raise Malformed("a sample table names more frames than the file has bytes")
    if count > _chunk_capacity(buf, boxes):
        raise Malformed("the chunk tables hold fewer frames than the track has")


def _chunk_capacity(buf: bytes, boxes: dict[bytes, Box]) -> int:
    """How many samples the sample-to-chunk and chunk offset tables place, at most."""
    stsc = boxes.get(b"stsc")
    offsets_box = boxes.get(b"stco") or boxes.get(b"co64")
    if stsc is None or offsets_box is None:
        raise Malformed("a track without its chunk tables")
    runs = _u32(buf, stsc.start + 4, stsc.end)
    table = _table(buf, stsc.start + 8, runs * 3, 4, stsc.end)
    chunks = _u32(buf, offsets_box.start + 4, offsets_box.end)
    capacity = 0
    for run in range(runs):
        first = table[3 * run]
        last = table[3 * (run + 1)] - 1 if run + 1 < runs else chunks
        capacity += table[3 * run + 1] * max(0, last - first + 1)
    return capacity


def _table(buf: bytes, pos: int, count: int, width: int, end: int) -> array[int]:
    """``count`` big-endian unsigned integers of ``width`` bytes from ``pos``."""
    if pos + count * width > end:
        raise Malformed("a sample table is shorter than its count")
    values = array({1: "B", 2: "H", 4: "I", 8: "Q"}[width])
    assert values.itemsize == width
    values.frombytes(bytes(buf[pos : pos + count * width]))
    if byteorder == "little" and width > 1:
        values.byteswap()
    return values


def _check_chunks(buf: bytes, boxes: dict[bytes, Box], sizes: _Sizes,
                  mdats: list[tuple[int, int]], size: int) -> None:
    """Every chunk of samples must lie inside one media data box."""
    stsc = boxes.get(b"stsc")
    offsets_box, width = boxes.get(b"stco"), 4
    if offsets_box is None:
        offsets_box, width = boxes.get(b"co64"), 8
    if stsc is None or offsets_box is None:
        raise Malformed("a track without its chunk tables")
    runs = _u32(buf, stsc.start + 4, stsc.end)
    table = _table(buf, stsc.start + 8, runs * 3, 4, stsc.end)
    count = _u32(buf, offsets_box.start + 4, offsets_box.end)
    offsets = _table(buf, offsets_box.start + 8, count, width, offsets_box.end)
    starts = [start for start, _ in mdats]
    sample = 0
    for run in range(runs):
        first, per = table[3 * run], table[3 * run + 1]
        last = table[3 * (run + 1)] - 1 if run + 1 < runs else count
        if first < 1 or last < first or last > count:
            raise Malformed("the sample-to-chunk table is out of order")
        for chunk in range(first, last + 1):
            if sample >= len(sizes):
                return
            held = min(per, len(sizes) - sample)
            offset, length = offsets[chunk - 1], sizes.total(sample, held)
            place = bisect.bisect_right(starts, offset) - 1
            if place < 0 or offset + length > mdats[place][1]:
                if offset + length > size:
                    raise Malformed("frames past the end of the file", truncated=True)
                raise Malformed("a frame outside the media data")
            sample += held
    if sample < len(sizes):
        raise Malformed("the chunk tables hold fewer frames than the track has")
