"""Where each request on a connection ends its headers, read off the bytes as they arrive.

The connection guard (``bot.web.guard``) needs to know when a connection has sent a whole
request head, before aiohttp hands the request to a handler and whatever the chunks the
bytes come in. Looking for a blank line is not enough: a body may hold blank lines (a
chunked body always ends with one), and a client may send empty lines between requests.
So this follows HTTP/1.1's framing (RFC 9112): a head runs to its empty line, then the
body is ``Content-Length`` bytes or chunks and trailers, and only then may the next
request begin. aiohttp parses the same bytes for itself and is strict about them: a request
this cannot frame (a bad length or chunk size, an endless line) is one aiohttp refuses with
a 400 and closes, so the framing just stops counting (``lost``).
"""

from __future__ import annotations

import enum
import string

MAX_LINE = 64 * 1024  # aiohttp refuses a request line or header line over 8190 bytes
_HEX = frozenset(string.hexdigits.encode())


class _State(enum.Enum):
    BETWEEN = enum.auto()  # before a request line (empty lines are skipped)
    HEAD = enum.auto()  # header lines, to the empty line
    BODY = enum.auto()  # Content-Length bytes
    CHUNK_SIZE = enum.auto()  # a chunk-size line (extensions after ';')
    CHUNK_DATA = enum.auto()
    CHUNK_END = enum.auto()  # the CRLF after a chunk's data
    TRAILERS = enum.auto()  # trailer lines after the last chunk, to the empty line


class RequestFraming:
    """Counts the request heads completed in one connection's incoming bytes."""

    def __init__(self) -> None:
        self._state = _State.BETWEEN
        self._line = bytearray()  # an unfinished line, carried to the next chunk
        self._skip = 0  # body or chunk bytes still to pass over
        self._length = 0
        self._chunked = False
        self.lost = False  # bytes no HTTP/1.1 server takes: nothing more is counted

    def feed(self, data: bytes) -> int:
        """Take the next bytes received; how many request heads they complete."""
        heads, pos, end = 0, 0, len(data)
        while pos < end and not self.lost:
            if self._state in (_State.BODY, _State.CHUNK_DATA):
                take = min(self._skip, end - pos)
                pos += take
                self._skip -= take
                if not self._skip:
                    self._state = (_State.BETWEEN if self._state is _State.BODY
                                   else _State.CHUNK_END)
                continue
            newline = data.find(b"\n", pos)
            if newline < 0:
                self._line += data[pos:]
                self.lost = len(self._line) > MAX_LINE
                break
            self._line += data[pos:newline]
            pos = newline + 1
            line = bytes(self._line)
            self._line.clear()
            if line.endswith(b"\r"):
                line = line[:-1]
            heads += self._take_line(line)
        return heads

    def _take_line(self, line: bytes) -> int:
        state = self._state
        if state is _State.BETWEEN:
            if line:  # a request line
                self._state, self._length, self._chunked = _State.HEAD, 0, False
        elif state is _State.HEAD:
            if not line:
                self._end_of_head()
                return 1
            self._take_field(line)
        elif state is _State.CHUNK_SIZE:
            size = line.split(b";", 1)[0].rstrip(b" \t")
            if not size or not _HEX.issuperset(size):
                self.lost = True
            elif int(size, 16):
                self._state, self._skip = _State.CHUNK_DATA, int(size, 16)
            else:
                self._state = _State.TRAILERS
        elif state is _State.CHUNK_END:
            self._state = _State.CHUNK_SIZE
            self.lost = bool(line)
        elif state is _State.TRAILERS and not line:
            self._state = _State.BETWEEN
        return 0

    def _take_field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if not colon:
            return
        name, value = name.lower(), value.strip(b" \t")
        if name == b"content-length":
            if not value.isdigit():
                self.lost = True
            else:
                self._length = int(value)
        elif name == b"transfer-encoding":
            self._chunked = value.rsplit(b",", 1)[-1].strip(b" \t").lower() == b"chunked"

    def _end_of_head(self) -> None:
        if self._chunked:
            self._state = _State.CHUNK_SIZE
        elif self._length:
            self._state, self._skip = _State.BODY, self._length
        else:
            self._state = _State.BETWEEN
