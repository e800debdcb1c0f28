"""A running mailsvc with people in every role and one signed document in the register,
for the workspace tests (HTTP and browser)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import httpx
from sqlalchemy import select

from mailsvc.db.models import Agency, Mailbox
from mailsvc.passwords import hash_password
from mailsvc.register.models import RegisterDocument
from tests.e2e.conftest import DOMAIN, PASSWORD, RunningServer
from tests.e2e.test_signed_documents_e2e import trust_sample_agency
from tests.e2e.test_smtp_core import make_message, send
from tests.signatures.pki import (
    AGENCY_DOMAIN,
    make_pdf,
    session_pki,
    signed_pdf,
)

CLERK = f"vanthu@{DOMAIN}"
LEADER = f"lanhdao@{DOMAIN}"
OFFICIAL = f"annv.vp@{DOMAIN}"  # unit "vp"
OTHER_OFFICIAL = f"binhtt.kt@{DOMAIN}"  # unit "kt"
ADMIN = f"quantri@{DOMAIN}"
SENDER = f"vanthu@{AGENCY_DOMAIN}"
# A second agency served by the same server (its own mail domain and register).
OTHER_DOMAIN = "stc.example.vn"
OTHER_CLERK = f"vanthu@{OTHER_DOMAIN}"
OTHER_LEADER = f"lanhdao@{OTHER_DOMAIN}"
OTHER_ADMIN = f"quantri@{OTHER_DOMAIN}"
SUBJECT = "HỎA TỐC - V/v triển khai kế hoạch chuyển đổi số"


@dataclass(frozen=True)
class Seeded:
    document_id: int


def add_people(server: RunningServer) -> None:
    people = [
        (CLERK, "clerk", "", "Trần Thị Văn Thư"),
        (LEADER, "leader", "", "Lê Văn Lãnh Đạo"),
        (OFFICIAL, "official", "vp", "Nguyễn Văn An"),
        (OTHER_OFFICIAL, "official", "kt", "Trần Thị Bình"),
        (ADMIN, "admin", "", "Phạm Quản Trị"),
    ]
    hashed = hash_password(PASSWORD, server.app.settings.password)
    with server.app.sessions.begin() as session:
        for address, role, unit, name in people:
            session.add(
                Mailbox(
                    address=address,
                    role=role,
                    unit=unit,
                    full_name=name,
                    password_hash=hashed,
                    must_change=False,
                )
            )


def add_other_agency(server: RunningServer) -> int:
    """Sở Tài chính, a second local agency on this server, with its clerk, leader and
    administrator (all belonging to it); returns its id."""
    hashed = hash_password(PASSWORD, server.app.settings.password)
    with server.app.sessions.begin() as session:
        agency = Agency(
            code="000.00.32.H56", name="Sở Tài chính", domains=[OTHER_DOMAIN], local=True
        )
        session.add(agency)
        session.flush()
        for address, role, name in (
            (OTHER_CLERK, "clerk", "Vũ Thị Văn Thư"),
            (OTHER_LEADER, "leader", "Đỗ Văn Giám Đốc"),
            (OTHER_ADMIN, "admin", "Hoàng Văn Quản Trị"),
        ):
            session.add(
                Mailbox(
                    address=address,
                    role=role,
                    full_name=name,
                    agency_id=agency.id,
                    password_hash=hashed,
                    must_change=False,
                )
            )
        return agency.id


async def seed_workspace(server: RunningServer) -> Seeded:
    """People, the other agency, and a signed decision sent by SMTP (registered no 1)."""
    add_people(server)
    trust_sample_agency(server)
    pki = session_pki()
    pdf = signed_pdf(make_pdf("Quyết định số 35/2026/QĐ-UBND"), pki.personal, pki.organisation)
    msg = make_message(SENDER, CLERK, subject=SUBJECT)
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="35-QĐ-UBND.pdf")
    assert await asyncio.to_thread(send, server, msg, SENDER, [CLERK]) == {}
    with server.sessions() as session:
        document = session.scalars(select(RegisterDocument)).one()
        assert document.incoming_number == 1
        return Seeded(document.id)


def base_url(server: RunningServer) -> str:
    host, port = server.addr("http")
    return f"https://{host}:{port}"


def client(server: RunningServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base_url(server), verify=False, timeout=30)


def form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def sign_in(http: httpx.AsyncClient, address: str, password: str = PASSWORD) -> str:
    """Sign in; returns the CSRF token of the first page after sign-in."""
    page = await http.get("/w/login")
    answer = await http.post(
        "/w/login",
        data={
            "csrf": form_token(page.text),
            "address": address,
            "password": password,
            "next": "/w/",
        },
    )
    assert answer.status_code == 303, answer.text
    landing = await http.get(answer.headers["location"], follow_redirects=True)
    assert landing.status_code == 200
    return form_token(landing.text)
