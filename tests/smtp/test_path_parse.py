"""MAIL FROM / RCPT TO arguments (mailsvc.smtp.server._parse_path): remembered, and read
exactly as aiosmtpd's own ``SMTP._getaddr`` reads them, hostile ones included."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiosmtpd.smtp import SMTP

from mailsvc.smtp.server import MailsvcSMTP, _parse_path

ARGUMENTS = [
    "",
    "<>",
    "<vanthu@example.vn>",
    "<vanthu@example.vn> SIZE=20000 BODY=8BITMIME",
    "vanthu@example.vn",
    "vanthu@example.vn SIZE=1",
    "  <vanthu@example.vn>",
    "<@relay.example.vn:vanthu@example.vn>",
    '<"quoted local"@example.vn>',
    '<"a\\"b"@example.vn>',
    "<văn.thư@example.vn> SMTPUTF8",
    "<vanthu@[192.0.2.1]>",
    "<vanthu@example.vn",
    "vanthu@example.vn>",
    "<vanthu@@example.vn>",
    "<vanthu>",
    "<a(comment)b@example.vn>",
    "<" + "x" * 64 + "@example.vn>",
    "<" + "x" * 65 + "@example.vn>",
    "<" + "y" * 400 + "@example.vn>",
    "<a@b@c>",
    "<\x00@example.vn>",
    "<a@example.vn>\r\n",
    "<<a@example.vn>>",
    "<a@example.vn> <b@example.vn>",
    "=?utf-8?q?x?=@example.vn",
    ":",
    "<:>",
    "<a@example.vn",
    "(" * 50,
]


@pytest.mark.parametrize("limit", [0, 64])
@pytest.mark.parametrize("arg", ARGUMENTS)
def test_read_as_aiosmtpd_reads_it(arg: str, limit: int) -> None:
    server = SimpleNamespace(local_part_limit=limit)
    expected = SMTP._getaddr(server, arg)  # type: ignore[arg-type]
    assert _parse_path(arg, limit) == expected
    assert _parse_path(arg, limit) == expected  # the second reading, from the cache


def test_the_server_uses_it_and_the_limit_is_part_of_the_key() -> None:
    assert MailsvcSMTP._getaddr is not SMTP._getaddr
    _parse_path.cache_clear()
    long_local = "<" + "z" * 70 + "@example.vn>"
    assert _parse_path(long_local, 64) == (None, None)
    assert _parse_path(long_local, 0) == ("z" * 70 + "@example.vn", "")
    assert _parse_path.cache_info().currsize == 2
