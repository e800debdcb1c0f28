"""DNS for origin checks: a dnspython resolver, pinned data from the agency directory, a chain.

Every resolver here follows one contract (``OriginResolver``):

* an answer is a sequence of strings (TXT records joined per record, IP addresses,
  MX host names in preference order, PTR names);
* a name or type that does not exist (NXDOMAIN, no data) is an empty sequence;
* a lookup that could not be made (timeout, SERVFAIL, refused, no reachable server)
  raises :class:`DnsTemporaryError`, so callers can tell ``temperror`` from ``none``.

The server's one :class:`DnsResolver` (SPF, DKIM, DMARC and the outbound MX look-ups)
keeps answers in a :class:`DnsCache`: dnspython's own LRU cache, which stores positive
answers for their TTL, "no data" answers and NXDOMAIN (for every type of the name) for the
negative TTL of RFC 2308 (the SOA's minimum or its TTL, whichever is lower; 300 s without
an SOA), and never a failure; ours clamps every TTL to ``[min_ttl, max_ttl]``.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
import dns.reversename

from mailsvc.directory import covering_agency
from mailsvc.errors import DependencyError
from mailsvc.interfaces import Directory

log = logging.getLogger(__name__)

RECORD_TYPES = ("txt", "a", "aaaa", "mx", "ptr")


class DnsTemporaryError(DependencyError):
    """A DNS lookup failed for now (timeout, SERVFAIL, no server): a temperror, not a none."""


class OriginResolver(Protocol):
    """The lookups DKIM, SPF and DMARC need. Extends ``mailsvc.interfaces.Resolver``."""

    async def txt(self, name: str) -> Sequence[str]: ...

    async def a(self, name: str) -> Sequence[str]: ...

    async def aaaa(self, name: str) -> Sequence[str]: ...

    async def mx(self, name: str) -> Sequence[str]: ...

    async def ptr(self, address: str) -> Sequence[str]: ...


def normalise_name(name: str) -> str:
    """Lower-case, no trailing dot: the key form used by pinned data."""
    return name.strip().rstrip(".").lower()


class DnsCache(dns.resolver.LRUCache):
    """dnspython's bounded LRU answer cache, each answer kept between ``min_ttl`` and
    ``max_ttl`` seconds whatever its TTL (a zero TTL would make every message ask again; a
    week-long one would outlive a key rotation)."""

    def __init__(self, max_size: int = 10_000, min_ttl: float = 5.0, max_ttl: float = 3600.0):
        super().__init__(max_size)
        self.min_ttl = min_ttl
        self.max_ttl = max(min_ttl, max_ttl)

    def put(self, key: dns.resolver.CacheKey, value: dns.resolver.Answer) -> None:
        now = time.time()
        ttl = min(max(value.expiration - now, self.min_ttl), self.max_ttl)
        value.expiration = now + ttl
        super().put(key, value)


class DnsResolver:
    """Asynchronous lookups with dnspython against configured name servers.

    ``nameservers`` empty means the system's ``/etc/resolv.conf``. ``timeout`` is the
    whole budget of one lookup (dnspython's *lifetime*), retries included. ``cache``:
    answers kept for their TTL (None: every lookup goes to the server).
    """

    def __init__(
        self,
        nameservers: Sequence[str] = (),
        port: int = 53,
        timeout: float = 3.0,
        cache: DnsCache | None = None,
    ) -> None:
        if nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = list(nameservers)
        else:
            resolver = dns.asyncresolver.Resolver(configure=True)
        resolver.port = port
        resolver.timeout = timeout
        resolver.lifetime = timeout
        resolver.use_edns(0, 0, 1232)
        resolver.cache = cache
        self._resolver = resolver
        self.timeout = timeout

    async def _query(self, name: str, rdtype: dns.rdatatype.RdataType) -> list[object]:
        try:
            answer = await self._resolver.resolve(
                name, rdtype, search=False, raise_on_no_answer=False
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.YXDOMAIN):
            return []
        except dns.resolver.NoNameservers as exc:
            raise DnsTemporaryError(
                f"DNS {rdtype.name} {name}: no server answered ({exc})"
            ) from exc
        except dns.exception.Timeout as exc:
            raise DnsTemporaryError(f"DNS {rdtype.name} {name}: timed out") from exc
        except (dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong):
            return []  # a name that cannot exist has no records
        except dns.exception.DNSException as exc:  # adapter boundary: any other DNS failure
            raise DnsTemporaryError(f"DNS {rdtype.name} {name}: {exc}") from exc
        if answer.rrset is None:
            return []
        return list(answer.rrset)

    async def txt(self, name: str) -> Sequence[str]:
        records = await self._query(name, dns.rdatatype.TXT)
        return tuple(
            b"".join(r.strings).decode("utf-8", errors="replace")  # type: ignore[attr-defined]
            for r in records
        )

    async def a(self, name: str) -> Sequence[str]:
        return tuple(r.address for r in await self._query(name, dns.rdatatype.A))  # type: ignore[attr-defined]

    async def aaaa(self, name: str) -> Sequence[str]:
        return tuple(r.address for r in await self._query(name, dns.rdatatype.AAAA))  # type: ignore[attr-defined]

    async def mx(self, name: str) -> Sequence[str]:
        records = await self._query(name, dns.rdatatype.MX)
        ordered = sorted(records, key=lambda r: r.preference)  # type: ignore[attr-defined]
        return tuple(normalise_name(r.exchange.to_text()) for r in ordered)  # type: ignore[attr-defined]

    async def ptr(self, address: str) -> Sequence[str]:
        name = dns.reversename.from_address(address).to_text()
        records = await self._query(name, dns.rdatatype.PTR)
        return tuple(normalise_name(r.target.to_text()) for r in records)  # type: ignore[attr-defined]


class PinnedResolver:
    """Answers from static data and the agency directory's pinned DKIM keys; no network.

    ``records`` maps a record type (``txt``, ``a``, ``aaaa``, ``mx``, ``ptr``) to
    ``{name: [values]}``. With a ``directory``, TXT lookups of
    ``<selector>._domainkey.<domain>`` are answered from the agency's ``dkim_keys`` (for a
    subdomain of an agency with ``include_subdomains``, its key of the same selector).
    ``lookup`` returns ``None`` for names it does not know (so a chain can go on),
    the public methods return an empty tuple.
    """

    def __init__(
        self,
        records: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
        directory: Directory | None = None,
    ) -> None:
        data: dict[str, dict[str, tuple[str, ...]]] = {t: {} for t in RECORD_TYPES}
        for rtype, entries in (records or {}).items():
            key = rtype.lower()
            if key not in data:
                raise ValueError(f"unknown record type {rtype!r}")
            for name, values in entries.items():
                if isinstance(values, str):
                    values = (values,)
                data[key][normalise_name(name)] = tuple(values)
        self._data = data
        self._directory = directory

    def lookup(self, rtype: str, name: str) -> tuple[str, ...] | None:
        key = normalise_name(name)
        found = self._data[rtype].get(key)
        if found is not None:
            return found
        if rtype == "txt" and self._directory is not None and "._domainkey." in key:
            selector, _, domain = key.partition("._domainkey.")
            covering = covering_agency(self._directory, domain)
            if covering is not None:
                agency, agency_domain = covering
                pinned = {normalise_name(k): v for k, v in agency.dkim_keys.items()}
                # the key pinned for this name, else (a subdomain of an agency with
                # include_subdomains) the agency's key of the same selector
                for candidate in (key, f"{selector}._domainkey.{agency_domain}"):
                    if candidate in pinned:
                        return (pinned[candidate],)
        return None

    async def txt(self, name: str) -> Sequence[str]:
        return self.lookup("txt", name) or ()

    async def a(self, name: str) -> Sequence[str]:
        return self.lookup("a", name) or ()

    async def aaaa(self, name: str) -> Sequence[str]:
        return self.lookup("aaaa", name) or ()

    async def mx(self, name: str) -> Sequence[str]:
        return self.lookup("mx", name) or ()

    async def ptr(self, address: str) -> Sequence[str]:
        return self.lookup("ptr", str(ipaddress.ip_address(address))) or ()


class ChainedResolver:
    """Pinned data first; for names it does not pin, DNS, or nothing in a closed network."""

    def __init__(self, pinned: PinnedResolver, fallback: OriginResolver | None = None) -> None:
        self._pinned = pinned
        self._fallback = fallback

    async def _resolve(self, rtype: str, name: str) -> Sequence[str]:
        found = self._pinned.lookup(rtype, name)
        if found is not None:
            return found
        if self._fallback is None:
            return ()
        method = getattr(self._fallback, rtype)
        result: Sequence[str] = await method(name)
        return result

    async def txt(self, name: str) -> Sequence[str]:
        return await self._resolve("txt", name)

    async def a(self, name: str) -> Sequence[str]:
        return await self._resolve("a", name)

    async def aaaa(self, name: str) -> Sequence[str]:
        return await self._resolve("aaaa", name)

    async def mx(self, name: str) -> Sequence[str]:
        return await self._resolve("mx", name)

    async def ptr(self, address: str) -> Sequence[str]:
        found = self._pinned.lookup("ptr", str(ipaddress.ip_address(address)))
        if found is not None:
            return found
        if self._fallback is None:
            return ()
        return await self._fallback.ptr(address)
