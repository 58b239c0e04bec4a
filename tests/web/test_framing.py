"""The framing the connection guard counts request heads by: only real ends of heads count,
wherever the chunks the bytes arrive in are split."""

from __future__ import annotations

import pytest

from bot.web.framing import MAX_LINE, RequestFraming

GET = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
POST_BLANK_LINES = (b"POST /callbacks/apixo/t HTTP/1.1\r\nHost: a\r\nContent-Length: 14\r\n\r\n"
                    b"{\r\n\r\n\"a\": 1}\n\n\r\n")
CHUNKED = (b"POST /callbacks/apixo/t HTTP/1.1\r\nHost: a\r\n"
           b"Transfer-Encoding: gzip, Chunked\r\n\r\n"
           b"4;name=value\r\n\r\n\r\n\r\n"  # a chunk of two blank lines
           b"1\r\n{\r\n"
           b"0\r\nTrailer: x\r\n\r\n")  # the last chunk, a trailer, the end
GET_WITH_BODY = b"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n\r\n\r\n"


def _head_ends(stream: bytes, requests: list[bytes]) -> list[int]:
    """The offset just past each head's empty line, for ``stream`` = the requests joined
    with empty lines before each."""
    ends, offset = [], 0
    for request in requests:
        offset = stream.index(request, offset)
        ends.append(offset + request.index(b"\r\n\r\n") + 4)
        offset += len(request)
    return ends


@pytest.mark.parametrize("requests", [
    [GET, GET, GET],
    [POST_BLANK_LINES, GET],
    [CHUNKED, GET, CHUNKED],
    [GET_WITH_BODY, POST_BLANK_LINES, GET_WITH_BODY],
], ids=["pipelined", "body-with-blank-lines", "chunked", "get-with-body"])
def test_a_head_counts_when_its_empty_line_ends_and_never_inside_a_body(
    requests: list[bytes],
) -> None:
    stream = b"".join(b"\r\n" * (i % 3) + r for i, r in enumerate(requests))
    ends = _head_ends(stream, requests)
    # a byte at a time: each head counts exactly at the byte that ends it
    framing = RequestFraming()
    counted_at = [i + 1 for i in range(len(stream)) if framing.feed(stream[i:i + 1])]
    assert counted_at == ends and not framing.lost
    # in two pieces, split anywhere (the "\r\n\r\n" itself too): each piece counts the
    # heads ending inside it
    for cut in range(len(stream) + 1):
        framing = RequestFraming()
        first, second = framing.feed(stream[:cut]), framing.feed(stream[cut:])
        assert (first, second) == (sum(e <= cut for e in ends), sum(e > cut for e in ends))
    # all at once
    assert RequestFraming().feed(stream) == len(requests)


def test_empty_lines_between_requests_are_not_heads() -> None:
    framing = RequestFraming()
    assert framing.feed(GET) == 1
    assert framing.feed(b"\r\n\r\n\r\n\n") == 0
    assert framing.feed(b"GET /healthz HTTP/1.1\r\nX-Slow: aaa") == 0
    assert framing.feed(b"\r\n\r\n") == 1


def test_a_body_is_passed_over_even_when_it_looks_like_requests() -> None:
    inner = GET * 3
    smuggled = (b"POST /callbacks/apixo/t HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(inner)
                + inner)
    assert RequestFraming().feed(smuggled + GET) == 2


@pytest.mark.parametrize("bad", [
    b"POST / HTTP/1.1\r\nContent-Length: +2\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}xx\r\n",
    b"GET / HTTP/1.1\r\nX-Long: " + b"a" * (MAX_LINE + 1),
], ids=["signed-length", "hex-prefix", "chunk-overrun", "endless-line"])
def test_bytes_that_cannot_be_framed_stop_the_count(bad: bytes) -> None:
    """aiohttp answers these with a 400 and closes; nothing after them counts."""
    framing = RequestFraming()
    framing.feed(bad)
    assert framing.lost
    assert framing.feed(GET) == 0
