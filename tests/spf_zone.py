"""The openspf test suites (tests/data/spf) and an in-memory zone resolver for them.

Each suite file is a YAML stream of scenarios; a scenario has ``zonedata`` (DNS records
per name) and ``tests`` (client IP, MAIL FROM, HELO, the expected result(s) and maybe an
explanation). The zone format, as the suite's own harness (pyspf's test/testspf.py)
reads it:

* a record is ``{TYPE: value}``: TXT/SPF values are a string or a list of strings (one
  record made of several strings), MX is ``[preference, host]``, A/AAAA/PTR/CNAME text;
* ``TXT: NONE`` says the name has no TXT record (and stops the SPF-to-TXT copy below);
* a bare ``TIMEOUT`` entry makes lookups of types not listed before it time out, and
  ``{TYPE: TIMEOUT}`` makes lookups of that type time out;
* SPF (type 99) records are also served as TXT when the name has no TXT record of its
  own (the suites date from when both types were published).

``ZoneResolver`` serves that data through our ``OriginResolver`` contract: a timeout is
a ``DnsTemporaryError``, CNAMEs are followed like a recursive resolver does (a loop is a
server failure, i.e. a temporary error).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.reversename
import yaml

from mailsvc.adapters.dns import DnsTemporaryError, normalise_name

SUITES = Path(__file__).resolve().parent / "data" / "spf"
_MAX_CNAME = 10


@dataclass(frozen=True)
class SpfCase:
    suite: str  # file stem, e.g. "rfc7208-tests"
    scenario: str  # the scenario's description
    name: str  # the test's name inside the suite
    spec: str
    host: str
    mailfrom: str
    helo: str
    results: tuple[str, ...]  # acceptable results, the preferred one first
    explanation: str | None
    zone: dict[str, list[Any]]

    @property
    def id(self) -> str:
        return f"{self.suite}:{self.name}"


def load_suite(filename: str) -> list[SpfCase]:
    path = SUITES / filename
    cases = []
    with path.open("rb") as stream:
        for scenario in yaml.safe_load_all(stream):
            zone = {normalise_name(k): list(v or []) for k, v in scenario["zonedata"].items()}
            for name, test in scenario["tests"].items():
                result = test["result"]
                explanation = test.get("explanation")
                cases.append(
                    SpfCase(
                        suite=path.stem,
                        scenario=scenario.get("description", ""),
                        name=name,
                        spec=str(test.get("spec", "")),
                        host=str(test["host"]),
                        mailfrom=str(test.get("mailfrom") or ""),
                        helo=str(test.get("helo") or ""),
                        results=tuple(result) if isinstance(result, list) else (result,),
                        explanation=None if explanation is None else str(explanation),
                        zone=zone,
                    )
                )
    return cases


class ZoneResolver:
    """Answers from one scenario's ``zonedata`` (see the module docstring)."""

    def __init__(self, zone: dict[str, list[Any]]) -> None:
        self._zone = zone
        self.lookups: list[tuple[str, str]] = []

    def _records(self, name: str, rtype: str) -> Iterator[Any]:
        entries = self._zone.get(name, [])
        if not any(isinstance(e, dict) and "TXT" in e for e in entries):
            # the SPF records again as TXT, after everything else (as the harness does)
            entries = entries + [
                {"TXT": e["SPF"]} for e in entries if isinstance(e, dict) and "SPF" in e
            ]
        seen = False
        for entry in entries:
            if entry == "TIMEOUT":
                if not seen:
                    raise DnsTemporaryError(f"DNS {rtype} {name}: timed out")
                return
            ((kind, value),) = entry.items()
            if kind != rtype or (kind == "TXT" and value == "NONE"):
                continue
            seen = True
            if value == "TIMEOUT":
                raise DnsTemporaryError(f"DNS {rtype} {name}: timed out")
            yield value

    def _resolve(self, name: str, rtype: str) -> list[Any]:
        key = normalise_name(name)
        self.lookups.append((key, rtype))
        for _ in range(_MAX_CNAME):
            found = list(self._records(key, rtype))
            if found:
                return found
            aliases = list(self._records(key, "CNAME"))
            if not aliases:
                return []
            key = normalise_name(str(aliases[0]))
        raise DnsTemporaryError(f"DNS {rtype} {name}: CNAME chain too long or looping")

    async def txt(self, name: str) -> Sequence[str]:
        return tuple(
            "".join(v) if isinstance(v, list) else str(v) for v in self._resolve(name, "TXT")
        )

    async def a(self, name: str) -> Sequence[str]:
        return tuple(str(v) for v in self._resolve(name, "A"))

    async def aaaa(self, name: str) -> Sequence[str]:
        return tuple(str(ipaddress.ip_address(v)) for v in self._resolve(name, "AAAA"))

    async def mx(self, name: str) -> Sequence[str]:
        records = sorted(self._resolve(name, "MX"), key=lambda v: int(v[0]))
        return tuple(normalise_name(str(host)) for _, host in records)

    async def ptr(self, address: str) -> Sequence[str]:
        name = dns.reversename.from_address(address).to_text(omit_final_dot=True)
        return tuple(normalise_name(str(v)) for v in self._resolve(name, "PTR"))
