"""Who sees and does what in the workspace (from the mailbox's role).

| role     | register documents                          | actions                          |
|----------|---------------------------------------------|----------------------------------|
| clerk    | every document                              | every action                     |
| leader   | every document (read)                       | assign with instructions         |
| official | documents assigned to them or their unit    | progress and done on those       |
| admin    | none (overview of checks, jobs, queue)      | none (provisioning is the CLI's) |

A document outside a person's scope answers 404, exactly like one that does not exist,
so an id typed into the URL tells nothing. The admin overview lists the mailboxes of the
person's own agency (or mail domain); the server-wide figures (outbound queue, job runs)
are for the server's operators alone: administrators who belong to no agency.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, func, or_

from mailsvc.db.models import Mailbox
from mailsvc.register.models import RegisterDocument
from mailsvc.web.workspace.auth import Person

CLERK = "clerk"
LEADER = "leader"
OFFICIAL = "official"
ADMIN = "admin"

ROLE_LABELS = {
    CLERK: "Văn thư",
    LEADER: "Lãnh đạo",
    OFFICIAL: "Cán bộ, công chức",
    ADMIN: "Quản trị",
}


def sees_register(person: Person) -> bool:
    return person.role in (CLERK, LEADER, OFFICIAL)


def document_scope(person: Person) -> ColumnElement[bool]:
    """The WHERE clause limiting register documents to what ``person`` may read: only
    the registers of their own agency, and for an official only what is assigned to
    them or their unit."""
    if not person.register_ids:
        return false()
    own = RegisterDocument.register_id.in_(person.register_ids)
    if person.role in (CLERK, LEADER):
        return own
    if person.role == OFFICIAL:
        mine = [func.lower(RegisterDocument.assigned_to) == person.address.lower()]
        if person.unit:
            mine.append(func.lower(RegisterDocument.assigned_to) == person.unit.lower())
        return and_(own, or_(*mine))
    return false()


def in_scope(person: Person, document: RegisterDocument) -> bool:
    if document.register_id not in person.register_ids:
        return False
    if person.role in (CLERK, LEADER):
        return True
    if person.role == OFFICIAL:
        target = document.assigned_to.lower()
        return target == person.address.lower() or (
            bool(person.unit) and target == person.unit.lower()
        )
    return False


def may_assign(person: Person) -> bool:
    return person.role in (CLERK, LEADER)


def may_report_progress(person: Person, document: RegisterDocument) -> bool:
    return person.role == CLERK or (person.role == OFFICIAL and in_scope(person, document))


def may_manage(person: Person) -> bool:
    """Register actions of the clerk: registering, refusing, recording paper documents,
    recall confirmation, exports."""
    return person.role == CLERK


def sees_admin(person: Person) -> bool:
    return person.role in (ADMIN, LEADER)


def sees_server(person: Person) -> bool:
    """The whole server's outbound queue and job runs: its operators only (administrators
    who belong to no agency), never an agency's leader or administrator."""
    return person.role == ADMIN and person.agency_id is None


def agency_mailboxes(person: Person) -> ColumnElement[bool]:
    """The WHERE clause for the mailboxes of the person's agency, or of their mail domain
    when they belong to no agency (the heat map's and the admin overview's rule)."""
    if person.agency_id is not None:
        return Mailbox.agency_id == person.agency_id
    return Mailbox.address.like(f"%@{person.address.rpartition('@')[2]}")
