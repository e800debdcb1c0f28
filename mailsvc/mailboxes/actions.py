"""Service actions inside a user's mailbox: flag, move (recall), list folders.

They log in to Dovecot over IMAPS with aioimaplib as ``user*mailsvc``: the
master user whose secret only mailsvc holds (``HOME/dovecot/master-secret``).
Messages are found by Message-ID or by our ``X-Mailsvc-Queue-Id`` header; a
header search in IMAP is a substring match, so every candidate is checked for
an exact value before anything is changed.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from email.parser import BytesHeaderParser
from email.policy import compat32

import aioimaplib

from mailsvc.errors import DependencyError, MailsvcError, NotFoundError
from mailsvc.mailboxes.dovecot import MASTER_SEPARATOR, DovecotService

log = logging.getLogger(__name__)
_HAS_FIRST_BYTE = re.compile(rb'BODY\[\]<0> (?:\{[1-9][0-9]*\}|"[^"]+")')

QUEUE_ID_HEADER = "X-Mailsvc-Queue-Id"
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?:"[^"]*"|NIL) (?P<name>.+)$')


class MailboxActionError(MailsvcError):
    """Dovecot refused a service action; the message carries its reply."""


ALL_FOLDERS = "*"  # move(): look in every folder


def quote(text: str) -> str:
    """An IMAP quoted string (RFC 3501 section 9)."""
    if any(c in text for c in "\r\n\x00"):
        raise ValueError("CR, LF and NUL cannot be sent in an IMAP string")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pinned_context(cert_path: str) -> ssl.SSLContext:
    """Trust exactly our own certificate (self-signed or not) when talking to our Dovecot."""
    ctx = ssl.create_default_context(cafile=cert_path)
    ctx.check_hostname = False
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx


class MailboxActions:
    """IMAP actions on behalf of the service in any mailbox (not for normal users)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        master_user: str,
        master_secret: str,
        ssl_context: ssl.SSLContext | None,
        separator: str = "*",
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port
        self.master_user = master_user
        self._secret = master_secret
        self.ssl_context = ssl_context
        self.separator = separator
        self.timeout = timeout

    @classmethod
    def for_service(
        cls, service: DovecotService, cert_path: str, timeout: float = 30.0
    ) -> MailboxActions:
        """Build from a started DovecotService (IMAPS address, master secret, our certificate)."""
        host, port = service.imaps_address
        return cls(
            host,
            port,
            master_user=service.master_login_user,
            master_secret=service.master_secret(),
            ssl_context=pinned_context(cert_path),
            separator=MASTER_SEPARATOR,
            timeout=timeout,
        )

    @asynccontextmanager
    async def session(self, address: str) -> AsyncIterator[aioimaplib.IMAP4]:
        """A logged-in IMAP session in ``address``'s mailbox as the service."""
        if self.ssl_context is not None:
            client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(
                self.host, self.port, ssl_context=self.ssl_context, timeout=self.timeout
            )
        else:
            client = aioimaplib.IMAP4(self.host, self.port, timeout=self.timeout)
        try:
            await client.wait_hello_from_server()
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise DependencyError(f"IMAP {self.host}:{self.port} unreachable: {exc}") from exc
        try:
            login = f"{address}{self.separator}{self.master_user}"
            reply = await client.login(quote(login), self._secret)
            if reply.result != "OK":
                raise MailboxActionError(
                    f"service login to {address} refused: {_text(reply.lines)}"
                )
            yield client
        finally:
            try:
                await client.logout()
            except Exception:  # boundary: the session is over either way
                log.debug("IMAP logout failed", exc_info=True)

    async def list_folders(self, address: str) -> list[str]:
        async with self.session(address) as imap:
            reply = await imap.list('""', "*")
            _check(reply, "LIST")
            return _parse_list(reply.lines)

    async def find(
        self,
        address: str,
        *,
        message_id: str | None = None,
        queue_id: str | None = None,
        folder: str = "INBOX",
    ) -> list[int]:
        """UIDs in ``folder`` whose Message-ID (or queue-id header) equals the value exactly."""
        async with self.session(address) as imap:
            return await self._find(imap, folder, message_id, queue_id)

    async def holds(self, address: str, *, queue_id: str, folder: str = "INBOX") -> bool:
        """True when ``folder`` holds a readable copy with this queue-id header.

        The message is read, not only its header: Dovecot answers header searches from
        its index cache, which can remember a message whose file is gone (a restored
        Maildir); a byte read from the file settles it."""
        async with self.session(address) as imap:
            for uid in await self._find(imap, folder, None, queue_id):
                # The first byte of the whole message: a copy always has one (its header),
                # while a lost file comes back as NIL or an empty string, if at all.
                reply = await imap.uid("fetch", str(uid), "(BODY.PEEK[]<0.1>)")
                if reply.result == "OK" and any(
                    _HAS_FIRST_BYTE.search(line)
                    for line in reply.lines
                    if isinstance(line, bytes | bytearray)
                ):
                    return True
            return False

    async def add_flags(
        self,
        address: str,
        flags: Sequence[str],
        *,
        message_id: str | None = None,
        queue_id: str | None = None,
        folder: str = "INBOX",
    ) -> int:
        """Add flags (e.g. ``\\Flagged``) to the matching messages; return how many matched."""
        for flag in flags:
            if not re.fullmatch(r"\\?[A-Za-z0-9$_.-]+", flag):
                raise ValueError(f"invalid IMAP flag {flag!r}")
        async with self.session(address) as imap:
            uids = await self._find(imap, folder, message_id, queue_id)
            if uids:
                reply = await imap.uid(
                    "store", _uid_set(uids), "+FLAGS.SILENT", "(" + " ".join(flags) + ")"
                )
                _check(reply, "STORE")
            return len(uids)

    async def move(
        self,
        address: str,
        to_folder: str,
        *,
        message_id: str | None = None,
        queue_id: str | None = None,
        from_folder: str = "INBOX",
        create: bool = True,
    ) -> int:
        """Move the matching messages to ``to_folder`` (created if missing); return the count.
        ``from_folder`` ``"*"`` looks in every folder but ``to_folder`` (a recalled copy
        the clerk filed away is voided wherever it is)."""
        async with self.session(address) as imap:
            if from_folder == ALL_FOLDERS:
                reply = await imap.list('""', "*")
                _check(reply, "LIST")
                folders = [f for f in _parse_list(reply.lines) if f != to_folder]
            else:
                folders = [from_folder]
            moved = 0
            created = False
            for folder in folders:
                try:
                    uids = await self._find(imap, folder, message_id, queue_id)
                except NotFoundError:
                    if from_folder != ALL_FOLDERS:
                        raise
                    continue  # a \Noselect folder: nothing to move there
                if not uids:
                    continue
                if create and not created:
                    await imap.create(quote(to_folder))  # NO [ALREADYEXISTS] is fine
                    created = True
                reply = await imap.uid("move", _uid_set(uids), quote(to_folder))
                _check(reply, "MOVE")
                moved += len(uids)
            return moved

    async def _find(
        self,
        imap: aioimaplib.IMAP4,
        folder: str,
        message_id: str | None,
        queue_id: str | None,
    ) -> list[int]:
        if (message_id is None) == (queue_id is None):
            raise ValueError("give exactly one of message_id or queue_id")
        header, value = (
            ("Message-ID", message_id) if message_id is not None else (QUEUE_ID_HEADER, queue_id)
        )
        assert value is not None
        reply = await imap.select(quote(folder))
        if reply.result != "OK":
            raise NotFoundError(f"folder {folder!r}: {_text(reply.lines)}")
        reply = await imap.uid_search("HEADER", header, quote(value), charset=None)
        _check(reply, "SEARCH")
        candidates = [int(n) for line in reply.lines[:1] for n in line.split() if n.isdigit()]
        if not candidates:
            return []
        reply = await imap.uid(
            "fetch", _uid_set(candidates), f"(UID BODY.PEEK[HEADER.FIELDS ({header.upper()})])"
        )
        _check(reply, "FETCH")
        return _exact_matches(reply.lines, header, value)


def _exact_matches(lines: list[bytes], header: str, value: str) -> list[int]:
    found: list[int] = []
    uid: int | None = None
    for line in lines:
        if isinstance(line, bytearray):  # the literal that follows its FETCH line
            msg = BytesHeaderParser(policy=compat32).parsebytes(bytes(line))
            values = [" ".join(v.split()) for v in msg.get_all(header, [])]
            if uid is not None and value.strip() in values:
                found.append(uid)
            uid = None
            continue
        m = _FETCH_UID.search(line)
        if m and b"FETCH" in line:
            uid = int(m.group(1))
    return sorted(set(found))


def _uid_set(uids: Sequence[int]) -> str:
    return ",".join(str(u) for u in uids)


def _text(lines: list[bytes]) -> str:
    return " ".join(bytes(x).decode("utf-8", "replace") for x in lines).strip()


def _check(reply: aioimaplib.Response, what: str) -> None:
    if reply.result != "OK":
        raise MailboxActionError(f"IMAP {what} failed: {_text(reply.lines)}")


def _parse_list(lines: list[bytes]) -> list[str]:
    names: list[str] = []
    for line in lines:
        m = _LIST_LINE.match(bytes(line))
        if not m:
            continue
        name = m.group("name").decode("utf-8", "replace")
        if name.startswith('"') and name.endswith('"'):
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        names.append(name)
    return names
