"""Browsing the register page by page, as the workspace does: filters that run in SQL,
the search index, and keyset paging (``before`` = the last id shown), so the thousandth
page costs what the first does, on a register of a million entries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta, tzinfo

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.orm import Session, selectinload

from mailsvc.register import search
from mailsvc.register.models import RegisterDocument
from mailsvc.register.queries import local_today, start_of
from mailsvc.register.statuses import OPEN, DocumentStatus
from mailsvc.register.urgency import Urgency
from mailsvc.time import VIETNAM


@dataclass(frozen=True)
class BrowseFilter:
    query: str = ""
    year: int | None = None
    status: DocumentStatus | None = None
    urgency: Urgency | None = None
    agency_code: str = ""
    outcome: str = ""  # valid | reference_only | invalid
    overdue: bool = False
    due_within_days: int | None = None  # open documents due in the next N days
    since: date | None = None
    until: date | None = None


@dataclass(frozen=True)
class Page:
    documents: list[RegisterDocument]
    next_before: int | None  # id to pass as ``before`` for the next page; None at the end


def _conditions(flt: BrowseFilter, zone: tzinfo, today: date) -> list[ColumnElement[bool]]:
    doc = RegisterDocument
    found: list[ColumnElement[bool]] = []
    if flt.year is not None:
        found.append(doc.year == flt.year)
    if flt.status is not None:
        found.append(doc.status == flt.status.value)
    if flt.urgency is not None:
        found.append(doc.urgency == flt.urgency.value)
    if flt.agency_code:
        found.append(doc.agency_code == flt.agency_code)
    if flt.outcome:
        found.append(doc.signature_outcome == flt.outcome)
    open_codes = [s.value for s in OPEN]
    if flt.overdue:
        found.append(and_(doc.deadline < today, doc.status.in_(open_codes)))
    if flt.due_within_days is not None:
        end = today + timedelta(days=flt.due_within_days)
        found.append(and_(doc.deadline >= today, doc.deadline <= end, doc.status.in_(open_codes)))
    if flt.since:
        found.append(doc.received_at >= start_of(flt.since, zone))
    if flt.until:
        found.append(doc.received_at < start_of(flt.until + timedelta(days=1), zone))
    return found


def browse(
    session: Session,
    flt: BrowseFilter,
    scope: ColumnElement[bool],
    *,
    before: int | None = None,
    page_size: int = 50,
    zone: tzinfo = VIETNAM,
    today: date | None = None,
) -> Page:
    """One page of documents, newest first, within ``scope`` (the person's WHERE clause).

    The page's ids are found first and the documents loaded by id after: the ids come
    from an index alone where one covers the filter (``workspace_0002``), so neither
    database reads a row that is not shown."""
    today = today or local_today(zone)
    doc = RegisterDocument
    ids = select(doc.id).where(scope, *_conditions(flt, zone, today))
    if before is not None:
        ids = ids.where(doc.id < before)
    ids = search.narrow(session, ids, flt.query, before).limit(page_size + 1)
    found = list(session.scalars(ids))
    more = len(found) > page_size
    found = found[:page_size]
    rows = (
        list(
            session.scalars(
                select(doc)
                .where(doc.id.in_(found))
                .options(selectinload(doc.register))
                .order_by(doc.id.desc())
            )
        )
        if found
        else []
    )
    return Page(rows, found[-1] if more and found else None)
