"""Login and SELECT/EXAMINE events written by Dovecot's event exporter.

``HOME/dovecot/events.log`` is Dovecot's info log. The event records are the
lines of the form::

    2026-11-21T05:38:53 stats: Info: {"event":"auth_request_finished", ...}

i.e. a local timestamp, ``stats: Info: `` and one JSON object
(``format = json``, ``format_args = time-rfc3339``). Other lines (logins,
deliveries, disconnects from other processes) carry other prefixes and are
skipped. Only the ``stats`` process writes that prefix, so a client cannot
forge a record. Dovecot appends and never drops an event with
``transport = log``: a reader that saves its byte offset loses nothing.

JSON fields used (all under ``fields``):
- ``auth_request_finished``: ``user`` (the mailbox), ``success`` ("yes" when the
  password was accepted), ``master_user`` ("mailsvc" for our own service
  logins), ``service`` ("imap"), ``session``, ``remote_ip``, ``mechanism``.
- ``imap_command_finished`` with ``cmd_name`` SELECT or EXAMINE: ``user``,
  ``mailbox``, ``session`` (join with the login to tell service sessions
  apart), ``remote_ip``, ``tagged_reply_state`` ("OK" when it succeeded).
- ``imap_command_finished`` with ``cmd_name`` ID (the client's IMAP ID sent after
  login): ``session``, ``cmd_args`` (the ID list as sent).
- An ID sent before login reaches the login event as ``client_id`` (Dovecot's
  ``imap_id_retain = yes``).
``end_time`` is UTC (RFC 3339, ``Z``).

Only a line whose first word (the timestamp) is followed by ``stats: Info: {`` is an
event: other processes log client-chosen text (a rejected user name) after their own
prefix, and that text must never be read as an event.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

EVENT_MARK = "stats: Info: {"
CLIENT_MAX = 256


@dataclass(frozen=True)
class MailboxEvent:
    kind: Literal["login", "select", "id"]
    at: datetime
    user: str
    session: str
    remote_ip: str
    success: bool
    master_user: str = ""
    mailbox: str = ""
    command: str = ""
    service: str = ""
    client: str = ""  # "name version" from the client's IMAP ID, when it sent one
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def parse_line(line: str) -> MailboxEvent | None:
    """The event on one line of events.log, or None for any other line."""
    _stamp, _, rest = line.partition(" ")
    if not rest.startswith(EVENT_MARK):
        return None
    try:
        data = json.loads(rest[len(EVENT_MARK) - 1 :])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    fields = data.get("fields") or {}
    if not isinstance(fields, dict):
        return None
    at = _time(data.get("end_time") or data.get("start_time") or "1970-01-01T00:00:00Z")
    name = data.get("event")
    common = MailboxEvent(
        kind="login",
        at=at,
        user=str(fields.get("user", "")),
        session=str(fields.get("session", "")),
        remote_ip=str(fields.get("remote_ip", "")),
        success=False,
        raw=data,
    )
    if name == "auth_request_finished":
        return replace(
            common,
            success=fields.get("success") == "yes",
            master_user=str(fields.get("master_user", "")),
            service=str(fields.get("service", "")),
            client=client_name(str(fields.get("client_id", ""))),
        )
    if name != "imap_command_finished":
        return None
    command = fields.get("cmd_name")
    success = fields.get("tagged_reply_state") == "OK"
    if command in ("SELECT", "EXAMINE"):
        return replace(
            common,
            kind="select",
            success=success,
            mailbox=str(fields.get("mailbox") or fields.get("cmd_args", "")),
            command=str(command),
            service="imap",
        )
    if command == "ID":
        return replace(
            common,
            kind="id",
            success=success,
            command="ID",
            service="imap",
            client=client_name(str(fields.get("cmd_args", ""))),
        )
    return None


_ID_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|(NIL)|([^\s()"]+)', re.IGNORECASE)


def id_fields(text: str) -> dict[str, str]:
    """The key/value pairs of an IMAP ID list (``("name" "X" "version" "1")``, with or
    without the parentheses); keys in lower case, NIL values as empty strings."""
    tokens: list[str] = []
    for quoted, nil, atom in _ID_TOKEN.findall(text):
        if nil:
            tokens.append("")
        elif atom:
            tokens.append(atom)
        else:
            tokens.append(re.sub(r"\\(.)", r"\1", quoted))
    return {tokens[i].lower(): tokens[i + 1] for i in range(0, len(tokens) - 1, 2)}


def client_name(id_text: str) -> str:
    """``"name version"`` from an IMAP ID list, or "" when it names no client."""
    fields = id_fields(id_text)
    words = (fields.get("name", ""), fields.get("version", ""))
    text = " ".join(w for w in words if w)
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return text[:CLIENT_MAX]
