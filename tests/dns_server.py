"""A small authoritative DNS server on 127.0.0.1 for tests (UDP and TCP, same port).

A test fake of a third-party wire protocol, built on dnspython's message classes.
It runs in its own thread with its own event loop, so one instance can serve a whole
test session whatever event loop each test uses.

    server = DnsTestServer()
    server.start()
    server.add("example.vn", "TXT", "v=spf1 ip4:127.0.0.1 -all")
    server.add("example.vn", "MX", "10 mx.example.vn.")
    server.fail("broken.example", "servfail")   # or "timeout" (no answer at all)
    resolver = DnsResolver(["127.0.0.1"], port=server.port, timeout=0.5)

Names that have no records get NXDOMAIN; names that have records of another type get
an empty NOERROR answer. ``queries`` counts questions per (name, type). Records are
served with a TTL of 300 s unless ``add(..., ttl=)`` says otherwise; ``soa(zone, ...)``
puts the zone's SOA in the authority section of negative answers under it (RFC 2308).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Literal

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset


def _txt_rdata(value: str) -> str:
    """A TXT value as zone-file text, split into strings of at most 255 octets."""
    raw = value.encode("utf-8")
    chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    return " ".join(
        '"' + c.decode("utf-8").replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks
    )


class DnsTestServer:
    def __init__(self) -> None:
        self.records: dict[tuple[str, int], list[str]] = {}
        self.failures: dict[str, str] = {}
        self.queries: Counter[tuple[str, str]] = Counter()
        self.ttls: dict[tuple[str, int], int] = {}
        self.soas: dict[str, tuple[int, int]] = {}  # zone -> (SOA TTL, SOA minimum)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    # -- zone data ---------------------------------------------------------------------
    @staticmethod
    def _key(name: str) -> str:
        return name.strip().rstrip(".").lower()

    def add(self, name: str, rtype: str, value: str, *, ttl: int = 300) -> None:
        """Add one record: TXT values are plain text, others zone-file rdata ("10 mx.x.")."""
        text = _txt_rdata(value) if rtype.upper() == "TXT" else value
        key = (self._key(name), dns.rdatatype.from_text(rtype))
        with self._lock:
            self.records.setdefault(key, []).append(text)
            self.ttls[key] = ttl

    def soa(self, zone: str, *, ttl: int = 3600, minimum: int = 60) -> None:
        """Answer NXDOMAIN and NODATA under ``zone`` with its SOA (negative caching)."""
        with self._lock:
            self.soas[self._key(zone)] = (ttl, minimum)

    def _negative(self, response: dns.message.Message, name: str) -> None:
        labels = name.split(".")
        for i in range(len(labels)):
            zone = ".".join(labels[i:])
            if zone in self.soas:
                ttl, minimum = self.soas[zone]
                response.authority.append(
                    dns.rrset.from_text(
                        zone + ".", ttl, "IN", "SOA",
                        f"ns.{zone}. admin.{zone}. 1 3600 600 86400 {minimum}",
                    )
                )  # fmt: skip
                return

    def set(self, name: str, rtype: str, *values: str) -> None:
        """Replace every record of one type at one name."""
        with self._lock:
            self.records.pop((self._key(name), dns.rdatatype.from_text(rtype)), None)
        for value in values:
            self.add(name, rtype, value)

    def fail(self, name: str, how: Literal["servfail", "timeout", "refused"]) -> None:
        with self._lock:
            self.failures[self._key(name)] = how

    # -- answering -----------------------------------------------------------------------
    def answer(self, wire: bytes) -> bytes | None:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name = self._key(question.name.to_text())
        self.queries[(name, dns.rdatatype.to_text(question.rdtype))] += 1
        with self._lock:
            how = self.failures.get(name)
            values = list(self.records.get((name, question.rdtype), []))
            ttl = self.ttls.get((name, question.rdtype), 300)
            exists = any(key[0] == name for key in self.records)
        if how == "timeout":
            return None
        if how == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        if how == "refused":
            response.set_rcode(dns.rcode.REFUSED)
            return response.to_wire()
        if not exists:
            response.set_rcode(dns.rcode.NXDOMAIN)
            self._negative(response, name)
            return response.to_wire()
        if values:
            rrset = dns.rrset.from_text_list(
                question.name, ttl, dns.rdataclass.IN, question.rdtype, values
            )
            response.answer.append(rrset)
        else:
            self._negative(response, name)
        return response.to_wire(max_size=65535)

    # -- server loop ---------------------------------------------------------------------
    def start(self) -> DnsTestServer:
        self._thread = threading.Thread(target=self._run, name="dns-test-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("DNS test server did not start")
        if self._error is not None:
            raise RuntimeError("DNS test server failed") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                try:
                    reply = server.answer(data)
                except Exception:
                    return
                if reply is None:
                    return
                if len(reply) > 512:
                    query = dns.message.from_wire(data)
                    if query.edns < 0 or len(reply) > max(query.payload, 512):
                        truncated = dns.message.make_response(query)
                        truncated.flags |= dns.flags.TC
                        reply = truncated.to_wire()
                self.transport.sendto(reply, addr)  # type: ignore[attr-defined]

        async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    reply = server.answer(await reader.readexactly(size))
                    if reply is None:
                        continue
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        tcp_server = await asyncio.start_server(tcp, "127.0.0.1", 0)
        self.port = tcp_server.sockets[0].getsockname()[1]
        transport, _ = await self._loop.create_datagram_endpoint(
            Udp, local_addr=("127.0.0.1", self.port)
        )
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            transport.close()
            tcp_server.close()
            await tcp_server.wait_closed()
