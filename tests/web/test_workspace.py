"""The workspace through a running mailsvc (SMTP, Dovecot, the HTTPS app), with httpx as
the browser: sign-in and lock-out, roles and scope (ids typed into the URL), search
without diacritics, the document page, assignment with the assignee's copy over IMAP,
progress reported back to the sender agency, paper documents, exports, CSRF."""

from __future__ import annotations

import asyncio
import email
from datetime import timedelta
from email import policy

from sqlalchemy import select, update

from mailsvc.audit import verify as verify_audit
from mailsvc.db.base import utcnow
from mailsvc.db.models import AuditEntry, AuthFailure, Mailbox
from mailsvc.outbound.models import VOID_COPY, OutboundMessage
from mailsvc.register import workflow
from mailsvc.register.models import RegisterDocument
from mailsvc.web.workspace.models import WebSession
from tests.e2e.conftest import DOMAIN, PASSWORD, RunningServer, server, service_home
from tests.e2e.test_smtp_core import fetch_inbox
from tests.web.workspace_setup import (
    ADMIN,
    CLERK,
    LEADER,
    OFFICIAL,
    OTHER_OFFICIAL,
    SENDER,
    client,
    form_token,
    seed_workspace,
    sign_in,
)

__all__ = ["server", "service_home"]  # fixtures used here


async def test_sign_in_sets_a_strict_session_cookie_and_sign_out_ends_it(
    server: RunningServer,
) -> None:
    await seed_workspace(server)
    async with client(server) as http:
        first = await http.get("/w/incoming")
        assert first.status_code == 303
        location = first.headers["location"]
        assert location.startswith("/w/login?next=") and location.endswith("incoming")

        page = await http.get("/w/login")
        token = form_token(page.text)
        wrong = await http.post(
            "/w/login", data={"csrf": token, "address": CLERK, "password": "sai-mat-khau"}
        )
        assert wrong.status_code == 403
        assert "Sai địa chỉ thư hoặc mật khẩu" in wrong.text
        unknown = await http.post(
            "/w/login", data={"csrf": token, "address": f"nobody@{DOMAIN}", "password": "x"}
        )
        assert unknown.status_code == 403 and "Sai địa chỉ thư hoặc mật khẩu" in unknown.text

        ok = await http.post(
            "/w/login",
            data={"csrf": token, "address": CLERK, "password": PASSWORD, "next": "/w/incoming"},
        )
        assert ok.status_code == 303 and ok.headers["location"] == "/w/incoming"
        cookie = ok.headers["set-cookie"]
        assert cookie.startswith("__Host-mailsvc-ws=")
        for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
            assert attribute in cookie
        assert "Domain=" not in cookie

        listing = await http.get("/w/incoming")
        assert listing.status_code == 200
        assert "35/2026/QĐ-UBND" in listing.text or "chuyển đổi số" in listing.text
        assert "default-src 'none'" in listing.headers["content-security-policy"]

        csrf = form_token(listing.text)
        out = await http.post("/w/logout", data={"csrf": csrf})
        assert out.status_code == 303
        again = await http.get("/w/incoming")
        assert again.status_code == 303  # back to the sign-in page

    with server.sessions() as session:
        rows = session.scalars(select(WebSession)).all()
        assert len(rows) == 1 and rows[0].ended_at is not None
        actions = [e.action for e in session.scalars(select(AuditEntry))]
        assert "workspace.sign-in" in actions and "workspace.sign-out" in actions
        assert "workspace.sign-in-refused" in actions
        assert verify_audit(session) == []


async def test_sign_out_deletes_the_session_cookie_with_the_attributes_it_was_set_with(
    server: RunningServer,
) -> None:
    """A browser ignores a Set-Cookie for a ``__Host-`` name without Secure: the deletion
    carries Secure, Path=/, HttpOnly and SameSite=Strict as the cookie did, and no Domain."""
    await seed_workspace(server)
    async with client(server) as http:
        csrf = await sign_in(http, CLERK)
        out = await http.post("/w/logout", data={"csrf": csrf})
        assert out.status_code == 303
        [deletion] = [
            c for c in out.headers.get_list("set-cookie") if c.startswith("__Host-mailsvc-ws=")
        ]
        attributes = [part.strip().lower() for part in deletion.split(";")]
        assert attributes[0] in ('__host-mailsvc-ws=""', "__host-mailsvc-ws=")
        for attribute in ("secure", "httponly", "samesite=strict", "path=/", "max-age=0"):
            assert attribute in attributes, (attribute, deletion)
        assert not any(part.startswith("domain=") for part in attributes)


async def test_the_login_lock_out_is_shared_and_one_time_passwords_go_to_the_password_page(
    server: RunningServer,
) -> None:
    await seed_workspace(server)
    threshold = server.app.settings.smtp.auth_lockout_threshold
    async with client(server) as http:
        token = form_token((await http.get("/w/login")).text)
        answers = [
            await http.post(
                "/w/login", data={"csrf": token, "address": OFFICIAL, "password": f"wrong{i}"}
            )
            for i in range(threshold)
        ]
        assert [a.status_code for a in answers[:-1]] == [403] * (threshold - 1)
        assert answers[-1].status_code == 429 and "Retry-After" in answers[-1].headers
        # Locked: even the right password is refused until the lock ends.
        right = await http.post(
            "/w/login", data={"csrf": token, "address": OFFICIAL, "password": PASSWORD}
        )
        assert right.status_code == 429
    with server.sessions() as session:
        row = session.scalars(
            select(AuthFailure).where(
                AuthFailure.account == OFFICIAL, AuthFailure.client_ip == "127.0.0.1"
            )
        ).one()
        assert row is not None and row.locked_until is not None  # the same rows as SMTP AUTH
        session.execute(update(Mailbox).where(Mailbox.address == LEADER).values(must_change=True))
        session.commit()
    async with client(server) as http:
        token = form_token((await http.get("/w/login")).text)
        answer = await http.post(
            "/w/login", data={"csrf": token, "address": LEADER, "password": PASSWORD}
        )
        assert answer.status_code == 403
        assert "mật khẩu dùng một lần" in answer.text
        assert "/password?address=lanhdao%40" in answer.text
        # A sign-in form posted without its token is refused.
        bare = await http.post("/w/login", data={"address": CLERK, "password": PASSWORD})
        assert bare.status_code == 403


async def test_idle_sessions_end(server: RunningServer) -> None:
    await seed_workspace(server)
    async with client(server) as http:
        await sign_in(http, CLERK)
        with server.sessions() as session:
            session.execute(update(WebSession).values(last_seen_at=utcnow() - timedelta(hours=1)))
            session.commit()
        answer = await http.get("/w/incoming")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/w/login")


async def test_clerk_searches_without_diacritics_and_reads_the_signature_report(
    server: RunningServer,
) -> None:
    seeded = await seed_workspace(server)
    async with client(server) as http:
        await sign_in(http, CLERK)
        found = await http.get("/w/incoming", params={"q": "chuyen doi so"})
        assert f'href="/w/incoming/{seeded.document_id}"' in found.text
        # Words only the PDF's own text has: the main document's text is indexed too.
        in_text = await http.get("/w/incoming", params={"q": "2026 ubnd"})
        assert f'href="/w/incoming/{seeded.document_id}"' in in_text.text
        by_agency = await http.get("/w/incoming", params={"q": "THONG TIN truyen"})
        assert f'href="/w/incoming/{seeded.document_id}"' in by_agency.text
        missing = await http.get("/w/incoming", params={"q": "ngan sach giao duc"})
        assert f'href="/w/incoming/{seeded.document_id}"' not in missing.text
        # Filters run in SQL; odd values are dropped with a note, not a crash.
        odd = await http.get(
            "/w/incoming", params={"year": "abc", "status": "nope", "since": "31/31/2026"}
        )
        assert odd.status_code == 200 and "bỏ qua" in odd.text.lower()

        page = await http.get(f"/w/incoming/{seeded.document_id}")
        assert page.status_code == 200
        text = page.text
        for expected in (
            "Số và ký hiệu văn bản",
            "Họ tên người ký",
            "Thời hạn xử lý",
            "Chữ ký số cơ quan, tổ chức (thay con dấu)",
            "Chữ ký số cá nhân (thay chữ ký tay)",
            "TOTAL_PASSED",
            "Hợp lệ (có giá trị pháp lý)",
            "Lịch sử",
        ):
            assert expected in text, expected
        assert f"/w/incoming/{seeded.document_id}/preview/1.png" in text

        preview = await http.get(f"/w/incoming/{seeded.document_id}/preview/1.png")
        assert preview.status_code == 200
        assert preview.content.startswith(b"\x89PNG\r\n\x1a\n")
        cached = list((server.home / "cache" / "previews").glob("*.png"))
        assert len(cached) == 1

        link = text.split(f'href="/w/incoming/{seeded.document_id}/files/', 1)[1].split('"')[0]
        download = await http.get(f"/w/incoming/{seeded.document_id}/files/{link}")
        assert download.status_code == 200 and download.content.startswith(b"%PDF")
        disposition = download.headers["content-disposition"]
        assert disposition.startswith("attachment;")
        assert "filename*=UTF-8''35-Q%C4%90-UBND.pdf" in disposition
        assert download.headers["content-type"] == "application/pdf"


async def test_assignment_mails_the_assignee_and_progress_reaches_the_sender(
    server: RunningServer,
) -> None:
    seeded = await seed_workspace(server)
    doc = f"/w/incoming/{seeded.document_id}"
    async with client(server) as http:
        await sign_in(http, CLERK)
        csrf = form_token((await http.get(doc)).text)
        no_token = await http.post(f"{doc}/assign", data={"assignee": OFFICIAL})
        assert no_token.status_code == 403
        unknown = await http.post(
            f"{doc}/assign", data={"csrf": csrf, "assignee": "phong-khong-co"}
        )
        assert unknown.status_code == 400 and "Không có hộp thư nào" in unknown.text
        answer = await http.post(
            f"{doc}/assign",
            data={
                "csrf": csrf,
                "assignee": OFFICIAL,
                "deadline": "2099-12-31",
                "instructions": "Đề nghị đồng chí An chủ trì, báo cáo trước ngày 20.",
            },
        )
        assert answer.status_code == 303
        shown = await http.get(answer.headers["location"])
        assert "Đã chuyển xử lý" in shown.text

    with server.sessions() as session:
        document = session.get(RegisterDocument, seeded.document_id)
        assert document is not None
        assert document.status == "assigned" and document.assigned_to == OFFICIAL
        assert str(document.deadline) == "2099-12-31"
        kinds = {(row.kind, row.recipient) for row in session.scalars(select(OutboundMessage))}
        assert ("assignment", OFFICIAL) in kinds
        assert any(kind.startswith("notice-") and to == SENDER for kind, to in kinds)
        audit = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "register.assign")
        ).one()
        assert audit.actor == CLERK

    # The assignee receives a clean copy with the instructions and the document itself.
    def copy_arrived() -> bool:
        return len(fetch_inbox(server, OFFICIAL)) == 1

    await wait_for_thread(copy_arrived)
    [raw] = await asyncio.to_thread(fetch_inbox, server, OFFICIAL)
    copy = email.message_from_bytes(raw, policy=policy.default)
    assert str(copy["From"]).endswith(f"<{CLERK}>")
    assert str(copy["Subject"]).startswith("Chuyển xử lý:")
    body = copy.get_body(preferencelist=("plain",))
    assert body is not None
    assert "Đề nghị đồng chí An chủ trì" in body.get_content()
    assert "Hạn xử lý: 31/12/2099" in body.get_content()
    [pdf] = [p for p in copy.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert pdf.get_filename() == "35-QĐ-UBND.pdf"

    # The official sees it under "Việc của tôi" and reports progress, then done.
    async with client(server) as http:
        await sign_in(http, OFFICIAL)
        mine = await http.get("/w/mine")
        assert f'href="{doc}"' in mine.text
        csrf = form_token((await http.get(doc)).text)
        refused = await http.post(f"{doc}/status", data={"csrf": csrf, "status": "refused"})
        assert refused.status_code == 400  # an official cannot refuse a document
        for status in ("in_progress", "done"):
            answer = await http.post(
                f"{doc}/status", data={"csrf": csrf, "status": status, "reason": "Đã xong"}
            )
            assert answer.status_code == 303, answer.text
    with server.sessions() as session:
        document = session.get(RegisterDocument, seeded.document_id)
        assert document is not None and document.status == "done"
        notices = [
            row.kind
            for row in session.scalars(
                select(OutboundMessage).where(OutboundMessage.recipient == SENDER)
            )
        ]
        assert {"notice-04", "notice-05", "notice-06"} <= set(notices), notices


async def wait_for_thread(predicate: object) -> None:
    async def check() -> bool:
        return bool(await asyncio.to_thread(predicate))  # type: ignore[arg-type]

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while not await check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_nobody_reaches_a_document_outside_their_scope(server: RunningServer) -> None:
    seeded = await seed_workspace(server)
    doc = f"/w/incoming/{seeded.document_id}"
    async with client(server) as http:
        await sign_in(http, CLERK)
        csrf = form_token((await http.get(doc)).text)
        await http.post(f"{doc}/assign", data={"csrf": csrf, "assignee": "vp"})  # the unit
    # An official of unit "vp" sees it; one of unit "kt" gets 404 everywhere.
    async with client(server) as http:
        await sign_in(http, OFFICIAL)
        assert (await http.get(doc)).status_code == 200
    async with client(server) as http:
        csrf = await sign_in(http, OTHER_OFFICIAL)
        for path in (doc, f"{doc}/files/1", f"{doc}/preview/1.png"):
            assert (await http.get(path)).status_code == 404, path
        answer = await http.post(f"{doc}/status", data={"csrf": csrf, "status": "done"})
        assert answer.status_code == 404
        listing = await http.get("/w/incoming", params={"q": "chuyen doi so"})
        assert f'href="{doc}"' not in listing.text
        assert (await http.get("/w/dashboard")).status_code == 403
        assert (await http.get("/w/incoming/new")).status_code == 403
    # The administrator has the overview, not the register.
    async with client(server) as http:
        await sign_in(http, ADMIN)
        assert (await http.get(doc)).status_code == 403
        overview = await http.get("/w/admin")
        assert overview.status_code == 200 and CLERK in overview.text
        assert '<svg class="heat"' in overview.text
    # A clerk of another agency does not see this agency's register.
    with server.app.sessions.begin() as session:
        from mailsvc.db.models import Agency

        other = Agency(code="000.00.99.H56", name="Sở Y tế", domains=[], local=True)
        session.add(other)
        session.flush()
        session.execute(update(Mailbox).where(Mailbox.address == LEADER).values(agency_id=other.id))
    async with client(server) as http:
        await sign_in(http, LEADER)
        assert (await http.get(doc)).status_code == 404


async def test_leader_dashboard_and_clerk_paper_document_and_export(
    server: RunningServer,
) -> None:
    await seed_workspace(server)
    async with client(server) as http:
        csrf = await sign_in(http, CLERK)
        form = await http.get("/w/incoming/new")
        assert form.status_code == 200
        files = {"file": ("Công văn 12.pdf", b"%PDF-1.4 scanned", "application/pdf")}
        data = {
            "csrf": csrf,
            "agency_name": "UBND huyện Đắk Mil",
            "number_notation": "12/UBND-VP",
            "issued_date": "2026-12-01",
            "doc_type": "Công văn",
            "abstract": "V/v báo cáo tình hình thực hiện nhiệm vụ năm 2026",
            "urgency": "urgent",
        }
        answer = await http.post("/w/incoming/new", data=data, files=files)
        assert answer.status_code == 303, answer.text
        shown = await http.get(answer.headers["location"])
        assert "Văn bản đến số 2/" in shown.text
        bad = await http.post("/w/incoming/new", data={**data, "abstract": ""}, files=files)
        assert bad.status_code == 400 and "trích yếu" in bad.text
        no_csrf = await http.post(
            "/w/incoming/new", data={k: v for k, v in data.items() if k != "csrf"}, files=files
        )
        assert no_csrf.status_code == 403

        found = await http.get("/w/incoming", params={"q": "dak mil bao cao"})
        assert "12/UBND-VP" in found.text
        by_number = await http.get("/w/incoming", params={"q": "12/UBND"})
        assert "12/UBND-VP" in by_number.text
        csv = await http.get("/w/incoming/export", params={"format": "csv"})
        assert csv.status_code == 200
        assert csv.headers["content-disposition"].startswith("attachment;")
        assert "12/UBND-VP" in csv.content.decode("utf-8-sig")
    async with client(server) as http:
        await sign_in(http, LEADER)
        board = await http.get("/w/dashboard")
        assert board.status_code == 200
        assert board.text.count("<svg") >= 3
        assert "Văn bản đến theo tháng" in board.text
        # The live mailbox-check heat map covers the agency's clerk mailbox.
        assert '<svg class="heat"' in board.text
        assert f'<td data-label="Hộp thư">{CLERK}</td>' in board.text


async def test_only_the_clerk_exports_the_register(server: RunningServer) -> None:
    """Exports are the clerk's (``scope.may_manage``): a leader or an official gets 403
    and no export links on the register page."""
    await seed_workspace(server)
    for address in (LEADER, OFFICIAL):
        async with client(server) as http:
            await sign_in(http, address)
            listing = await http.get("/w/incoming")
            assert listing.status_code == 200 and "/w/incoming/export" not in listing.text
            for fmt in ("csv", "html", "pdf"):
                answer = await http.get("/w/incoming/export", params={"format": fmt})
                assert answer.status_code == 403, (address, fmt)
                assert "chuyển đổi số" not in answer.text
    async with client(server) as http:
        await sign_in(http, CLERK)
        listing = await http.get("/w/incoming")
        assert "/w/incoming/export?format=csv" in listing.text
        csv = await http.get("/w/incoming/export", params={"format": "csv"})
        assert csv.status_code == 200 and "chuyển đổi số" in csv.content.decode("utf-8-sig")


async def test_a_document_is_assigned_only_within_its_agency(server: RunningServer) -> None:
    """Another agency served here, and an administrator, are no assignees: not offered on
    the page, refused when posted (the assignee's copy carries the document's files)."""
    seeded = await seed_workspace(server)
    stranger = "annv@khac.example.vn"  # an official of another agency on this server
    with server.app.sessions.begin() as session:
        session.add(Mailbox(address=stranger, role="official", unit="vp", full_name="Khác"))
    async with client(server) as http:
        csrf = await sign_in(http, CLERK)
        doc = f"/w/incoming/{seeded.document_id}"
        page = await http.get(doc)
        assert OFFICIAL in page.text
        assert stranger not in page.text and ADMIN not in page.text
        for assignee in (stranger, stranger.upper(), ADMIN, f"  {ADMIN.upper()} "):
            answer = await http.post(f"{doc}/assign", data={"csrf": csrf, "assignee": assignee})
            assert answer.status_code == 400 and "Không có hộp thư nào" in answer.text
        # The unit "vp" is the agency's unit only: its copy goes to our official alone.
        assert (
            await http.post(f"{doc}/assign", data={"csrf": csrf, "assignee": "vp"})
        ).status_code == 303
    with server.app.sessions() as session:
        to = session.scalars(
            select(OutboundMessage.recipient).where(OutboundMessage.kind == "assignment")
        ).all()
    assert list(to) == [OFFICIAL]


async def test_hostile_input_gets_a_precise_answer(server: RunningServer) -> None:
    seeded = await seed_workspace(server)
    async with client(server) as http:
        csrf = await sign_in(http, CLERK)
        doc = f"/w/incoming/{seeded.document_id}"
        long = await http.post(
            f"{doc}/assign", data={"csrf": csrf, "assignee": OFFICIAL, "instructions": "x" * 5000}
        )
        assert long.status_code == 400 and "quá dài" in long.text
        control = await http.post(
            f"{doc}/assign", data={"csrf": csrf, "assignee": f"{OFFICIAL}\r\nBcc: x@y"}
        )
        assert control.status_code == 400
        # A reference-only entry has no number yet: it is registered before assignment.
        with server.app.sessions.begin() as session:
            session.execute(
                update(RegisterDocument)
                .where(RegisterDocument.id == seeded.document_id)
                .values(incoming_number=None, status="arrived")
            )
        unnumbered = await http.post(f"{doc}/assign", data={"csrf": csrf, "assignee": OFFICIAL})
        assert unnumbered.status_code == 400 and "chưa vào sổ" in unnumbered.text
        date = await http.post(
            f"{doc}/assign", data={"csrf": csrf, "assignee": OFFICIAL, "deadline": "hôm qua"}
        )
        assert date.status_code == 400 and "dd/mm/yyyy" in date.text
        search = await http.get("/w/incoming", params={"q": '"* OR <script>' * 20})
        assert search.status_code == 200 and "<script>" not in search.text
        assert (await http.get("/w/incoming/999999")).status_code == 404
    # Open redirects are not followed after sign-in.
    async with client(server) as anon:
        page = await anon.get("/w/login")
        answer = await anon.post(
            "/w/login",
            data={
                "csrf": form_token(page.text),
                "address": CLERK,
                "password": PASSWORD,
                "next": "//evil.example/w/",
            },
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/w/"


async def test_clerk_confirms_a_recall_from_the_document_page(server: RunningServer) -> None:
    seeded = await seed_workspace(server)
    with server.app.sessions.begin() as session:
        document = session.get(RegisterDocument, seeded.document_id)
        assert document is not None
        workflow.request_recall(session, document, actor=SENDER, reason="Ban hành nhầm")
    doc = f"/w/incoming/{seeded.document_id}"
    async with client(server) as http:
        await sign_in(http, CLERK)
        page = await http.get(doc)
        assert "Yêu cầu thu hồi" in page.text and 'value="recalled"' in page.text
        no_reason = await http.post(
            f"{doc}/status", data={"csrf": form_token(page.text), "status": "recalled"}
        )
        assert no_reason.status_code == 400 and "Hãy ghi lý do" in no_reason.text
        answer = await http.post(
            f"{doc}/status",
            data={"csrf": form_token(page.text), "status": "recalled", "reason": "Đã hủy bản nhận"},
        )
        assert answer.status_code == 303
    with server.sessions() as session:
        document = session.get(RegisterDocument, seeded.document_id)
        assert document is not None and document.status == "recalled"
        kinds = {row.kind for row in session.scalars(select(OutboundMessage))}
        assert "notice-15" in kinds and VOID_COPY in kinds
