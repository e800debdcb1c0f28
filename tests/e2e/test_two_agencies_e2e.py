"""Two agencies, each its own mailsvc (home, Dovecot, database), on loopback: A's official
sends with msmtp, as a mail client would, through A's submission port; A routes to B
along the route pinned in its agency directory over verified STARTTLS; B registers the
document and its receipt comes back into A's outgoing register. B stopped: A queues,
retries and delivers when B is back. An unknown mailbox at B: a Vietnamese bounce."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email.policy import default as default_policy
from io import BytesIO
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.reader import PdfFileReader
from sqlalchemy import select

from mailsvc.app import App
from mailsvc.backup.archive import home_exclusions
from mailsvc.cli import main
from mailsvc.config import load_settings
from mailsvc.db.models import Agency, AuditEntry, Mailbox
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.outbound.dkim import generate_private_key, public_key_value
from mailsvc.outbound.mailer import RECALLED_FOLDER
from mailsvc.outbound.models import OutboundMessage
from mailsvc.outgoing.models import OutgoingDelivery
from mailsvc.passwords import hash_password
from mailsvc.register.models import RegisterDocument
from mailsvc.time import VIETNAM
from tests.e2e.conftest import PASSWORD, RunningServer, build_app, prepare_home, wait_for
from tests.e2e.test_smtp_core import fetch_inbox, make_message
from tests.signatures.pki import (
    AGENCY_CODE,
    AGENCY_DOMAIN,
    AGENCY_NAME,
    OTHER_AGENCY_NAME,
    make_pdf,
    session_pki,
    signed_pdf,
)
from tests.softhsm import Token

A_DOMAIN = AGENCY_DOMAIN
B_DOMAIN = "stc.thunghiem.gov.vn"
B_CODE = "000.00.02.H99"
A_OFFICIAL = f"annv@{A_DOMAIN}"
B_CLERK = f"vanthu@{B_DOMAIN}"

CONFIG = """
[outbound]
tls_ca_file = "{ca}"
first_retry_minutes = 0.003
max_retry_minutes = 0.01
poll_seconds = 0.2
retry_minutes = [0.005]
"""


@dataclass
class Agencies:
    a: RunningServer
    b: RunningServer
    apps: list[App]

    async def stop_b(self) -> None:
        self.apps.remove(self.b.app)
        await self.b.app.stop()

    async def restart_b(self) -> None:
        """B again, on a port of its own (the old one may be taken by now), and A's
        directory told the new route, as an administrator would."""
        app = build_app(self.b.home)
        self.apps.append(app)
        await app.start()
        self.b = RunningServer(app, self.b.home)
        _route(self.a, B_CODE, self.b)


# Each agency listens on a port the system gives it and is told the other's afterwards:
# ports picked free before the services started were sometimes taken meanwhile by another
# test's process (address already in use).
_NO_ROUTE_YET = "127.0.0.1:9"


def _route(server: RunningServer, code: str, peer: RunningServer) -> None:
    host, port = peer.addr("smtp")
    with server.app.sessions.begin() as session:
        agency = session.scalars(select(Agency).where(Agency.code == code)).one()
        agency.route = f"{host}:{port}"
    server.app.directory.refresh()


def _seed(db_url: str, own: tuple[str, str, str], other: tuple[str, str, str, str]) -> None:
    engine = make_engine(db_url)
    with make_sessionmaker(engine).begin() as session:
        code, name, domain = own
        session.add(Agency(code=code, name=name, domains=[domain], local=True))
        code, name, domain, route = other
        session.add(
            Agency(
                code=code,
                name=name,
                domains=[domain],
                allowed_senders=["127.0.0.1"],
                route=route,
            )
        )
    engine.dispose()


def _pin_key(server: RunningServer, code: str, key: str) -> None:
    with server.app.sessions.begin() as session:
        agency = session.scalars(select(Agency).where(Agency.code == code)).one()
        domain = agency.domains[0]
        agency.dkim_keys = {f"mailsvc._domainkey.{domain}": key}
    server.app.directory.refresh()


def _home(base: Path, name: str, db_url: str, domain: str) -> Path:
    home = base / name
    prepare_home(
        home,
        db_url,
        hostname=f"mail.{domain}",
        domain=domain,
        extra=CONFIG.format(ca=base / "peers.pem"),
    )
    pki = session_pki()
    for source, target in ((pki.trust_dir, "trust"), (pki.crl_dir, "crl")):
        (home / target).mkdir(exist_ok=True)
        for item in source.iterdir():
            shutil.copy(item, home / target / item.name)
    generate_private_key(home / "dkim" / "private.pem")
    return home


def _mailbox(server: RunningServer, address: str, role: str) -> None:
    with server.app.sessions.begin() as session:
        session.add(
            Mailbox(
                address=address,
                role=role,
                password_hash=hash_password(PASSWORD, server.app.settings.password),
                must_change=False,
            )
        )


@pytest.fixture
async def agencies(service_home: Path, db_url: str, other_db_url: str) -> AsyncIterator[Agencies]:
    base = service_home.parent
    home_a = _home(base, "a", db_url, A_DOMAIN)
    home_b = _home(base, "b", other_db_url, B_DOMAIN)
    (base / "peers.pem").write_bytes(
        (home_a / "tls/cert.pem").read_bytes() + (home_b / "tls/cert.pem").read_bytes()
    )
    _seed(
        db_url,
        (AGENCY_CODE, AGENCY_NAME, A_DOMAIN),
        (B_CODE, OTHER_AGENCY_NAME, B_DOMAIN, _NO_ROUTE_YET),
    )
    _seed(
        other_db_url,
        (B_CODE, OTHER_AGENCY_NAME, B_DOMAIN),
        (AGENCY_CODE, AGENCY_NAME, A_DOMAIN, _NO_ROUTE_YET),
    )
    apps: list[App] = []
    try:
        for home in (home_a, home_b):
            app = build_app(home)
            apps.append(app)
            await app.start()
        a, b = RunningServer(apps[0], home_a), RunningServer(apps[1], home_b)
        _route(a, B_CODE, b)
        _route(b, AGENCY_CODE, a)
        _pin_key(a, B_CODE, public_key_value((home_b / "dkim/private.pem").read_bytes()))
        _pin_key(b, AGENCY_CODE, public_key_value((home_a / "dkim/private.pem").read_bytes()))
        _mailbox(a, A_OFFICIAL, "official")
        _mailbox(b, B_CLERK, "clerk")
        yield Agencies(a, b, apps)
    finally:
        for app in reversed(apps):
            await app.stop()


def msmtp_send(
    server: RunningServer, work: Path, data: bytes, rcpts: list[str], user: str = A_OFFICIAL
) -> None:
    """The official's mail client: msmtp over STARTTLS with AUTH to A's submission port."""
    host, port = server.addr("submission")
    work.mkdir(parents=True, exist_ok=True)
    rc = work / "msmtprc"
    rc.write_text(
        "defaults\n"
        "tls on\ntls_starttls on\n"
        f"tls_trust_file {server.home / 'tls/cert.pem'}\n"
        "tls_certcheck on\n"
        "account default\n"
        f"host {host}\nport {port}\n"
        f"tls_host_override {host}\n"
        "auth plain\n"
        f"user {user}\npassword {PASSWORD}\n"
        f"from {user}\n",
        encoding="utf-8",
    )
    rc.chmod(0o600)
    result = subprocess.run(
        ["msmtp", "-C", str(rc), *rcpts], input=data, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr.decode()


def _document(subject: str, number: str, to: str = B_CLERK) -> bytes:
    pki = session_pki()
    pdf = signed_pdf(make_pdf(f"Quyết định số {number}"), pki.personal, pki.organisation)
    msg = make_message(A_OFFICIAL, to, subject=subject)
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="van-ban.pdf")
    return msg.as_bytes()


def _lines(server: RunningServer) -> list[tuple[str, str, str]]:
    with server.sessions() as session:
        return [
            (line.recipient, line.status, line.their_number)
            for line in session.scalars(select(OutgoingDelivery).order_by(OutgoingDelivery.id))
        ]


def _cli(server: RunningServer, *args: str) -> str:
    result = CliRunner().invoke(
        main, ["--home", str(server.home), *args], env={"MAILSVC_ACTOR": "cli:vanthu"}
    )
    assert result.exit_code == 0, result.output
    return result.output


async def test_official_sends_with_msmtp_b_registers_and_the_receipt_comes_back(
    agencies: Agencies, tmp_path: Path
) -> None:
    a, b = agencies.a, agencies.b
    data = _document("V/v triển khai chuyển đổi số", "35/2026/QĐ-UBND")
    await asyncio.to_thread(msmtp_send, a, tmp_path / "msmtp", data, [B_CLERK])

    # B registers the document (numbered: the signatures are valid, the origin proven).
    def registered() -> bool:
        with b.sessions() as session:
            docs = session.scalars(select(RegisterDocument)).all()
            return len(docs) == 1 and docs[0].incoming_number == 1

    await wait_for(registered, timeout=60)
    # B's receipt (03) travels back to A's official; A's register line follows it.
    await wait_for(lambda: _lines(a) == [(B_CLERK, "registered", "1")], timeout=60)
    view = json.loads(await asyncio.to_thread(_cli, a, "outgoing", "show", "1", "--json"))
    assert [h["to_status"] for h in view["history"]] == ["queued", "sent", "registered"]
    assert view["deliveries"][0]["agency_code"] == B_CODE
    assert view["deliveries"][0]["agency_name"] == OTHER_AGENCY_NAME
    # The receipt is in the official's INBOX and is not an incoming document at A.
    [receipt] = await asyncio.to_thread(fetch_inbox, a, A_OFFICIAL)
    assert b"X-Mailsvc-Outgoing: document=1; status=registered" in receipt
    with a.sessions() as session:
        assert session.scalars(select(RegisterDocument)).all() == []


async def test_b_down_a_retries_and_delivers_when_b_is_back_and_unknown_mailbox_bounces(
    agencies: Agencies, tmp_path: Path
) -> None:
    a = agencies.a
    await agencies.stop_b()
    data = _document("V/v báo cáo quý IV", "36/2026/QĐ-UBND")
    await asyncio.to_thread(msmtp_send, a, tmp_path / "m1", data, [B_CLERK])

    def row() -> OutboundMessage:
        with a.sessions() as session:
            return session.scalars(
                select(OutboundMessage).where(OutboundMessage.kind == "submission")
            ).one()

    await wait_for(lambda: row().attempts >= 2, timeout=60)
    assert row().state == "queued" and "cannot connect" in row().last_error
    await agencies.restart_b()
    await wait_for(lambda: row().state == "sent", timeout=60)
    await wait_for(lambda: _lines(a)[0][1] == "registered", timeout=60)

    # An address B does not have: B refuses at RCPT, A's official gets a bounce.
    nobody = f"khongco@{B_DOMAIN}"
    data = make_message(A_OFFICIAL, nobody, subject="Giấy mời họp").as_bytes()
    await asyncio.to_thread(msmtp_send, a, tmp_path / "m2", data, [nobody])
    await wait_for(lambda: ("dsn-failure", A_OFFICIAL) in a.app.mailer.sent, timeout=60)

    def inbox() -> list[bytes]:
        return fetch_inbox(a, A_OFFICIAL)

    await wait_for(lambda: len(inbox()) == 2, timeout=60)
    bounce = next(
        message_from_bytes(m, policy=default_policy)
        for m in inbox()
        if b"multipart/report" in m.split(b"\r\n\r\n", 1)[0]
    )
    text = next(iter(bounce.iter_parts())).get_content()
    assert "KHÔNG gửi được thư" in text and nobody in text
    assert "Địa chỉ người nhận không tồn tại" in text


def _move_to_folder(server: RunningServer, user: str, folder: str) -> None:
    """The clerk files the document away in another folder (a real IMAP client)."""
    client = server.imap(user)
    try:
        typ, _ = client.create(folder)
        assert typ == "OK"
        typ, _ = client.select("INBOX")
        assert typ == "OK"
        typ, _ = client.uid("MOVE", "1:*", folder)
        assert typ == "OK"
    finally:
        client.logout()


async def test_recall_voids_the_copy_in_whatever_folder_and_a_shows_15(
    agencies: Agencies, tmp_path: Path
) -> None:
    a, b = agencies.a, agencies.b
    data = _document("V/v điều chỉnh kế hoạch", "37/2026/QĐ-UBND")
    await asyncio.to_thread(msmtp_send, a, tmp_path / "msmtp", data, [B_CLERK])
    await wait_for(lambda: _lines(a) == [(B_CLERK, "registered", "1")], timeout=60)
    filed = "Luu-tru-2026"
    await asyncio.to_thread(_move_to_folder, b, B_CLERK, filed)

    out = await asyncio.to_thread(
        _cli, a, "outgoing", "recall", "1", "--reason", "Văn bản ban hành chưa đúng thể thức"
    )
    assert f"recall (13) queued to {B_CLERK}" in out
    assert _lines(a)[0][1] == "recall_requested"
    # B carries the recall out (its duty) and confirms; A's line and document follow.
    await wait_for(lambda: _lines(a)[0][1] == "recalled", timeout=60)
    view = json.loads(await asyncio.to_thread(_cli, a, "outgoing", "show", "1", "--json"))
    assert view["state"] == "recalled"
    assert view["recall_reason"] == "Văn bản ban hành chưa đúng thể thức"
    with b.sessions() as session:
        [doc] = session.scalars(select(RegisterDocument)).all()
        assert doc.status == "recalled"
    await wait_for(lambda: len(b.app.mailer.voided) == 1, timeout=60)
    assert await asyncio.to_thread(fetch_inbox, b, B_CLERK, f'"{filed}"') == []
    recalled = await asyncio.to_thread(fetch_inbox, b, B_CLERK, f'"{RECALLED_FOLDER}"')
    assert len(recalled) == 1 and b"van-ban.pdf" in recalled[0]
    with a.sessions() as session:
        [entry] = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "outgoing.recall")
        ).all()
        assert entry.actor == "cli:vanthu"


ISSUING = """
[issuing]
token_label = "{token}"
key_label = "{key}"
cert = "{cert}"
chain = "{chain}"
pin_file = "{pin_file}"
stamp_page = 0
"""


async def test_clerk_issues_a_draft_with_the_organisation_signature_from_the_token(
    agencies: Agencies, softhsm: Token, tmp_path: Path
) -> None:
    a, b = agencies.a, agencies.b
    pki = session_pki()
    pin_file = a.home / "token.pin"
    pin_file.write_text("00000000\n", encoding="utf-8")  # wrong, for now
    pin_file.chmod(0o600)
    with (a.home / "mailsvc.toml").open("a", encoding="utf-8") as config:
        config.write(
            ISSUING.format(
                token=softhsm.label,
                key=softhsm.key_label,
                cert=pki.organisation.cert_path,
                chain=pki.organisation.chain_path,
                pin_file=pin_file,
            )
        )
    # The leader signs personally and sends the draft to the dispatch address, naming B.
    draft = make_message(A_OFFICIAL, f"phathanh@{A_DOMAIN}", subject="V/v kế hoạch năm 2027")
    del draft["To"]
    draft["To"] = f"phathanh@{A_DOMAIN}, {B_CLERK}"
    personal = signed_pdf(make_pdf("Kế hoạch số 40/KH-STTTT"), pki.personal)
    draft.add_attachment(personal, maintype="application", subtype="pdf", filename="40-KH.pdf")
    await asyncio.to_thread(
        msmtp_send, a, tmp_path / "msmtp", draft.as_bytes(), [f"phathanh@{A_DOMAIN}", B_CLERK]
    )
    [listed] = json.loads(await asyncio.to_thread(_cli, a, "outgoing", "list", "--json"))
    assert listed["state"] == "draft" and listed["kind"] == "issued"
    assert [d["recipient"] for d in listed["deliveries"]] == [B_CLERK]
    with a.sessions() as session:  # nothing left A: the draft is not mail to B
        assert session.scalars(select(OutboundMessage)).all() == []

    # A wrong PIN: refused, and the outgoing number is not used up (gapless).
    failed = CliRunner().invoke(main, ["--home", str(a.home), "outgoing", "approve", "1"])
    assert failed.exit_code == 1 and "cannot open token" in failed.output
    assert "00000000" not in failed.output
    pin_file.write_text(softhsm.pin + "\n", encoding="utf-8")

    # Drafts that must not be sealed, refused before any number is taken: one without a
    # personal signature (the seal would make it legally valid as it stands), and one from
    # the official of another agency hosted on A (the seal is A's).
    def draft_of(sender: str, pdf: bytes, name: str) -> bytes:
        message = make_message(sender, f"phathanh@{A_DOMAIN}", subject=f"Dự thảo {name}")
        del message["To"]
        message["To"] = f"phathanh@{A_DOMAIN}, {B_CLERK}"
        message.add_attachment(pdf, maintype="application", subtype="pdf", filename=name)
        return message.as_bytes()

    unsigned = draft_of(A_OFFICIAL, make_pdf("Kế hoạch số 41/KH-STTTT"), "41-KH.pdf")
    await asyncio.to_thread(
        msmtp_send, a, tmp_path / "msmtp", unsigned, [f"phathanh@{A_DOMAIN}", B_CLERK]
    )
    refused = await asyncio.to_thread(
        CliRunner().invoke, main, ["--home", str(a.home), "outgoing", "approve", "2"]
    )
    assert refused.exit_code == 1
    assert "41-KH.pdf carries no valid personal signature" in refused.output, refused.output
    neighbour = "vanthu@snv.thunghiem.gov.vn"
    await asyncio.to_thread(
        _cli, a, "agency", "add", "000.00.04.H99", "Sở Nội vụ", "--domain",
        "snv.thunghiem.gov.vn", "--local",
    )  # fmt: skip
    await a.app.directory.refresh_async()
    _mailbox(a, neighbour, "official")
    foreign = draft_of(neighbour, signed_pdf(make_pdf("Tờ trình 7"), pki.personal), "7-TTr.pdf")
    await asyncio.to_thread(
        msmtp_send, a, tmp_path / "msmtp-snv", foreign, [f"phathanh@{A_DOMAIN}", B_CLERK],
        neighbour,
    )  # fmt: skip
    refused = await asyncio.to_thread(
        CliRunner().invoke, main, ["--home", str(a.home), "outgoing", "approve", "3"]
    )
    assert refused.exit_code == 1
    assert f"sent by {neighbour}, who is not of {AGENCY_NAME}" in refused.output, refused.output

    out = await asyncio.to_thread(_cli, a, "outgoing", "approve", "1")
    year = datetime.now(VIETNAM).year
    assert f"issued as số 1/{year}, queued to {B_CLERK}" in out

    # B receives A's number and a valid organisation signature made in the token.
    def registered() -> list[RegisterDocument]:
        with b.sessions() as session:
            return list(session.scalars(select(RegisterDocument)))

    await wait_for(lambda: len(registered()) == 1, timeout=60)
    [doc] = registered()
    assert doc.signature_outcome == "valid", doc.signature_reason
    assert f"Văn bản số 1/{year}" in doc.subject
    [copy] = await asyncio.to_thread(fetch_inbox, b, B_CLERK)
    pdf = next(
        part.get_content()
        for part in message_from_bytes(copy, policy=default_policy).iter_attachments()
        if part.get_filename() == "40-KH.pdf"
    )
    signatures = PdfFileReader(BytesIO(pdf)).embedded_signatures
    assert [s.field_name for s in signatures] == ["Signature1", "ChuKyToChuc"]
    organisation = signatures[1]
    assert organisation.signer_cert.dump() == pki.organisation.cert.public_bytes(Encoding.DER)
    assert str(organisation.sig_object["/Reason"]) == f"Phát hành văn bản số 1/{year}"
    await wait_for(lambda: _lines(a)[0][1] == "registered", timeout=60)
    view = json.loads(await asyncio.to_thread(_cli, a, "outgoing", "show", "1", "--json"))
    assert view["outgoing_number"] == 1 and view["state"] == "sent"
    assert view["approved_by"] == "cli:vanthu"
    # The PIN is not in the configuration, and the backup leaves its file out.
    assert softhsm.pin not in (a.home / "mailsvc.toml").read_text(encoding="utf-8")
    assert pin_file in home_exclusions(load_settings(a.home))


async def test_a_document_b_enters_without_a_number_is_answered_01_arrived(
    agencies: Agencies, tmp_path: Path
) -> None:
    a, b = agencies.a, agencies.b
    pki = session_pki()
    # Personally signed only: worth "reference only" at B, entered without số đến.
    pdf = signed_pdf(make_pdf("Công văn số 41/STTTT-VP"), pki.personal)
    msg = make_message(A_OFFICIAL, B_CLERK, subject="V/v góp ý dự thảo")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="41-CV.pdf")
    await asyncio.to_thread(msmtp_send, a, tmp_path / "msmtp", msg.as_bytes(), [B_CLERK])
    await wait_for(lambda: _lines(a) == [(B_CLERK, "received", "")], timeout=60)
    with b.sessions() as session:
        [doc] = session.scalars(select(RegisterDocument)).all()
        assert doc.status == "arrived" and doc.incoming_number is None
    await wait_for(lambda: ("notice-01", A_OFFICIAL) in b.app.mailer.sent)
