"""What the admin sees of each external mailbox: configuration, last poll, position."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailsvc.config import ExternalMailbox
from mailsvc.external.models import ExternalFetch, ExternalState

_SCHEMES = {"implicit": "imaps", "starttls": "imap+starttls", "none": "imap"}


def mailbox_view(session: Session, cfg: ExternalMailbox) -> dict[str, Any]:
    """One mailbox as plain values (JSON-able; times are datetimes)."""
    state = session.get(ExternalState, cfg.name)
    counts = dict(
        session.execute(
            select(ExternalFetch.outcome, func.count())
            .where(ExternalFetch.mailbox == cfg.name)
            .group_by(ExternalFetch.outcome)
        ).all()
    )
    mode = "-"
    if state is not None and state.last_poll_at is not None:
        mode = "idle" if state.idle else "poll"
    return {
        "name": cfg.name,
        "server": f"{_SCHEMES[cfg.tls]}://{cfg.host}:{cfg.port}/{cfg.folder}",
        "username": cfg.username,
        "deliver_to": cfg.deliver_to,
        "mode": mode,
        "last_poll": state.last_poll_at if state else None,
        "last_poll_new": state.last_poll_new if state else 0,
        "uidvalidity": state.uidvalidity if state else None,
        "last_uid": state.last_uid if state else 0,
        "accepted": int(counts.get("accepted", 0)) + int(counts.get("duplicate", 0)),
        "refused": int(counts.get("refused", 0)),
        "last_error": state.last_error if state else "",
        "last_error_at": state.last_error_at if state and state.last_error else None,
    }
