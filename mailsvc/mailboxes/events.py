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
``end_time`` is UTC (RFC 3339, ``Z``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

EVENT_MARK = " stats: Info: {"


@dataclass(frozen=True)
class MailboxEvent:
    kind: Literal["login", "select"]
    at: datetime
    user: str
    session: str
    remote_ip: str
    success: bool
    master_user: str = ""
    mailbox: str = ""
    command: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def parse_line(line: str) -> MailboxEvent | None:
    """The event on one line of events.log, or None for any other line."""
    pos = line.find(EVENT_MARK)
    if pos < 0:
        return None
    try:
        data = json.loads(line[pos + len(EVENT_MARK) - 1 :])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    fields = data.get("fields") or {}
    at = _time(data.get("end_time") or data.get("start_time") or "1970-01-01T00:00:00Z")
    name = data.get("event")
    if name == "auth_request_finished":
        return MailboxEvent(
            kind="login",
            at=at,
            user=str(fields.get("user", "")),
            session=str(fields.get("session", "")),
            remote_ip=str(fields.get("remote_ip", "")),
            success=fields.get("success") == "yes",
            master_user=str(fields.get("master_user", "")),
            raw=data,
        )
    if name == "imap_command_finished" and fields.get("cmd_name") in ("SELECT", "EXAMINE"):
        return MailboxEvent(
            kind="select",
            at=at,
            user=str(fields.get("user", "")),
            session=str(fields.get("session", "")),
            remote_ip=str(fields.get("remote_ip", "")),
            success=fields.get("tagged_reply_state") == "OK",
            mailbox=str(fields.get("mailbox") or fields.get("cmd_args", "")),
            command=str(fields.get("cmd_name")),
            raw=data,
        )
    return None
