"""DNS adapters against a real DNS server on loopback (tests/dns_server.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailsvc.adapters.dns import ChainedResolver, DnsResolver, DnsTemporaryError, PinnedResolver
from mailsvc.interfaces import AgencyInfo
from tests.dns_server import DnsTestServer


@pytest.fixture(scope="module")
def dns() -> Iterator[DnsTestServer]:
    server = DnsTestServer().start()
    server.add("example.vn", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    server.add("example.vn", "TXT", "google-site-verification=abc")
    server.add("example.vn", "A", "192.0.2.10")
    server.add("example.vn", "AAAA", "2001:db8::10")
    server.add("example.vn", "MX", "20 mx2.example.vn.")
    server.add("example.vn", "MX", "10 MX1.example.vn.")
    server.add("10.2.0.192.in-addr.arpa", "PTR", "mail.example.vn.")
    server.add("long.example.vn", "TXT", "v=DKIM1; k=rsa; p=" + "A" * 1400)
    server.fail("servfail.example.vn", "servfail")
    server.fail("refused.example.vn", "refused")
    server.fail("slow.example.vn", "timeout")
    yield server
    server.stop()


@pytest.fixture
def resolver(dns: DnsTestServer) -> DnsResolver:
    return DnsResolver(["127.0.0.1"], port=dns.port, timeout=0.5)


class Agencies:
    """A directory with one agency that pins a DKIM key."""

    def __init__(self) -> None:
        self.agency = AgencyInfo(
            code="000.00.31.H26",
            name="Sở Tư pháp",
            domains=("stp.example.vn",),
            dkim_keys={"mail._domainkey.stp.example.vn": "v=DKIM1; k=rsa; p=PINNED"},
        )

    def agency_for_domain(self, domain: str) -> AgencyInfo | None:
        return self.agency if domain in self.agency.domains else None

    def is_local_domain(self, domain: str) -> bool:
        return False


async def test_txt_records_each_joined(resolver: DnsResolver) -> None:
    records = await resolver.txt("example.vn")
    assert sorted(records) == ["google-site-verification=abc", "v=spf1 ip4:192.0.2.0/24 -all"]


async def test_long_txt_record_split_into_strings_comes_back_whole(resolver: DnsResolver) -> None:
    (record,) = await resolver.txt("long.example.vn.")
    assert record == "v=DKIM1; k=rsa; p=" + "A" * 1400


async def test_addresses_mx_in_preference_order_and_ptr(resolver: DnsResolver) -> None:
    assert await resolver.a("example.vn") == ("192.0.2.10",)
    assert await resolver.aaaa("example.vn") == ("2001:db8::10",)
    assert await resolver.mx("example.vn") == ("mx1.example.vn", "mx2.example.vn")
    assert await resolver.ptr("192.0.2.10") == ("mail.example.vn",)


async def test_nxdomain_and_no_data_are_empty(resolver: DnsResolver) -> None:
    assert await resolver.txt("missing.example.vn") == ()
    assert await resolver.mx("long.example.vn") == ()  # name exists, no MX: NOERROR/NODATA
    assert await resolver.a("bad..name") == ()


@pytest.mark.parametrize("name", ["servfail.example.vn", "refused.example.vn", "slow.example.vn"])
async def test_failures_are_temporary_errors(resolver: DnsResolver, name: str) -> None:
    with pytest.raises(DnsTemporaryError):
        await resolver.txt(name)


async def test_no_server_listening_is_temporary(dns: DnsTestServer) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    silent = DnsResolver(["127.0.0.1"], port=port, timeout=0.3)
    with pytest.raises(DnsTemporaryError):
        await silent.a("example.vn")


async def test_pinned_resolver_answers_directory_keys_without_network() -> None:
    pinned = PinnedResolver(
        {
            "a": {"mx.stp.example.vn": ["10.0.0.5"]},
            "txt": {"_dmarc.stp.example.vn": "v=DMARC1; p=reject"},
        },
        directory=Agencies(),
    )
    assert await pinned.txt("mail._domainkey.STP.example.vn.") == ("v=DKIM1; k=rsa; p=PINNED",)
    assert await pinned.txt("_dmarc.stp.example.vn") == ("v=DMARC1; p=reject",)
    assert await pinned.a("mx.stp.example.vn") == ("10.0.0.5",)
    assert await pinned.txt("other._domainkey.stp.example.vn") == ()
    assert pinned.lookup("txt", "other._domainkey.stp.example.vn") is None


def test_pinned_resolver_refuses_unknown_record_types() -> None:
    with pytest.raises(ValueError, match="unknown record type"):
        PinnedResolver({"srv": {"x": ["y"]}})


async def test_chain_prefers_pinned_then_dns(dns: DnsTestServer, resolver: DnsResolver) -> None:
    dns.add("mail._domainkey.stp.example.vn", "TXT", "v=DKIM1; k=rsa; p=FROMDNS")
    chain = ChainedResolver(PinnedResolver(directory=Agencies()), resolver)
    assert await chain.txt("mail._domainkey.stp.example.vn") == ("v=DKIM1; k=rsa; p=PINNED",)
    assert await chain.a("example.vn") == ("192.0.2.10",)
    assert await chain.ptr("192.0.2.10") == ("mail.example.vn",)
    with pytest.raises(DnsTemporaryError):
        await chain.txt("servfail.example.vn")


async def test_closed_network_chain_answers_only_pinned_data(dns: DnsTestServer) -> None:
    before = sum(dns.queries.values())
    chain = ChainedResolver(PinnedResolver(directory=Agencies()))
    assert await chain.txt("mail._domainkey.stp.example.vn") == ("v=DKIM1; k=rsa; p=PINNED",)
    assert await chain.txt("example.vn") == ()
    assert await chain.mx("example.vn") == ()
    assert await chain.ptr("192.0.2.10") == ()
    assert sum(dns.queries.values()) == before  # nothing went to the network
