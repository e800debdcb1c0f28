"""The agency directory: agencies (mã định danh, name, mail domains, known addresses,
pinned DKIM keys, allowed sending networks) stored in the database.

:class:`DbDirectory` implements :class:`mailsvc.interfaces.Directory` for stages from an
in-memory snapshot, refreshed on demand (``refresh``) or on a timer (``run_refresher``),
so a stage never waits on the database. The module-level functions are the admin
services behind ``mailsvc agency``; like every service they never commit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mailsvc import audit
from mailsvc.accounts import normalise_address
from mailsvc.db.models import Agency
from mailsvc.db.session import reading
from mailsvc.errors import ConflictError, MailsvcError, NotFoundError
from mailsvc.interfaces import AgencyInfo, Directory

log = logging.getLogger(__name__)

_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-_]{0,63}$")
_SELECTOR_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})$")


class InvalidAgencyError(MailsvcError):
    """An agency field that cannot be stored."""


# --------------------------------------------------------------------------- validation


def normalise_domain(domain: str) -> str:
    value = domain.strip().lower().rstrip(".")
    try:
        value = value.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidAgencyError(f"{domain!r} is not a valid domain") from exc
    if not _DOMAIN_RE.match(value):
        raise InvalidAgencyError(f"{domain!r} is not a valid domain")
    return value


def normalise_network(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError as exc:
        raise InvalidAgencyError(f"{value!r} is not an IP address or CIDR network") from exc


def normalise_route(value: str) -> str:
    """A pinned route ``HOST:PORT`` (``[v6]:PORT`` for IPv6), or "" for none (MX)."""
    value = value.strip().lower()
    if not value:
        return ""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidAgencyError(f"route {value!r}: expected HOST:PORT, e.g. mx.stc.gov.vn:25")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        normalise_domain(host)
    return value


def parse_dkim_key(spec: str, domains: Sequence[str]) -> dict[str, str]:
    """``SELECTOR:TXT`` (for each of the agency's domains), or
    ``SELECTOR._domainkey.DOMAIN:TXT``; ``TXT`` may be ``@FILE`` to read it from a file.
    Returns {"selector._domainkey.domain": "v=DKIM1; k=rsa; p=..."}."""
    name, sep, txt = spec.partition(":")
    name = name.strip().lower()
    if not sep or not name or not txt.strip():
        raise InvalidAgencyError(f"--dkim-key {spec[:40]!r}: expected SELECTOR:TXT")
    if txt.startswith("@"):
        try:
            txt = Path(txt[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidAgencyError(f"--dkim-key: cannot read {txt[1:]}: {exc}") from exc
    if '"' in txt:  # zone-file form: the quoted strings are joined without separators
        txt = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', txt))
    txt = " ".join(txt.split())
    if "p=" not in txt:
        raise InvalidAgencyError(f"--dkim-key for {name}: the TXT record has no p= tag")
    if "._domainkey." in name:
        selector, _, domain = name.partition("._domainkey.")
        names = [f"{selector}._domainkey.{normalise_domain(domain)}"]
    else:
        selector = name
        if not domains:
            raise InvalidAgencyError("--dkim-key SELECTOR:TXT needs at least one --domain")
        names = [f"{selector}._domainkey.{d}" for d in domains]
    if not _SELECTOR_RE.match(selector):
        raise InvalidAgencyError(f"--dkim-key: {selector!r} is not a valid selector")
    return dict.fromkeys(names, txt)


# --------------------------------------------------------------------------- services


def get_agency(session: Session, code: str) -> Agency:
    agency = session.scalars(select(Agency).where(Agency.code == code.strip())).one_or_none()
    if agency is None:
        raise NotFoundError(f"no agency with code {code!r}")
    return agency


def list_agencies(session: Session) -> list[Agency]:
    return list(session.scalars(select(Agency).order_by(Agency.code)))


def _domain_owner(session: Session, domain: str, except_code: str = "") -> Agency | None:
    for agency in list_agencies(session):
        if agency.code != except_code and domain in agency.domains:
            return agency
    return None


def add_agency(
    session: Session,
    *,
    actor: str,
    code: str,
    name: str,
    domains: Iterable[str] = (),
    known_addresses: Iterable[str] = (),
    aliases: Iterable[str] = (),
    dkim_keys: Iterable[str] = (),
    allowed_senders: Iterable[str] = (),
    local: bool = False,
    route: str = "",
    include_subdomains: bool = False,
) -> Agency:
    """Add an agency. ``dkim_keys`` are ``--dkim-key`` specs (see :func:`parse_dkim_key`)."""
    code = code.strip()
    if not _CODE_RE.match(code):
        raise InvalidAgencyError(
            f"agency code {code!r}: letters, digits and . - _ only (e.g. 000.00.00.H29)"
        )
    name = unicodedata.normalize("NFC", name.strip())
    if not name:
        raise InvalidAgencyError("the agency needs a name")
    if session.scalar(select(Agency.id).where(Agency.code == code)) is not None:
        raise ConflictError(f"agency {code} already exists")
    domain_list = list(dict.fromkeys(normalise_domain(d) for d in domains))
    for domain in domain_list:
        owner = _domain_owner(session, domain)
        if owner is not None:
            raise ConflictError(f"domain {domain} already belongs to agency {owner.code}")
    keys: dict[str, str] = {}
    for spec in dkim_keys:
        keys.update(parse_dkim_key(spec, domain_list))
    agency = Agency(
        code=code,
        name=name,
        domains=domain_list,
        known_addresses=list(dict.fromkeys(normalise_address(a) for a in known_addresses)),
        aliases=list(dict.fromkeys(normalise_address(a) for a in aliases)),
        dkim_keys=keys,
        allowed_senders=list(dict.fromkeys(normalise_network(n) for n in allowed_senders)),
        local=local,
        route=normalise_route(route),
        include_subdomains=include_subdomains,
    )
    session.add(agency)
    session.flush()
    audit.record(session, actor, "agency.add", code, agency_view(agency))
    return agency


def update_agency(
    session: Session,
    code: str,
    *,
    actor: str,
    name: str | None = None,
    add_domains: Iterable[str] = (),
    remove_domains: Iterable[str] = (),
    add_known_addresses: Iterable[str] = (),
    remove_known_addresses: Iterable[str] = (),
    add_aliases: Iterable[str] = (),
    remove_aliases: Iterable[str] = (),
    add_dkim_keys: Iterable[str] = (),
    remove_dkim_keys: Iterable[str] = (),
    add_allowed_senders: Iterable[str] = (),
    remove_allowed_senders: Iterable[str] = (),
    local: bool | None = None,
    route: str | None = None,
    include_subdomains: bool | None = None,
) -> Agency:
    """Change an agency; list fields are edited by adding and removing items."""
    agency = get_agency(session, code)
    before = agency_view(agency)

    def edit(current: list[str], add: Iterable[str], remove: Iterable[str]) -> list[str]:
        drop = set(remove)
        return [x for x in dict.fromkeys([*current, *add]) if x not in drop]

    if name is not None:
        if not name.strip():
            raise InvalidAgencyError("the agency needs a name")
        agency.name = unicodedata.normalize("NFC", name.strip())
    new_domains = [normalise_domain(d) for d in add_domains]
    for domain in new_domains:
        owner = _domain_owner(session, domain, except_code=agency.code)
        if owner is not None:
            raise ConflictError(f"domain {domain} already belongs to agency {owner.code}")
    agency.domains = edit(
        agency.domains, new_domains, [normalise_domain(d) for d in remove_domains]
    )
    agency.known_addresses = edit(
        agency.known_addresses,
        [normalise_address(a) for a in add_known_addresses],
        [a.strip().lower() for a in remove_known_addresses],
    )
    agency.aliases = edit(
        agency.aliases,
        [normalise_address(a) for a in add_aliases],
        [a.strip().lower() for a in remove_aliases],
    )
    agency.allowed_senders = edit(
        agency.allowed_senders,
        [normalise_network(n) for n in add_allowed_senders],
        [normalise_network(n) for n in remove_allowed_senders],
    )
    keys = dict(agency.dkim_keys)
    for spec in add_dkim_keys:
        keys.update(parse_dkim_key(spec, agency.domains))
    for key_name in remove_dkim_keys:
        key_name = key_name.strip().lower()
        matches = [k for k in keys if k == key_name or k.split("._domainkey.")[0] == key_name]
        if not matches:
            raise NotFoundError(f"agency {agency.code} has no DKIM key {key_name!r}")
        for k in matches:
            del keys[k]
    agency.dkim_keys = keys
    if local is not None:
        agency.local = local
    if route is not None:
        agency.route = normalise_route(route)
    if include_subdomains is not None:
        agency.include_subdomains = include_subdomains
    after = agency_view(agency)
    changed = {k: after[k] for k in after if after[k] != before[k]}
    if changed:
        session.flush()
        audit.record(session, actor, "agency.update", agency.code, changed)
    return agency


def agency_view(agency: Agency) -> dict[str, object]:
    """Plain values for display, JSON and audit details."""
    return {
        "code": agency.code,
        "name": agency.name,
        "domains": list(agency.domains),
        "known_addresses": list(agency.known_addresses),
        "aliases": list(agency.aliases),
        "dkim_keys": dict(agency.dkim_keys),
        "allowed_senders": list(agency.allowed_senders),
        "local": agency.local,
        "route": agency.route or "",
        "include_subdomains": bool(agency.include_subdomains),
    }


def agency_info(agency: Agency) -> AgencyInfo:
    return AgencyInfo(
        code=agency.code,
        name=agency.name,
        domains=tuple(agency.domains),
        known_addresses=tuple(agency.known_addresses),
        dkim_keys=dict(agency.dkim_keys),
        allowed_senders=tuple(agency.allowed_senders),
        local=agency.local,
        route=agency.route or "",
        include_subdomains=bool(agency.include_subdomains),
    )


# --------------------------------------------------------------------------- directory


def covering_agency(directory: Directory, domain: str) -> tuple[AgencyInfo, str] | None:
    """The agency whose pinned senders and keys vouch for ``domain``, and its domain.

    The agency that lists ``domain`` itself; otherwise the one listing the nearest parent
    domain, if it was added with ``--include-subdomains``.
    """
    name = domain.strip().lower().rstrip(".")
    labels = name.split(".")
    for start in range(len(labels) - 1):
        parent = ".".join(labels[start:])
        agency = directory.agency_for_domain(parent)
        if agency is not None:
            if start == 0 or agency.include_subdomains:
                return agency, parent
            return None
    return None


def owning_agency(directory: Directory, domain: str) -> AgencyInfo | None:
    """The agency that owns ``domain``: the one listing it, otherwise the one listing its
    nearest parent (whether or not that agency vouches for subdomains); None outside
    the directory. Agencies are DMARC's alignment boundaries: see
    :mod:`mailsvc.pipeline.authentication`."""
    labels = domain.strip().lower().rstrip(".").split(".")
    for start in range(len(labels) - 1):
        agency = directory.agency_for_domain(".".join(labels[start:]))
        if agency is not None:
            return agency
    return None


class DbDirectory:
    """:class:`mailsvc.interfaces.Directory` over the agency table, cached in memory.

    The first lookup loads the snapshot if nothing has been loaded yet; after that,
    lookups never touch the database. ``local_domains`` (e.g. the server's own
    domain) count as local even before an agency is registered for them.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        local_domains: Iterable[str] = (),
        refresh_seconds: float = 60.0,
    ) -> None:
        self._sessions = sessions
        self._extra_local = frozenset(d.lower() for d in local_domains)
        self.refresh_seconds = refresh_seconds
        self._by_domain: dict[str, AgencyInfo] = {}
        self._by_code: dict[str, AgencyInfo] = {}
        self._by_address: dict[str, AgencyInfo] = {}
        self._loaded_at: float | None = None
        self._lock = threading.Lock()

    # -- loading

    def refresh(self) -> int:
        """Reload the snapshot from the database (blocking); returns the agency count."""
        with reading(self._sessions) as session:
            infos = [agency_info(a) for a in list_agencies(session)]
        by_domain: dict[str, AgencyInfo] = {}
        by_address: dict[str, AgencyInfo] = {}
        for info in infos:
            for domain in info.domains:
                by_domain[domain] = info
            for address in info.known_addresses:
                by_address[address] = info
        with self._lock:
            self._by_domain = by_domain
            self._by_code = {info.code: info for info in infos}
            self._by_address = by_address
            self._loaded_at = time.monotonic()
        log.debug("agency directory loaded: %d agencies", len(infos))
        return len(infos)

    async def refresh_async(self) -> int:
        return await asyncio.to_thread(self.refresh)

    async def run_refresher(self) -> None:
        """Refresh every ``refresh_seconds`` until cancelled; failures are logged and retried."""
        while True:
            try:
                await self.refresh_async()
            except Exception:
                log.warning(
                    "agency directory refresh failed; keeping the old snapshot", exc_info=True
                )
            await asyncio.sleep(self.refresh_seconds)

    def _ensure_loaded(self) -> None:
        if self._loaded_at is None:
            self.refresh()

    @property
    def age_seconds(self) -> float | None:
        return None if self._loaded_at is None else time.monotonic() - self._loaded_at

    # -- Directory protocol

    def agency_for_domain(self, domain: str) -> AgencyInfo | None:
        self._ensure_loaded()
        return self._by_domain.get(domain.strip().lower().rstrip("."))

    def is_local_domain(self, domain: str) -> bool:
        domain = domain.strip().lower().rstrip(".")
        if domain in self._extra_local:
            return True
        info = self.agency_for_domain(domain)
        return info is not None and info.local

    # -- extra lookups

    def agency_by_code(self, code: str) -> AgencyInfo | None:
        self._ensure_loaded()
        return self._by_code.get(code)

    def agency_for_address(self, address: str) -> AgencyInfo | None:
        """By known address first, then by the address's domain."""
        self._ensure_loaded()
        address = address.strip().lower()
        info = self._by_address.get(address)
        if info is not None:
            return info
        return self.agency_for_domain(address.rpartition("@")[2])

    def agencies(self) -> list[AgencyInfo]:
        self._ensure_loaded()
        return sorted(self._by_code.values(), key=lambda i: i.code)
