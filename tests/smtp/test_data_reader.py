"""DATA read in pieces (mailsvc.smtp.server.read_data): the same message, the same answers
and the same left-over bytes as reading line by line, however the bytes arrive."""

from __future__ import annotations

import asyncio
import base64
import os
import random

import pytest

from mailsvc.smtp.replies import DATA_TOO_LARGE as TOO_MUCH
from mailsvc.smtp.replies import LINE_TOO_LONG as TOO_LONG
from mailsvc.smtp.server import has_long_line, read_data

LINE_LIMIT = 1001


def by_lines(wire: bytes, size_limit: int) -> tuple[bytes, str | None, bytes]:
    """The reference: RFC 5321's reading, a line at a time (what aiosmtpd does)."""
    lines = []
    rest = wire
    while True:
        line, sep, rest = rest.partition(b"\r\n")
        assert sep, "no end of data in the test input"
        if line == b".":
            break
        lines.append(line + b"\r\n")
    size = sum(map(len, lines))
    if size > size_limit:
        return b"", TOO_MUCH, rest
    if any(len(x) > LINE_LIMIT for x in lines):
        return b"", TOO_LONG, rest
    return b"".join(x[1:] if x.startswith(b".") else x for x in lines), None, rest


async def read(wire: bytes, size_limit: int, chunk: int) -> tuple[bytes, str | None, bytes]:
    reader = asyncio.StreamReader(limit=LINE_LIMIT)

    async def feed() -> None:
        for i in range(0, len(wire), chunk):
            reader.feed_data(wire[i : i + chunk])
            await asyncio.sleep(0)
        reader.feed_eof()

    feeder = asyncio.ensure_future(feed())
    content, problem = await read_data(reader, size_limit, LINE_LIMIT)
    limit_after = reader._limit  # type: ignore[attr-defined]
    await feeder
    left = await reader.read()
    assert limit_after == LINE_LIMIT, "the command line limit is put back"
    return content, problem, left


BASE64 = base64.encodebytes(os.urandom(30_000)).replace(b"\n", b"\r\n")
CASES = {
    "empty message": b".\r\n",
    "one line": b"Hello\r\n.\r\n",
    "dot-stuffed first line": b"..hidden\r\nnext\r\n.\r\n",
    "dot-stuffed lines and a lone stuffed dot": b"a\r\n..\r\n...\r\n.b\r\n.\r\n",
    "lines ending with a full stop": b"Subject: x.\r\n\r\nEnd of sentence.\r\nAnd.\r\n.\r\n",
    "empty lines before the end": b"x\r\n\r\n\r\n.\r\n",
    "a dot inside a line is data": b"a .\r\n b. c\r\n.\r\n",
    "base64 attachment": b"Content-Type: application/pdf\r\n\r\n" + BASE64 + b".\r\n",
    "longest line allowed": b"x" * (LINE_LIMIT - 2) + b"\r\n.\r\n",
    "line one byte too long": b"x" * (LINE_LIMIT - 1) + b"\r\n.\r\n",
    "a very long line": b"y" * 50_000 + b"\r\n.\r\n",
}
PIPELINED = b"MAIL FROM:<a@b.vn>\r\nRCPT TO:<c@d.vn>\r\n"


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
async def test_same_as_line_by_line(name: str, chunk: int) -> None:
    wire = CASES[name] + PIPELINED
    expected = by_lines(wire, 10_000_000)
    assert await read(wire, 10_000_000, chunk) == expected
    assert expected[2] == PIPELINED  # what follows the end stays for the command loop


@pytest.mark.parametrize("chunk", [3, 1 << 20])
async def test_too_much_data_is_read_to_its_end_then_refused(chunk: int) -> None:
    wire = BASE64 + b".\r\n" + PIPELINED
    content, problem, left = await read(wire, 10_000, chunk)
    assert (content, problem, left) == (b"", TOO_MUCH, PIPELINED)


async def test_exactly_at_the_size_limit_is_accepted() -> None:
    body = b"z" * 98 + b"\r\n"
    content, problem, left = await read(body * 10 + b".\r\n", 1000, 64)
    assert (content, problem, left) == (body * 10, None, b"")
    content, problem, _ = await read(body * 10 + b"a\r\n.\r\n", 1000, 64)
    assert problem == TOO_MUCH


async def test_too_much_without_any_end_marker_in_the_first_megabytes() -> None:
    # no ".\r\n" at all for far more than the limit: the reader never holds it all
    wire = b"q" * 3_000_000 + b"\r\n.\r\n" + PIPELINED
    content, problem, left = await read(wire, 100_000, 65_536)
    assert (content, problem, left) == (b"", TOO_MUCH, PIPELINED)


def _reference_long_line(data: bytes, longest: int) -> bool:
    return max(map(len, data.split(b"\r\n"))) > longest


@pytest.mark.parametrize("longest", [1, 2, 3, 7, 998])
def test_long_lines_are_found_as_a_split_finds_them(longest: int) -> None:
    """has_long_line against splitting at every CRLF: lines just under, at and over the
    limit at every offset from a block's start, bare CRs and LFs, CRLFs cut by the
    measuring window, and random mixtures of them."""
    rng = random.Random(longest)
    alphabet = [b"a", b"\r", b"\n", b"\r\n", b".", b" "]
    cases: list[bytes] = [b"", b"\r\n", b"x" * longest, b"x" * (longest + 1)]
    for offset in range(0, 2 * longest + 4):
        for length in (longest - 1, longest, longest + 1, longest + 2):
            if length < 0:
                continue
            head = (b"y" * max(0, offset - 2) + b"\r\n") if offset >= 2 else b"y" * offset
            cases.append(head + b"z" * length + b"\r\n" + b"w" * (longest // 2) + b"\r\n")
            cases.append(head + b"\r" * length + b"\n")
    for _ in range(3000):
        parts = []
        for _ in range(rng.randint(0, 40)):
            if rng.random() < 0.3:
                parts.append(b"q" * rng.randint(0, 2 * longest + 3))
            else:
                parts.append(rng.choice(alphabet))
        cases.append(b"".join(parts))
    for data in cases:
        assert has_long_line(data, longest) == _reference_long_line(data, longest), (data, longest)


def test_text_of_lines_at_the_limit_is_measured_whole() -> None:
    """Lines all at the limit make every other block a candidate: past a budget the
    whole text is split once, and a long line after that point is still found."""
    at_limit = (b"x" * 998 + b"\r\n") * 2000
    assert not has_long_line(at_limit, 998)
    assert has_long_line(at_limit + b"y" * 999 + b"\r\n", 998)
    assert has_long_line(b"y" * 999 + b"\r\n" + at_limit, 998)
