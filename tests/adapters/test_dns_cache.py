"""The DNS answer cache against a real DNS server on loopback (tests/dns_server.py): the
server counts the questions it receives, so a cached answer is one it never saw again."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dns.name
import dns.rdataclass
import dns.rdatatype
import pytest

from mailsvc.adapters.dns import DnsCache, DnsResolver, DnsTemporaryError
from tests.dns_server import DnsTestServer


@pytest.fixture(scope="module")
def server() -> Iterator[DnsTestServer]:
    server = DnsTestServer().start()
    server.add("cached.example.vn", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    server.add("cached.example.vn", "A", "192.0.2.10", ttl=86400)
    server.add("short.example.vn", "A", "192.0.2.11", ttl=1)
    server.add("mx.example.vn", "MX", "10 mx1.example.vn.")
    server.soa("example.vn", ttl=3600, minimum=120)
    server.fail("servfail.example.vn", "servfail")
    for i in range(3):
        server.add(f"n{i}.example.vn", "A", f"192.0.2.{20 + i}")
    yield server
    server.stop()


def resolver(server: DnsTestServer, cache: DnsCache) -> DnsResolver:
    return DnsResolver(["127.0.0.1"], port=server.port, timeout=0.5, cache=cache)


def expires_in(cache: DnsCache, name: str, rtype: str) -> float:
    key = (dns.name.from_text(name), dns.rdatatype.from_text(rtype), dns.rdataclass.IN)
    answer = cache.get(key)
    assert answer is not None
    return answer.expiration - time.time()


async def test_a_positive_answer_is_asked_once(server: DnsTestServer) -> None:
    r = resolver(server, DnsCache())
    for _ in range(3):
        assert await r.txt("cached.example.vn") == ("v=spf1 ip4:192.0.2.0/24 -all",)
        assert await r.mx("mx.example.vn") == ("mx1.example.vn",)
    assert server.queries[("cached.example.vn", "TXT")] == 1
    assert server.queries[("mx.example.vn", "MX")] == 1


async def test_ttls_are_clamped(server: DnsTestServer) -> None:
    cache = DnsCache(min_ttl=30, max_ttl=600)
    r = resolver(server, cache)
    assert await r.a("cached.example.vn") == ("192.0.2.10",)  # TTL 1 day
    assert await r.a("short.example.vn") == ("192.0.2.11",)  # TTL 1 s
    assert 590 < expires_in(cache, "cached.example.vn", "A") <= 600
    assert 20 < expires_in(cache, "short.example.vn", "A") <= 30


async def test_nxdomain_is_cached_for_the_soa_minimum(server: DnsTestServer) -> None:
    cache = DnsCache(min_ttl=5, max_ttl=3600)
    r = resolver(server, cache)
    for _ in range(3):
        assert await r.txt("_dmarc.nowhere.example.vn") == ()
    assert server.queries[("_dmarc.nowhere.example.vn", "TXT")] == 1
    # RFC 2308: min(SOA TTL 3600, SOA minimum 120); NXDOMAIN covers every type.
    assert 110 < expires_in(cache, "_dmarc.nowhere.example.vn", "ANY") <= 120
    assert await r.a("_dmarc.nowhere.example.vn") == ()
    assert server.queries[("_dmarc.nowhere.example.vn", "A")] == 0


async def test_no_data_is_cached(server: DnsTestServer) -> None:
    r = resolver(server, DnsCache())
    for _ in range(3):
        assert await r.aaaa("cached.example.vn") == ()
    assert server.queries[("cached.example.vn", "AAAA")] == 1


async def test_a_failure_is_never_cached(server: DnsTestServer) -> None:
    r = resolver(server, DnsCache())
    for _ in range(2):
        with pytest.raises(DnsTemporaryError):
            await r.txt("servfail.example.vn")
    assert server.queries[("servfail.example.vn", "TXT")] >= 2


async def test_the_cache_is_bounded(server: DnsTestServer) -> None:
    r = resolver(server, DnsCache(max_size=2))
    for i in range(3):
        await r.a(f"n{i}.example.vn")
    await r.a("n2.example.vn")  # still there
    await r.a("n0.example.vn")  # evicted, least recently used
    assert [server.queries[(f"n{i}.example.vn", "A")] for i in range(3)] == [2, 1, 1]


async def test_without_a_cache_every_lookup_is_asked(server: DnsTestServer) -> None:
    r = DnsResolver(["127.0.0.1"], port=server.port, timeout=0.5)
    before = server.queries[("mx.example.vn", "MX")]
    await r.mx("mx.example.vn")
    await r.mx("mx.example.vn")
    assert server.queries[("mx.example.vn", "MX")] == before + 2
