"""The workspace's pages under ``/w/``: server-rendered HTML (Jinja2), forms that work
without JavaScript, in Vietnamese.

Every handler finds the person from the session cookie first; a page outside the
person's role answers 403, a document outside their scope 404 (as if it did not exist).
Database work runs in worker threads with its own session; register changes go through
the same service functions as the CLI (``register.workflow``, ``notify.recall``) and are
committed with their audit entries, status notices and the assignee's copy in one
transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import statistics
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from aiohttp import BodyPartReader, web
from sqlalchemy import and_, func, literal_column, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from mailsvc.checks.compliance import evaluate, tracked_mailboxes
from mailsvc.checks.models import MailboxCheck
from mailsvc.checks.policy import CheckingPolicy
from mailsvc.checks.report import report_values
from mailsvc.db.base import utcnow
from mailsvc.db.models import Agency, Mailbox
from mailsvc.errors import MailsvcError
from mailsvc.jobs.models import JobRun
from mailsvc.notify.assignment import (
    Assignment,
    AssignmentMailer,
    assignee_mailboxes,
    of_agency,
)
from mailsvc.notify.recall import StatusNotifier
from mailsvc.outbound import queue as outbound_queue
from mailsvc.register import export, search, workflow
from mailsvc.register.browse import BrowseFilter, browse
from mailsvc.register.models import DocumentAttachment, DocumentHistory, RegisterDocument
from mailsvc.register.queries import is_overdue, local_today
from mailsvc.register.registers import INCOMING_NAME, register_for_recipient
from mailsvc.register.registration import AttachmentInput, DocumentInput, register_document
from mailsvc.register.statuses import DocumentStatus, TransitionError, check_transition
from mailsvc.register.urgency import Urgency
from mailsvc.signatures.report import DocumentOutcome
from mailsvc.store.blobs import BlobStore
from mailsvc.time import VIETNAM, vn_date, vn_datetime
from mailsvc.web.workspace import scope
from mailsvc.web.workspace.auth import SESSION_COOKIE, Authenticator, Person, csrf_ok
from mailsvc.web.workspace.charts import Bar, columns, ranking
from mailsvc.web.workspace.previews import MAX_PREVIEW_PAGES, PreviewDrawer
from mailsvc.web.workspace.signatures import StoredSignature, stored_signatures

log = logging.getLogger(__name__)

PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class _Resolved:
    person: Person | None


PERSON = web.RequestKey("person", _Resolved)  # resolved once per request
FORM_ERROR = web.RequestKey("form_error", str)
PRE_COOKIE = "__Host-mailsvc-ws-pre"  # CSRF of the sign-in form (no session yet)
MAX_UPLOAD = 25 * 1024 * 1024
HEAT_SECONDS = 300.0
MAX_FIELD = 2000
# Characters that end a line (str.splitlines): refused in single-line fields.
LINE_BREAKS = frozenset("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
ID = "[0-9]{1,18}"  # a route's id: ASCII digits only, at most 18 (a cheap int())
MAX_ID = 2**31 - 1  # the largest id the register's tables hold (PostgreSQL's integer)
FIRST_YEAR, LAST_YEAR = 1900, 2999  # the dates a form or filter may name

OUTCOME_LABELS = {
    DocumentOutcome.VALID.value: "Hợp lệ (có giá trị pháp lý)",
    DocumentOutcome.REFERENCE_ONLY.value: "Chỉ có giá trị tham khảo",
    DocumentOutcome.INVALID.value: "Không hợp lệ (từ chối tiếp nhận)",
}
# Content types a browser may receive as themselves (always as an attachment).
SAFE_TYPES = frozenset(
    {
        "application/pdf",
        "image/png",
        "image/jpeg",
        "image/tiff",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/zip",
        "application/pkcs7-signature",
    }
)
# What each role may set from the document page (the transition table still applies).
CLERK_TARGETS = (
    DocumentStatus.REGISTERED,
    DocumentStatus.IN_PROGRESS,
    DocumentStatus.DONE,
    DocumentStatus.REFUSED,
    DocumentStatus.RECALLED,
)
OFFICIAL_TARGETS = (DocumentStatus.IN_PROGRESS, DocumentStatus.DONE)


# What the document page says after an action (the redirect carries only the code).
DONE_MESSAGES = {
    "assigned": "Đã chuyển xử lý; người nhận được gửi văn bản qua thư.",
    "status": "Đã cập nhật trạng thái; cơ quan gửi được thông báo.",
    "registered": "Đã vào sổ văn bản.",
}


class FormError(MailsvcError):
    """Bad input in a form: shown to the person in Vietnamese."""


def _iso(value: datetime | None, zone: tzinfo) -> str:
    return value.astimezone(zone).isoformat(timespec="seconds") if value else ""


def _field(form: Any, name: str, limit: int = MAX_FIELD, *, multiline: bool = False) -> str:
    """A form field, NFC and stripped; one line unless ``multiline`` (its value may end
    up in a mail header: the assignee's copy)."""
    value = form.get(name, "")
    if not isinstance(value, str):
        return ""
    value = unicodedata.normalize("NFC", value).strip()
    if len(value) > limit:
        raise FormError(f"Trường «{name}» quá dài (tối đa {limit} ký tự).")
    if not multiline and any(ch in LINE_BREAKS for ch in value):
        raise FormError(f"Trường «{name}» chỉ được có một dòng.")
    if any(ord(ch) < 32 and ch not in "\t\r\n" for ch in value):
        raise FormError(f"Trường «{name}» chứa ký tự điều khiển.")
    return value


def _parse_day(value: str, label: str) -> date | None:
    """A day as yyyy-mm-dd or dd/mm/yyyy, in the years 1900 to 2999 (outside them, date
    arithmetic and the databases' date types overflow)."""
    if not value:
        return None
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            day = datetime.strptime(value, fmt).date()
        except ValueError:
            continue
        if not FIRST_YEAR <= day.year <= LAST_YEAR:
            raise FormError(f"{label} phải là một ngày từ năm {FIRST_YEAR} đến năm {LAST_YEAR}.")
        return day
    raise FormError(f"{label} không đúng dạng ngày (dd/mm/yyyy).")


def _ascii_number(value: str, digits: int) -> int | None:
    """``value`` as a number when it is 1 to ``digits`` ASCII digits ("²" and "٣" pass
    ``str.isdigit`` but are not numbers here), else None."""
    if value.isascii() and value.isdigit() and len(value) <= digits:
        return int(value)
    return None


def _safe_next(value: str) -> str:
    """Only our own pages: "/w/..." without a scheme, host or backslash."""
    if value.startswith("/w/") and "//" not in value and "\\" not in value and len(value) < 500:
        return value
    return "/w/"


@dataclass
class DocumentRow:
    """One line of a register list (plain values for the template)."""

    id: int
    number: str
    received: str
    agency: str
    number_notation: str
    issued: str
    title: str
    urgency: str
    urgent: bool
    status: str
    outcome: str
    deadline: str
    overdue: bool
    assigned_to: str


def _row(doc: RegisterDocument, zone: tzinfo, today: date) -> DocumentRow:
    urgency = Urgency(doc.urgency)
    title = " – ".join(p for p in (doc.doc_type, doc.abstract or doc.subject) if p)
    return DocumentRow(
        id=doc.id,
        number=f"{doc.incoming_number}/{doc.year}" if doc.incoming_number else "",
        received=vn_datetime(doc.received_at, zone),
        agency=doc.agency_name or doc.agency_code or doc.sender,
        number_notation=doc.number_notation,
        issued=vn_date(doc.issued_date),
        title=title,
        urgency=urgency.label if urgency is not Urgency.NORMAL else "",
        urgent=urgency is not Urgency.NORMAL,
        status=DocumentStatus(doc.status).label,
        outcome=OUTCOME_LABELS.get(doc.signature_outcome, doc.signature_outcome),
        deadline=vn_date(doc.deadline),
        overdue=is_overdue(doc, today),
        assigned_to=doc.assigned_to,
    )


@dataclass
class Workspace:
    """The pages and the objects they use (built in ``app.py``)."""

    sessions: sessionmaker[Session]
    auth: Authenticator
    templates: Path
    blobs: BlobStore
    previews: PreviewDrawer
    notifier: StatusNotifier | None = None
    assignment_mailer: AssignmentMailer | None = None
    wake_mailer: Callable[[], None] = lambda: None
    checking: CheckingPolicy | None = None  # mailbox-check policy: the live heat map
    page_size: int = 50
    zone: tzinfo = VIETNAM
    pre_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    _env: jinja2.Environment | None = None
    _heat: dict[object, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    # ------------------------------------------------------------------ plumbing

    def routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/w", self.home)
        r.add_get("/w/", self.home)
        r.add_get("/w/login", self.login_form)
        r.add_post("/w/login", self.login)
        r.add_post("/w/logout", self.logout)
        r.add_get("/w/incoming", self.incoming)
        r.add_get("/w/incoming/new", self.new_form)
        r.add_post("/w/incoming/new", self.new_document)
        r.add_get("/w/incoming/export", self.export)
        r.add_get(f"/w/incoming/{{id:{ID}}}", self.document)
        r.add_get(f"/w/incoming/{{id:{ID}}}/files/{{link:{ID}}}", self.download)
        r.add_get(f"/w/incoming/{{id:{ID}}}/preview/{{page:{ID}}}.png", self.preview)
        r.add_post(f"/w/incoming/{{id:{ID}}}/assign", self.assign)
        r.add_post(f"/w/incoming/{{id:{ID}}}/status", self.status)
        r.add_get("/w/mine", self.mine)
        r.add_get("/w/dashboard", self.dashboard)
        r.add_get("/w/admin", self.admin)
        r.add_get("/w/{tail:.*}", self.unknown)  # last: any other page under /w/

    @property
    def env(self) -> jinja2.Environment:
        if self._env is None:
            self._env = jinja2.Environment(
                # The workspace's own templates, and the shared report pieces (heat map).
                loader=jinja2.FileSystemLoader([self.templates, self.templates.parent]),
                autoescape=True,
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
        return self._env

    def _page_text(self, name: str, person: Person | None, **values: Any) -> str:
        """A page with the header every page has (who is signed in, what they may open)."""
        return self.env.get_template(name).render(
            person=person,
            role_label=scope.ROLE_LABELS.get(person.role, person.role) if person else "",
            csrf=person.csrf if person else "",
            can_admin=bool(person and scope.sees_admin(person)),
            can_register=bool(person and scope.sees_register(person)),
            can_manage=bool(person and scope.may_manage(person)),
            **values,
        )

    def _render(
        self,
        name: str,
        person: Person | None,
        *,
        status: int = 200,
        **values: Any,
    ) -> web.Response:
        return web.Response(
            text=self._page_text(name, person, **values),
            status=status,
            content_type="text/html",
            charset="utf-8",
            headers={"Content-Security-Policy": PAGE_CSP},
        )

    async def _person(self, request: web.Request) -> Person | None:
        if PERSON not in request:
            token = request.cookies.get(SESSION_COOKIE, "")
            found = await asyncio.to_thread(self.auth.resolve, token) if token else None
            request[PERSON] = _Resolved(found)
        return request[PERSON].person

    async def _require(
        self, request: web.Request, allowed: Callable[[Person], bool] = lambda p: True
    ) -> Person:
        person = await self._person(request)
        if person is None:
            target = request.path_qs if request.method == "GET" else "/w/"
            raise web.HTTPSeeOther("/w/login?" + urlencode({"next": target}))
        if not allowed(person):
            raise web.HTTPForbidden(
                text=self._page_text(
                    "error.html.j2",
                    person,
                    title="Không có quyền truy cập",
                    message="Vai trò của đồng chí không được dùng trang này.",
                ),
                content_type="text/html",
            )
        return person

    def _not_found(self, person: Person) -> web.HTTPNotFound:
        return web.HTTPNotFound(
            text=self._page_text(
                "error.html.j2",
                person,
                title="Không tìm thấy văn bản",
                message="Văn bản không tồn tại hoặc đồng chí không được xem văn bản này.",
            ),
            content_type="text/html",
        )

    def _bad_request(self, person: Person, message: str) -> web.HTTPBadRequest:
        return web.HTTPBadRequest(
            text=self._page_text(
                "error.html.j2", person, title="Yêu cầu không hợp lệ", message=message
            ),
            content_type="text/html",
        )

    async def unknown(self, request: web.Request) -> web.Response:
        """A page that does not exist (an id that is not a plain number, a typo)."""
        person = await self._require(request)
        raise web.HTTPNotFound(
            text=self._page_text(
                "error.html.j2",
                person,
                title="Không tìm thấy trang",
                message="Địa chỉ này không có trang hoặc văn bản nào.",
            ),
            content_type="text/html",
        )

    async def _form(self, request: web.Request, person: Person) -> Any:
        form = await request.post()
        submitted = form.get("csrf", "")
        if not isinstance(submitted, str) or not csrf_ok(person, submitted):
            raise web.HTTPForbidden(
                text="Phiên làm việc không hợp lệ (thiếu hoặc sai mã CSRF); hãy tải lại trang.",
            )
        return form

    # ------------------------------------------------------------------ sign-in

    def _pre_token(self, cookie: str) -> str:
        return hmac.new(self.pre_secret, cookie.encode(), hashlib.sha256).hexdigest()

    def _login_page(
        self,
        request: web.Request,
        *,
        status: int = 200,
        error: str = "",
        address: str = "",
        password_url: str = "",
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        cookie = request.cookies.get(PRE_COOKIE, "")
        fresh = not cookie or len(cookie) > 128
        if fresh:
            cookie = secrets.token_urlsafe(32)
        response = self._render(
            "login.html.j2",
            None,
            status=status,
            title="Đăng nhập",
            form_token=self._pre_token(cookie),
            error=error,
            address=address,
            next=_safe_next(request.query.get("next", "/w/")),
            password_url=password_url,
        )
        if headers:
            response.headers.update(headers)
        if fresh:
            response.set_cookie(
                PRE_COOKIE, cookie, path="/", secure=True, httponly=True, samesite="Strict"
            )
        return response

    async def login_form(self, request: web.Request) -> web.Response:
        if await self._person(request) is not None:
            raise web.HTTPSeeOther("/w/")
        return self._login_page(request)

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = form.get("csrf", "")
        cookie = request.cookies.get(PRE_COOKIE, "")
        address = form.get("address", "")
        password = form.get("password", "")
        if not isinstance(address, str) or not isinstance(password, str):
            return self._login_page(request, status=400, error="Dữ liệu không hợp lệ.")
        address = address.strip().lower()[:320]
        if not (
            isinstance(token, str)
            and cookie
            and hmac.compare_digest(self._pre_token(cookie), token)
        ):
            return self._login_page(
                request,
                status=403,
                address=address,
                error="Phiên đăng nhập đã hết hạn; hãy nhập lại.",
            )
        if not address or not password or len(password) > 1024:
            return self._login_page(
                request, status=400, address=address, error="Hãy nhập địa chỉ thư và mật khẩu."
            )
        result = await asyncio.to_thread(
            self.auth.sign_in, address, password, request.remote or "unknown"
        )
        if result.kind == "ok":
            target = _safe_next(str(form.get("next", "/w/")))
            response = web.HTTPSeeOther(target)
            response.set_cookie(
                SESSION_COOKIE,
                result.token,
                path="/",
                secure=True,
                httponly=True,
                samesite="Strict",
            )
            raise response
        if result.kind == "locked":
            seconds = max(1, int(((result.until or utcnow()) - utcnow()).total_seconds()) + 1)
            return self._login_page(
                request,
                status=429,
                address=address,
                error=f"Nhập sai quá nhiều lần; hãy thử lại sau {seconds} giây.",
                headers={"Retry-After": str(seconds)},
            )
        if result.kind == "must-change":
            return self._login_page(
                request,
                status=403,
                address=address,
                error="Mật khẩu này là mật khẩu dùng một lần: hãy đổi mật khẩu trước.",
                password_url="/password?" + urlencode({"address": address}),
            )
        if result.kind == "disabled":
            return self._login_page(
                request,
                status=403,
                address=address,
                error="Hộp thư đang bị khóa; liên hệ quản trị hệ thống.",
            )
        return self._login_page(
            request, status=403, address=address, error="Sai địa chỉ thư hoặc mật khẩu."
        )

    async def logout(self, request: web.Request) -> web.Response:
        person = await self._require(request)
        await self._form(request, person)
        token = request.cookies.get(SESSION_COOKIE, "")
        await asyncio.to_thread(self.auth.sign_out, token, person)
        response = web.HTTPSeeOther("/w/login")
        # With the attributes it was set with: a browser ignores a __Host- cookie's
        # deletion that lacks Secure.
        response.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
        raise response

    # ------------------------------------------------------------------ lists

    async def home(self, request: web.Request) -> web.Response:
        person = await self._require(request)
        if person.role == scope.ADMIN:
            raise web.HTTPSeeOther("/w/admin")
        if person.role == scope.OFFICIAL:
            raise web.HTTPSeeOther("/w/mine")
        raise web.HTTPSeeOther("/w/incoming")

    def _filter(self, query: Any) -> tuple[BrowseFilter, list[str], dict[str, str]]:
        """The list filters from the query string; bad values are dropped with a note."""
        notes: list[str] = []
        raw = {
            k: str(query.get(k, ""))[:200].strip()
            for k in (
                "q",
                "year",
                "status",
                "urgency",
                "agency",
                "outcome",
                "overdue",
                "since",
                "until",
            )
        }
        values: dict[str, Any] = {"query": raw["q"]}
        if raw["year"]:
            year = _ascii_number(raw["year"], 4)
            if year is not None and FIRST_YEAR <= year <= LAST_YEAR:
                values["year"] = year
            else:
                notes.append("Năm không hợp lệ: bỏ qua.")
        if raw["status"]:
            try:
                values["status"] = DocumentStatus(raw["status"])
            except ValueError:
                notes.append("Trạng thái không hợp lệ: bỏ qua.")
        if raw["urgency"]:
            try:
                values["urgency"] = Urgency(raw["urgency"])
            except ValueError:
                notes.append("Độ khẩn không hợp lệ: bỏ qua.")
        if raw["outcome"] in OUTCOME_LABELS:
            values["outcome"] = raw["outcome"]
        if raw["agency"].isprintable():
            values["agency_code"] = raw["agency"][:64]
        else:  # a NUL byte is refused by PostgreSQL
            notes.append("Mã cơ quan không hợp lệ: bỏ qua.")
        values["overdue"] = raw["overdue"] == "1"
        for key, label in (("since", "Từ ngày"), ("until", "Đến ngày")):
            try:
                values[key] = _parse_day(raw[key], label)
            except FormError as exc:
                notes.append(f"{exc} Bỏ qua.")
        return BrowseFilter(**values), notes, raw

    def _page_values(
        self,
        session: Session,
        person: Person,
        flt: BrowseFilter,
        before: int | None,
        extra_scope: Any = None,
    ) -> dict[str, Any]:
        today = local_today(self.zone)
        where = scope.document_scope(person)
        if extra_scope is not None:
            where = and_(where, extra_scope)
        page = browse(
            session,
            flt,
            where,
            before=before,
            page_size=self.page_size,
            zone=self.zone,
            today=today,
        )
        agencies = session.execute(select(Agency.code, Agency.name).order_by(Agency.name)).all()
        return {
            "rows": [_row(d, self.zone, today) for d in page.documents],
            "next_before": page.next_before,
            "agencies": [{"code": c, "name": n} for c, n in agencies],
        }

    def _before(self, request: web.Request, person: Person) -> int | None:
        """The keyset of the page (the last id shown); 400 when it is not an id."""
        value = request.query.get("before", "")
        if not value:
            return None
        before = _ascii_number(value, 18)
        if before is None or before > MAX_ID:
            raise self._bad_request(person, "Tham số trang «before» không hợp lệ.")
        return before

    async def incoming(self, request: web.Request) -> web.Response:
        person = await self._require(request, scope.sees_register)
        return await self._list_page(request, person, "/w/incoming", "Sổ văn bản đến")

    async def mine(self, request: web.Request) -> web.Response:
        """Việc của tôi: what is assigned to the person or their unit."""
        person = await self._require(request, scope.sees_register)
        targets = [person.address.lower()] + ([person.unit.lower()] if person.unit else [])
        mine = func.lower(RegisterDocument.assigned_to).in_(targets)
        return await self._list_page(request, person, "/w/mine", "Việc của tôi", mine)

    async def _list_page(
        self,
        request: web.Request,
        person: Person,
        path: str,
        title: str,
        extra_scope: Any = None,
    ) -> web.Response:
        """A register list: the whole scope with filters and search (``extra_scope`` None),
        or a narrower list (no filter form)."""
        flt, notes, raw = self._filter(request.query)
        before = self._before(request, person)

        def load() -> dict[str, Any]:
            with self.sessions() as session:
                return self._page_values(session, person, flt, before, extra_scope=extra_scope)

        values = await asyncio.to_thread(load)
        keep = {k: v for k, v in raw.items() if v}
        return self._render(
            "incoming.html.j2",
            person,
            title=title,
            notes=notes,
            filters=raw,
            statuses=[(s.value, s.label) for s in DocumentStatus],
            urgencies=[(u.value, u.label) for u in Urgency],
            outcomes=list(OUTCOME_LABELS.items()),
            next_url=(
                f"{path}?" + urlencode({**keep, "before": values["next_before"]})
                if values["next_before"]
                else ""
            ),
            first_url=f"{path}?" + urlencode(keep) if before else "",
            export_query=urlencode({k: v for k, v in keep.items() if k in ("since", "until")}),
            show_filters=extra_scope is None,
            **values,
        )

    # ------------------------------------------------------------------ one document

    def _load(self, session: Session, person: Person, doc_id: int) -> RegisterDocument:
        if doc_id > MAX_ID:  # no such row, and PostgreSQL refuses the number
            raise self._not_found(person)
        doc = session.scalars(
            select(RegisterDocument)
            .where(RegisterDocument.id == doc_id, scope.document_scope(person))
            .options(
                selectinload(RegisterDocument.attachments).joinedload(
                    DocumentAttachment.attachment
                ),
                selectinload(RegisterDocument.history),
                selectinload(RegisterDocument.register),
            )
        ).one_or_none()
        if doc is None:
            raise self._not_found(person)
        return doc

    async def document(self, request: web.Request) -> web.Response:
        person = await self._require(request, scope.sees_register)
        doc_id = int(request.match_info["id"])
        today = local_today(self.zone)

        def load() -> tuple[dict[str, Any], int]:
            with self.sessions() as session:
                doc = self._load(session, person, doc_id)
                signatures = stored_signatures(session, doc.message_record_id)
                people = session.execute(  # who may be assigned: the document's agency
                    select(Mailbox.address, Mailbox.full_name, Mailbox.unit)
                    .where(of_agency(doc.register))
                    .order_by(Mailbox.address)
                ).all()
                values = self._document_values(doc, signatures, person, today, people)
                return values, doc.page_count

        values, pages = await asyncio.to_thread(load)
        main = values["main_pdf"]
        if not main or await asyncio.to_thread(self.previews.has_failed, main):
            pages = 0
        elif pages <= 0:  # the register does not know (entered by hand): count them now
            data = await asyncio.to_thread(self.blobs.get, main)
            pages = await self.previews.page_count(main, data)
        return self._render(
            "document.html.j2",
            person,
            request_done=DONE_MESSAGES.get(request.query.get("done", ""), ""),
            request_error=request.get(FORM_ERROR, ""),
            title=values["heading"],
            preview_pages=list(range(1, min(pages, MAX_PREVIEW_PAGES) + 1)),
            page_total=pages,
            **values,
        )

    def _document_values(
        self,
        doc: RegisterDocument,
        signatures: Sequence[StoredSignature],
        person: Person,
        today: date,
        people: Iterable[Any],
    ) -> dict[str, Any]:
        status = DocumentStatus(doc.status)
        number = f"{doc.incoming_number}/{doc.year}" if doc.incoming_number else ""
        files = [
            {
                "id": link.id,
                "name": link.filename or f"tep-{link.id}",
                "role": {"main": "Văn bản chính", "annex": "Phụ lục", "signature": "Chữ ký"}.get(
                    link.role, link.role
                ),
                "size": link.attachment.size,
                "stored": link.attachment.stored,
            }
            for link in doc.attachments
        ]
        main_pdf = next(
            (
                link.attachment.sha256
                for link in doc.attachments
                if link.role == "main"
                and link.attachment.stored
                and (
                    link.filename.lower().endswith(".pdf") or link.content_type == "application/pdf"
                )
            ),
            "",
        )
        fields = [
            ("Mã định danh cơ quan gửi", doc.agency_code),
            ("Số và ký hiệu văn bản", doc.number_notation),
            ("Ngày ban hành", vn_date(doc.issued_date)),
            ("Thể loại văn bản", doc.doc_type),
            ("Mức độ khẩn", Urgency(doc.urgency).label),
            ("Trích yếu nội dung", doc.abstract or doc.subject),
            ("Hồ sơ, tài liệu gửi kèm", ", ".join(str(f["name"]) for f in files) or "Không có"),
            ("Trạng thái xử lý", status.label),
            ("Họ tên người ký", doc.signer),
            ("Bên gửi", " – ".join(p for p in (doc.agency_name, doc.sender) if p)),
            ("Bên nhận", doc.recipient),
            ("Thời gian nhận", vn_datetime(doc.received_at, self.zone)),
            ("Thời hạn xử lý", vn_date(doc.deadline)),
        ]
        history = [
            {
                "at": vn_datetime(h.at, self.zone),
                "iso": _iso(h.at, self.zone),
                "actor": h.actor,
                "to": DocumentStatus(h.to_status).label,
                "reason": h.reason,
                "assigned_to": h.assigned_to,
            }
            for h in doc.history
        ]
        targets: tuple[DocumentStatus, ...] = ()
        if scope.may_report_progress(person, doc):
            targets = CLERK_TARGETS if person.role == scope.CLERK else OFFICIAL_TARGETS
        units = sorted({p.unit for p in people if p.unit})
        return {
            "doc_id": doc.id,
            "heading": f"Văn bản đến số {number}" if number else "Văn bản đến (chưa vào sổ)",
            "number": number,
            "fields": fields,
            "outcome": OUTCOME_LABELS.get(doc.signature_outcome, doc.signature_outcome),
            "outcome_code": doc.signature_outcome,
            "signatures": [s.as_view() for s in signatures],
            "files": files,
            "main_pdf": main_pdf,
            "history": history,
            "overdue": is_overdue(doc, today),
            "assigned_to": doc.assigned_to,
            "may_assign": scope.may_assign(person),
            "status_targets": [(t.value, t.label) for t in targets],
            "people": [{"address": p.address, "name": p.full_name} for p in people],
            "units": units,
        }

    async def download(self, request: web.Request) -> web.StreamResponse:
        person = await self._require(request, scope.sees_register)
        doc_id, link_id = int(request.match_info["id"]), int(request.match_info["link"])

        def load() -> tuple[str, str, str]:
            with self.sessions() as session:
                doc = self._load(session, person, doc_id)
                link = next((a for a in doc.attachments if a.id == link_id), None)
                if link is None or not link.attachment.stored:
                    raise self._not_found(person)
                return link.attachment.sha256, link.filename, link.content_type

        sha, filename, ctype = await asyncio.to_thread(load)
        data = await asyncio.to_thread(self.blobs.get, sha)
        name = filename or f"van-ban-{doc_id}"
        ascii_name = (
            "".join(
                ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_"
                for ch in unicodedata.normalize("NFKD", name)
                if not unicodedata.combining(ch)
            )
            or "file"
        )
        disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
        return web.Response(
            body=data,
            headers={
                "Content-Type": ctype if ctype in SAFE_TYPES else "application/octet-stream",
                "Content-Disposition": disposition,
                "Content-Security-Policy": "default-src 'none'; sandbox",
            },
        )

    async def preview(self, request: web.Request) -> web.StreamResponse:
        person = await self._require(request, scope.sees_register)
        doc_id, page = int(request.match_info["id"]), int(request.match_info["page"])
        if not 1 <= page <= MAX_PREVIEW_PAGES:
            raise self._not_found(person)

        def load() -> str:
            with self.sessions() as session:
                doc = self._load(session, person, doc_id)
                values = self._document_values(doc, [], person, local_today(self.zone), [])
                sha: str = values["main_pdf"]
                if not sha:
                    raise self._not_found(person)
                return sha

        sha = await asyncio.to_thread(load)
        # Drawn apart from the mail checks' workers, under a time limit (previews.py).
        body = await self.previews.page(sha, page, lambda: self.blobs.get(sha))
        if body is None:
            raise self._not_found(person)
        return web.Response(
            body=body,
            headers={"Content-Type": "image/png", "Cache-Control": "private, max-age=3600"},
        )

    # ------------------------------------------------------------------ actions

    async def _act(
        self,
        request: web.Request,
        person: Person,
        change: Callable[[Session, RegisterDocument, Any], str],
    ) -> web.StreamResponse:
        doc_id = int(request.match_info["id"])
        form = await self._form(request, person)

        def run() -> str:
            with self.sessions() as session:
                doc = self._load(session, person, doc_id)
                message = change(session, doc, form)
                session.commit()
                return message

        try:
            message = await asyncio.to_thread(run)
        except (MailsvcError, TransitionError) as exc:
            message = str(exc)
            return await self._document_with_error(request, message)
        self.wake_mailer()
        raise web.HTTPSeeOther(f"/w/incoming/{doc_id}?" + urlencode({"done": message}))

    async def _document_with_error(self, request: web.Request, message: str) -> web.Response:
        request[FORM_ERROR] = message
        response = await self.document(request)
        response.set_status(400)
        return response

    async def assign(self, request: web.Request) -> web.StreamResponse:
        person = await self._require(request, scope.may_assign)

        def change(session: Session, doc: RegisterDocument, form: Any) -> str:
            assignee = _field(form, "assignee", 256)
            instructions = _field(form, "instructions", multiline=True)
            deadline = _parse_day(_field(form, "deadline", 20), "Hạn xử lý")
            if not assignee:
                raise FormError("Hãy chọn người hoặc đơn vị xử lý.")
            if not assignee_mailboxes(session, assignee, doc.register):
                raise FormError(f"Không có hộp thư nào của người hoặc đơn vị «{assignee}».")
            if deadline is not None and deadline < local_today(self.zone):
                raise FormError("Hạn xử lý đã qua.")
            before = DocumentStatus(doc.status)
            if doc.incoming_number is None:
                raise FormError("Văn bản chưa vào sổ: hãy vào sổ trước khi chuyển xử lý.")
            try:
                check_transition(before, DocumentStatus.ASSIGNED)
            except TransitionError:
                raise FormError(
                    f"Không thể chuyển xử lý văn bản đang ở trạng thái «{before.label}»."
                ) from None
            workflow.assign(
                session,
                doc,
                assignee,
                actor=person.address,
                reason=instructions,
                deadline=deadline,
            )
            if self.notifier is not None:
                self.notifier.status_changed(session, doc, before, DocumentStatus.ASSIGNED)
            if self.assignment_mailer is not None:
                self.assignment_mailer.queue(
                    session,
                    doc,
                    Assignment(
                        doc.id, assignee, instructions, deadline, person.address, person.name
                    ),
                )
            return "assigned"

        return await self._act(request, person, change)

    async def status(self, request: web.Request) -> web.StreamResponse:
        person = await self._require(request, scope.sees_register)

        def change(session: Session, doc: RegisterDocument, form: Any) -> str:
            if not scope.may_report_progress(person, doc):
                raise FormError("Đồng chí không được cập nhật trạng thái văn bản này.")
            allowed = CLERK_TARGETS if person.role == scope.CLERK else OFFICIAL_TARGETS
            try:
                target = DocumentStatus(_field(form, "status", 32))
            except ValueError:
                raise FormError("Trạng thái không hợp lệ.") from None
            if target not in allowed:
                raise FormError("Đồng chí không được chuyển văn bản sang trạng thái này.")
            reason = _field(form, "reason", multiline=True)
            before = DocumentStatus(doc.status)
            if target in workflow.NEEDS_REASON and not reason:
                raise FormError(f"Hãy ghi lý do khi chuyển sang «{target.label}».")
            try:
                check_transition(before, target)
            except TransitionError:
                raise FormError(
                    f"Không thể chuyển văn bản từ «{before.label}» sang «{target.label}»."
                ) from None
            workflow.set_status(
                session, doc, target, actor=person.address, reason=reason, zone=self.zone
            )
            if self.notifier is not None:
                self.notifier.status_changed(session, doc, before, target, reason)
            return "status"

        return await self._act(request, person, change)

    # ------------------------------------------------------------------ paper documents

    async def new_form(self, request: web.Request) -> web.Response:
        person = await self._require(request, scope.may_manage)
        return self._render(
            "new.html.j2",
            person,
            title="Vào sổ văn bản giấy hoặc bản quét",
            urgencies=[(u.value, u.label) for u in Urgency],
            error="",
            values={},
        )

    async def new_document(self, request: web.Request) -> web.StreamResponse:
        person = await self._require(request, scope.may_manage)
        form: dict[str, str] = {}
        upload: tuple[str, str, bytes] | None = None
        reader = await request.multipart()
        total = 0
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue  # a nested multipart has no place in this form
            chunks: list[bytes] = []
            while chunk := await part.read_chunk():
                total += len(chunk)
                if total > MAX_UPLOAD:
                    raise web.HTTPRequestEntityTooLarge(MAX_UPLOAD, total)
                chunks.append(chunk)
            data = b"".join(chunks)
            if part.name == "file" and part.filename:
                ctype = part.headers.get("Content-Type", "application/octet-stream")
                upload = (part.filename, ctype, data)
            elif part.name and len(form) < 20:
                form[part.name] = data.decode("utf-8", "replace")
        if not csrf_ok(person, form.get("csrf", "")):
            raise web.HTTPForbidden(text="Phiên làm việc không hợp lệ (thiếu hoặc sai mã CSRF).")
        try:
            document_input = self._paper_input(form, upload, person)
        except FormError as exc:
            return self._render(
                "new.html.j2",
                person,
                status=400,
                title="Vào sổ văn bản giấy hoặc bản quét",
                urgencies=[(u.value, u.label) for u in Urgency],
                error=str(exc),
                values=form,
            )

        def run() -> int:
            with self.sessions() as session:
                register, _ = register_for_recipient(session, person.address)
                result = register_document(
                    session, register, document_input, blobs=self.blobs, actor=person.address
                )
                doc = session.get(RegisterDocument, result.document_id)
                assert doc is not None
                if doc.incoming_number is None:
                    workflow.set_status(
                        session,
                        doc,
                        DocumentStatus.REGISTERED,
                        actor=person.address,
                        reason="Văn thư vào sổ văn bản giấy (bản quét)",
                        zone=self.zone,
                    )
                search.index_document(session, doc)
                session.commit()
                return doc.id

        doc_id = await asyncio.to_thread(run)
        raise web.HTTPSeeOther(f"/w/incoming/{doc_id}?" + urlencode({"done": "registered"}))

    def _paper_input(
        self, form: dict[str, str], upload: tuple[str, str, bytes] | None, person: Person
    ) -> DocumentInput:
        values = {
            k: _field(form, k, multiline=k == "abstract")
            for k in (
                "agency_name",
                "number_notation",
                "doc_type",
                "abstract",
                "signer",
                "note",
            )
        }
        issued = _parse_day(_field(form, "issued_date", 20), "Ngày văn bản")
        deadline = _parse_day(_field(form, "deadline", 20), "Hạn xử lý")
        try:
            urgency = Urgency(_field(form, "urgency", 32) or "normal")
        except ValueError:
            raise FormError("Độ khẩn không hợp lệ.") from None
        if not values["abstract"]:
            raise FormError("Hãy nhập trích yếu nội dung.")
        if not values["agency_name"]:
            raise FormError("Hãy nhập cơ quan ban hành (tác giả).")
        attachments: tuple[AttachmentInput, ...] = ()
        if upload is not None:
            filename, ctype, data = upload
            filename = unicodedata.normalize("NFC", Path(filename.replace("\\", "/")).name)[:255]
            attachments = (
                AttachmentInput(
                    filename=filename or "ban-quet",
                    content_type=ctype[:255],
                    sha256=hashlib.sha256(data).hexdigest(),
                    size=len(data),
                    role="main",
                    data=data,
                ),
            )
        return DocumentInput(
            received_at=utcnow(),
            sender=person.address,
            signature_outcome=DocumentOutcome.REFERENCE_ONLY,
            signature_reason="paper",
            recipient=person.address,
            subject=values["abstract"],
            agency_name=values["agency_name"],
            number_notation=values["number_notation"],
            issued_date=issued,
            doc_type=values["doc_type"],
            abstract=values["abstract"],
            urgency=urgency,
            signer=values["signer"],
            deadline=deadline,
            attachments=attachments,
            note=values["note"] or "Văn bản giấy",
        )

    # ------------------------------------------------------------------ exports

    async def export(self, request: web.Request) -> web.StreamResponse:
        """The register for a period (CSV, HTML, PDF): the clerk's (``scope.may_manage``)."""
        person = await self._require(request, scope.may_manage)
        fmt = request.query.get("format", "csv")
        if fmt not in ("csv", "html", "pdf"):
            raise web.HTTPBadRequest(text="format: csv, html hoặc pdf")
        try:
            since = _parse_day(request.query.get("since", "")[:20], "Từ ngày")
            until = _parse_day(request.query.get("until", "")[:20], "Đến ngày")
        except FormError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None

        def load() -> tuple[list[export.RegisterRow], export.RegisterTitle]:
            with self.sessions() as session:
                flt = BrowseFilter(since=since, until=until)
                documents: list[RegisterDocument] = []
                before: int | None = None
                while True:  # the whole period, page by page (bounded by the period)
                    page = browse(
                        session,
                        flt,
                        scope.document_scope(person),
                        before=before,
                        page_size=1000,
                        zone=self.zone,
                    )
                    documents.extend(d for d in page.documents if d.incoming_number)
                    if page.next_before is None or len(documents) > 200_000:
                        break
                    before = page.next_before
                documents.sort(key=lambda d: (d.year, d.incoming_number or 0))
                register, _ = register_for_recipient(session, person.address)
                title = export.RegisterTitle.make(
                    register.name.removeprefix(f"{INCOMING_NAME} - "),
                    INCOMING_NAME,
                    since,
                    until,
                    self.zone,
                )
                return export.rows_of(documents, self.zone), title

        rows, title = await asyncio.to_thread(load)
        stamp = local_today(self.zone).isoformat()
        if fmt == "csv":
            body, ctype = export.to_csv(rows), "text/csv; charset=utf-8"
        elif fmt == "html":
            html = export.render_html(rows, title, self.templates.parent)
            body, ctype = html.encode(), "application/octet-stream"
        else:
            body = await asyncio.to_thread(export.render_pdf, rows, title)
            ctype = "application/pdf"
        name = f"so-van-ban-den-{stamp}.{fmt}"
        return web.Response(
            body=body,
            headers={
                "Content-Type": ctype,
                "Content-Disposition": f'attachment; filename="{name}"',
                "Content-Security-Policy": "default-src 'none'; sandbox",
            },
        )

    # ------------------------------------------------------------------ dashboards

    async def dashboard(self, request: web.Request) -> web.Response:
        person = await self._require(request, lambda p: p.role in (scope.CLERK, scope.LEADER))
        today = local_today(self.zone)

        def load() -> dict[str, Any]:
            with self.sessions() as session:
                everything = scope.document_scope(person)
                overdue = browse(
                    session,
                    BrowseFilter(overdue=True),
                    everything,
                    page_size=20,
                    zone=self.zone,
                    today=today,
                )
                due = browse(
                    session,
                    BrowseFilter(due_within_days=7),
                    everything,
                    page_size=20,
                    zone=self.zone,
                    today=today,
                )
                return {
                    "overdue": [_row(d, self.zone, today) for d in overdue.documents],
                    "due": [_row(d, self.zone, today) for d in due.documents],
                    **self._charts(session, person, today),
                    **self._compliance(session, person, today),
                }

        values = await asyncio.to_thread(load)
        return self._render("dashboard.html.j2", person, title="Tổng quan", **values)

    def _charts(self, session: Session, person: Person, today: date) -> dict[str, Any]:
        """Counts and medians of the person's own register (``scope.document_scope``)."""
        doc = RegisterDocument
        ours = scope.document_scope(person)
        start = date(today.year - (1 if today.month < 12 else 0), today.month % 12 + 1, 1)
        since = datetime.combine(start, datetime.min.time(), self.zone)
        if session.get_bind().dialect.name == "sqlite":
            month = func.strftime("%Y-%m", doc.received_at, "+7 hours")
        else:
            month = func.to_char(func.timezone("Asia/Ho_Chi_Minh", doc.received_at), "YYYY-MM")
        per_month: dict[str, int] = dict(
            session.execute(
                select(month, func.count()).where(ours, doc.received_at >= since).group_by(month)
            ).all()
        )
        months: list[Bar] = []
        cursor = start
        for _ in range(12):
            key = f"{cursor.year:04d}-{cursor.month:02d}"
            months.append(
                Bar(
                    f"{cursor.month:02d}/{cursor.year % 100:02d}",
                    per_month.get(key, 0),
                    f"Tháng {cursor.month}/{cursor.year}: {per_month.get(key, 0)} văn bản",
                )
            )
            cursor = date(cursor.year + cursor.month // 12, cursor.month % 12 + 1, 1)
        year = today.year
        author = func.coalesce(func.nullif(doc.agency_name, literal_column("''")), doc.sender)
        agencies = session.execute(
            select(author.label("author"), func.count())
            .where(ours, doc.year == year)
            .group_by(literal_column("author"))
            .order_by(func.count().desc())
            .limit(10)
        ).all()
        mix = session.execute(
            select(doc.status, func.count()).where(ours, doc.year == year).group_by(doc.status)
        ).all()
        # Medians over the most recent entries of the year (a bounded sample).
        recent = session.execute(
            select(doc.received_at, doc.registered_at)
            .where(ours, doc.year == year, doc.registered_at.is_not(None))
            .order_by(doc.id.desc())
            .limit(5000)
        ).all()
        to_register = [(r - a).total_seconds() / 3600 for a, r in recent if r and a]
        done_rows = session.execute(
            select(doc.received_at, DocumentHistory.at)
            .join(DocumentHistory, DocumentHistory.document_id == doc.id)
            .where(ours, doc.year == year, DocumentHistory.to_status == DocumentStatus.DONE.value)
            .order_by(DocumentHistory.id.desc())
            .limit(5000)
        ).all()
        to_done = [(d - a).total_seconds() / 86400 for a, d in done_rows]
        return {
            "chart_months": columns(months, title="Văn bản đến theo tháng"),
            "chart_agencies": ranking(
                [Bar(str(name), count) for name, count in agencies],
                title=f"Văn bản đến năm {year} theo cơ quan gửi",
            ),
            "chart_status": ranking(
                [Bar(DocumentStatus(s).label, c) for s, c in sorted(mix, key=lambda x: -x[1])],
                title=f"Trạng thái văn bản đến năm {year}",
            ),
            "median_register_hours": (
                f"{statistics.median(to_register):.1f}".replace(".", ",") if to_register else ""
            ),
            "median_done_days": (
                f"{statistics.median(to_done):.1f}".replace(".", ",") if to_done else ""
            ),
            "year": year,
        }

    def _compliance(self, session: Session, person: Person, today: date) -> dict[str, Any]:
        """Mailbox-check compliance of the last 12 weeks, as in the checks report: the
        tracked mailboxes of the person's agency together, and each one's summary;
        recomputed every 5 minutes."""
        if self.checking is None:
            return {"heat": None}
        now = time.monotonic()
        key = person.agency_id if person.agency_id is not None else person.address
        cached = self._heat.get(key)
        if cached is not None and now - cached[0] < HEAT_SECONDS:
            return cached[1]
        ours = {
            a.lower()
            for a in session.scalars(select(Mailbox.address).where(scope.agency_mailboxes(person)))
        }
        boxes = [b for b in tracked_mailboxes(session, self.checking) if b in ours]
        start = today - timedelta(days=83)
        days = evaluate(session, self.checking, start, today, mailboxes=boxes)
        values = report_values(days, self.checking, start, today, generated_at=utcnow())
        found = {
            "heat": values["overall"] if days else None,
            "heat_mailboxes": [
                {
                    k: m[k]
                    for k in ("mailbox", "working_days", "compliant", "windows_missed", "rate")
                }
                for m in values["mailboxes"]
            ],
        }
        self._heat[key] = (now, found)
        return found

    async def admin(self, request: web.Request) -> web.Response:
        """The mailboxes of the person's agency and their last check; the outbound queue
        and recent job runs (the whole server's) for the server's operators only."""
        person = await self._require(request, scope.sees_admin)
        operator = scope.sees_server(person)
        ours = scope.agency_mailboxes(person)

        def load() -> dict[str, Any]:
            with self.sessions() as session:
                boxes = session.scalars(
                    select(Mailbox)
                    .where(Mailbox.removed.is_(False), ours)
                    .order_by(Mailbox.address)
                ).all()
                last_checks: dict[str, datetime] = {
                    str(box): at
                    for box, at in session.execute(
                        select(MailboxCheck.mailbox, func.max(MailboxCheck.at))
                        .where(MailboxCheck.mailbox.in_(select(Mailbox.address).where(ours)))
                        .group_by(MailboxCheck.mailbox)
                    ).all()
                }
                values: dict[str, Any] = {
                    **self._compliance(session, person, local_today(self.zone)),
                    "operator": operator,
                    "queue": [],
                    "runs": [],
                    "mailboxes": [
                        {
                            "address": m.address,
                            "name": m.full_name,
                            "role": scope.ROLE_LABELS.get(m.role, m.role),
                            "unit": m.unit,
                            "enabled": m.enabled,
                            "last_check": vn_datetime(last_checks.get(m.address), self.zone),
                        }
                        for m in boxes
                    ],
                }
                if operator:
                    runs = session.execute(
                        select(JobRun.job, JobRun.outcome, JobRun.started_at, JobRun.summary)
                        .order_by(JobRun.id.desc())
                        .limit(20)
                    ).all()
                    values["queue"] = sorted(outbound_queue.count_by_state(session).items())
                    values["runs"] = [
                        {
                            "job": r[0],
                            "outcome": r[1],
                            "at": vn_datetime(r[2], self.zone),
                            "summary": r[3],
                        }
                        for r in runs
                    ]
                return values

        values = await asyncio.to_thread(load)
        return self._render("admin.html.j2", person, title="Quản trị", **values)
