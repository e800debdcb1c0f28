"""SpamStage table tests (message in, findings out), spam policy, scoring via the runner."""

from __future__ import annotations

import datetime as dt
import email
import io
import zipfile
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from mailsvc.documents.extract import ExtractedText, MessageView, TextExtractor
from mailsvc.errors import ConfigError
from mailsvc.interfaces import AgencyInfo
from mailsvc.message import Direction, InboundMessage
from mailsvc.originator import Mailbox, Originator
from mailsvc.pipeline.runner import PipelineRunner
from mailsvc.pipeline.spam import GTUBE, Hit, SpamStage, view_hits
from mailsvc.policy.pipeline import load_pipeline_policy
from mailsvc.policy.spam import RULE_NAMES, SpamPolicy, load_spam_policy
from mailsvc.verdict import Action, Finding, Status

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_spam_policy(ROOT / "policies" / "spam.yaml")


class Directory:
    def __init__(self) -> None:
        self.agencies = {
            "hanoi.gov.vn": AgencyInfo("000.00.00.H26", "UBND thành phố Hà Nội", ("hanoi.gov.vn",)),
            "stp.example.vn": AgencyInfo("000.00.31.H26", "Sở Tư pháp", ("stp.example.vn",)),
        }

    def agency_for_domain(self, domain: str) -> AgencyInfo | None:
        return self.agencies.get(domain)

    def is_local_domain(self, domain: str) -> bool:
        return domain == "sotttt.example.vn"


def official(
    body: str = "Kính gửi Sở Thông tin và Truyền thông.\nTrân trọng.\n", **headers: str
) -> EmailMessage:
    """A clean official message from a known agency; keyword headers override/add."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Văn thư Sở Tư pháp <vanthu@stp.example.vn>"
    msg["To"] = "vanthu@sotttt.example.vn"
    msg["Subject"] = "Công văn số 123/STP-VP v/v kế hoạch năm 2026"
    msg["Date"] = "Fri, 20 Nov 2026 08:30:00 +0700"
    msg["Message-ID"] = "<m1@stp.example.vn>"
    for name, value in headers.items():
        name = name.replace("_", "-")
        del msg[name]
        if value:
            msg[name] = value
    msg.set_content(body)
    return msg


def with_html(html: str, **headers: str) -> EmailMessage:
    msg = official(**headers)
    msg.add_alternative(html, subtype="html")
    return msg


def with_attachment(filename: str, data: bytes = b"MZ\x90\x00fake", **headers: str) -> EmailMessage:
    msg = official(**headers)
    msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=filename)
    return msg


def zipped(**members: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def ole_document(with_macros: bool) -> bytes:
    """The start of an OLE2 compound file with a directory entry named _VBA_PROJECT."""
    body = b"\x00" * 512
    if with_macros:
        body += "_VBA_PROJECT".encode("utf-16-le") + b"\x00" * 40
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504 + body


def raw(msg: EmailMessage) -> bytes:
    return msg.as_bytes()


def inbound(
    data: bytes, mail_from: str = "vanthu@stp.example.vn", direction: Direction = Direction.INBOUND
) -> InboundMessage:
    return InboundMessage(
        queue_id="Q1",
        mail_from=mail_from,
        rcpt_tos=("vanthu@sotttt.example.vn",),
        raw=data,
        received_at=dt.datetime(2026, 11, 20, 1, 30, tzinfo=dt.UTC),
        client_ip="192.0.2.25",
        client_helo="mail.stp.example.vn",
        direction=direction,
    )


@pytest.fixture
def stage() -> SpamStage:
    return SpamStage(Directory(), POLICY)


CLEAN = raw(official())

TABLE: list[tuple[str, bytes, str, set[str]]] = [
    ("clean official message", CLEAN, "vanthu@stp.example.vn", set()),
    (
        "subdomain of an agency is known",
        raw(official(From="<a@vp.hanoi.gov.vn>")),
        "a@vp.hanoi.gov.vn",
        set(),
    ),
    (
        "GTUBE in the body",
        raw(official(body=GTUBE.decode() + "\n")),
        "vanthu@stp.example.vn",
        {"gtube"},
    ),
    (
        "GTUBE in a base64 part",
        raw(with_attachment("x.txt", GTUBE)).replace(b"application/octet-stream", b"text/plain"),
        "vanthu@stp.example.vn",
        {"gtube"},
    ),
    (
        "gmail sender",
        raw(official(From="Nguyen Van A <nguyenvana.ubnd@gmail.com>")),
        "nguyenvana.ubnd@gmail.com",
        {"free-mail-sender", "unknown-sender-domain"},
    ),
    (
        "official From, Yahoo Reply-To",
        raw(official(Reply_To="<vanthu.stp@yahoo.com.vn>")),
        "vanthu@stp.example.vn",
        {"free-mail-sender"},
    ),
    (
        "unknown domain",
        raw(official(From="<sales@congty.example.com>")),
        "sales@congty.example.com",
        {"unknown-sender-domain"},
    ),
    (
        "newsletter headers",
        raw(official(List_Unsubscribe="<mailto:u@stp.example.vn>", Precedence="bulk")),
        "vanthu@stp.example.vn",
        {"bulk-headers"},
    ),
    (
        "mass mailer",
        raw(official(X_Mailer="SendBlaster 4.4.2")),
        "vanthu@stp.example.vn",
        {"mass-mailer"},
    ),
    (
        "IP-literal link",
        raw(with_html('<p>Xem <a href="http://203.0.113.9/login">tại đây</a></p>')),
        "vanthu@stp.example.vn",
        {"ip-literal-url"},
    ),
    (
        "obfuscated IP link in plain text",
        raw(official(body="Xem http://3405803785/a ngay.\n")),
        "vanthu@stp.example.vn",
        {"ip-literal-url"},
    ),
    (
        "shortener in plain text, scheme in capitals",
        raw(official(body="Tải văn bản: HTTPS://BIT.LY/3xYz\n")),
        "vanthu@stp.example.vn",
        {"url-shortener"},
    ),
    (
        "link text shows another domain",
        raw(
            with_html(
                '<a href="https://dichvucong-gov.example.com/x">https://dichvucong.gov.vn</a>'
            )
        ),
        "vanthu@stp.example.vn",
        {"link-text-mismatch"},
    ),
    (
        "honest link text",
        raw(
            with_html(
                '<a href="https://www.hanoi.gov.vn/tin">hanoi.gov.vn</a> <a href="https://x.vn">đây</a>'
            )
        ),
        "vanthu@stp.example.vn",
        set(),
    ),
    (
        "URL shortener",
        raw(with_html('<a href="https://bit.ly/3xYz">Tải văn bản</a>')),
        "vanthu@stp.example.vn",
        {"url-shortener"},
    ),
    (
        "executable",
        raw(with_attachment("setup.exe")),
        "vanthu@stp.example.vn",
        {"executable-attachment"},
    ),
    (
        "script",
        raw(with_attachment("hoa-don.js", b"WScript")),
        "vanthu@stp.example.vn",
        {"executable-attachment"},
    ),
    (
        "double extension",
        raw(with_attachment("cong-van-123.pdf.exe")),
        "vanthu@stp.example.vn",
        {"executable-attachment", "double-extension"},
    ),
    (
        "double extension hidden by spaces",
        raw(with_attachment("bao-cao.docx        .scr")),
        "vanthu@stp.example.vn",
        {"executable-attachment", "double-extension"},
    ),
    (
        "right-to-left override",
        raw(with_attachment("hoadon\u202efdp.exe")),
        "vanthu@stp.example.vn",
        {"executable-attachment", "double-extension"},
    ),
    (
        "executable inside a ZIP",
        raw(with_attachment("tai-lieu.zip", zipped(**{"tai-lieu/van-ban.pdf.vbs": b"x"}))),
        "vanthu@stp.example.vn",
        {"executable-attachment", "double-extension"},
    ),
    (
        "harmless ZIP",
        raw(with_attachment("tai-lieu.zip", zipped(**{"a.pdf": b"%PDF-1.7", "b.docx": b"x"}))),
        "vanthu@stp.example.vn",
        set(),
    ),
    (
        "macro extension",
        raw(with_attachment("bang-luong.xlsm", b"PK")),
        "vanthu@stp.example.vn",
        {"macro-office"},
    ),
    (
        "vbaProject.bin in a .docx",
        raw(
            with_attachment(
                "cong-van.docx",
                zipped(**{"word/document.xml": b"<w/>", "word/vbaProject.bin": b"\x00"}),
            )
        ),
        "vanthu@stp.example.vn",
        {"macro-office"},
    ),
    (
        "plain .docx",
        raw(with_attachment("cong-van.docx", zipped(**{"word/document.xml": b"<w/>"}))),
        "vanthu@stp.example.vn",
        set(),
    ),
    (
        "OLE .doc with VBA",
        raw(with_attachment("to-trinh.doc", ole_document(True))),
        "vanthu@stp.example.vn",
        {"macro-office"},
    ),
    (
        "OLE .doc without VBA",
        raw(with_attachment("to-trinh.doc", ole_document(False))),
        "vanthu@stp.example.vn",
        set(),
    ),
    ("no Date", raw(official(Date="")), "vanthu@stp.example.vn", {"missing-date"}),
    (
        "no Message-ID",
        raw(official(Message_ID="")),
        "vanthu@stp.example.vn",
        {"missing-message-id"},
    ),
    (
        "display name shows another address",
        raw(official(From='"vanthu@hanoi.gov.vn" <ketoan.hanoi@stp.example.vn>')),
        "vanthu@stp.example.vn",
        {"display-name-spoof"},
    ),
    (
        "a comment shows another address (IMAP's ENVELOPE shows it as the name)",
        b"From: ketoan.hanoi@stp.example.vn (vanthu@hanoi.gov.vn)\r\n"
        b"To: <a@sotttt.example.vn>\r\nSubject: Cong van\r\n"
        b"Date: Fri, 20 Nov 2026 08:30:00 +0700\r\nMessage-ID: <x@stp.example.vn>\r\n\r\nBody\r\n",
        "vanthu@stp.example.vn",
        {"display-name-spoof"},
    ),
    (
        "Sender's display name shows another address",
        b"From: <vanthu@stp.example.vn>\r\nSender: \"giamdoc@hanoi.gov.vn\" <x@stp.example.vn>\r\n"
        b"To: <a@sotttt.example.vn>\r\nSubject: Cong van\r\n"
        b"Date: Fri, 20 Nov 2026 08:30:00 +0700\r\nMessage-ID: <x@stp.example.vn>\r\n\r\nBody\r\n",
        "vanthu@stp.example.vn",
        {"display-name-spoof"},
    ),
    (
        "display name repeats the real address",
        raw(official(From='"vanthu@stp.example.vn" <vanthu@stp.example.vn>')),
        "vanthu@stp.example.vn",
        set(),
    ),
    (
        "raw 8-bit header",
        b"From: <vanthu@stp.example.vn>\r\nTo: <a@sotttt.example.vn>\r\n"
        b"Subject: C\xc3\xb4ng v\xc4\x83n\r\n"
        b"Date: Fri, 20 Nov 2026 08:30:00 +0700\r\nMessage-ID: <x@stp.example.vn>\r\n\r\nBody\r\n",
        "vanthu@stp.example.vn",
        {"raw-8bit-header"},
    ),
    (
        "From: domain with a Cyrillic s (xn--tp-doc = ѕtp), a look-alike of a known agency's",
        raw(official(From="Văn thư Sở Tư pháp <vanthu@xn--tp-doc.example.vn>")),
        "vanthu@xn--tp-doc.example.vn",
        {"lookalike-domain", "unknown-sender-domain"},
    ),
    (
        "Reply-To: a label written wholly in look-alike Cyrillic letters (аррӏе)",
        raw(official(Reply_To="<ketoan@xn--80ak6aa92e.com>")),
        "vanthu@stp.example.vn",
        {"lookalike-domain"},
    ),
    (
        "a Vietnamese IDN domain is one script, not a look-alike",
        raw(official(From="<vanthu@xn--ybannhndn-g2ac4233g.vn>")),
        "vanthu@xn--ybannhndn-g2ac4233g.vn",
        {"unknown-sender-domain"},
    ),
    (
        "two From headers",
        b"From: <vanthu@stp.example.vn>\r\n" + CLEAN,
        "vanthu@stp.example.vn",
        {"multiple-from"},
    ),
    (
        "two addresses in From",
        raw(official(From="<vanthu@stp.example.vn>, <giamdoc@stp.example.vn>")),
        "vanthu@stp.example.vn",
        {"multiple-from"},
    ),
]


@pytest.mark.parametrize(
    ("name", "data", "mail_from", "expected"), TABLE, ids=[t[0] for t in TABLE]
)
async def test_spam_rules(
    stage: SpamStage, name: str, data: bytes, mail_from: str, expected: set[str]
) -> None:
    findings = await stage.inspect(inbound(data, mail_from))
    assert all(f.stage == "spam" for f in findings)
    if not expected:
        assert [(f.status, f.reason, f.score) for f in findings] == [
            (Status.PASS, "spam-clean", 0.0)
        ]
        return
    assert {f.reason for f in findings} == expected
    for finding in findings:
        assert finding.status is Status.FAIL
        assert finding.score == POLICY.rule(finding.reason).score
        assert finding.detail


def test_every_rule_is_exercised_by_the_table() -> None:
    exercised = set().union(*(t[3] for t in TABLE))
    assert exercised == set(RULE_NAMES)


async def test_submission_may_leave_date_and_message_id_to_the_server(stage: SpamStage) -> None:
    data = raw(official(Date="", Message_ID="", From="<annv.stttt@sotttt.example.vn>"))
    findings = await stage.inspect(
        inbound(data, "annv.stttt@sotttt.example.vn", Direction.SUBMISSION)
    )
    assert [f.reason for f in findings] == ["spam-clean"]


async def test_disabled_rule_does_not_fire() -> None:
    policy = SpamPolicy.model_validate(
        {"rules": {"free-mail-sender": {"score": 6, "enabled": False}}}
    )
    stage = SpamStage(Directory(), policy)
    findings = await stage.inspect(inbound(raw(official(From="<a@gmail.com>")), "a@gmail.com"))
    assert [f.reason for f in findings] == ["unknown-sender-domain"]


async def test_findings_name_what_the_rule_saw(stage: SpamStage) -> None:
    data = raw(
        with_attachment("tai-lieu.zip", zipped(**{"x/van-ban.pdf.exe": b"x", "y.scr": b"y"}))
    )
    findings = {f.reason: f for f in await stage.inspect(inbound(data))}
    hit = findings["executable-attachment"].payload
    assert isinstance(hit, Hit)
    assert hit.count == 2
    assert "tai-lieu.zip/van-ban.pdf.exe" in hit.seen


# -- policy ------------------------------------------------------------------------------


def test_shipped_policy_documents_every_rule() -> None:
    assert POLICY.version
    for name, rule in POLICY.rules.by_name().items():
        assert rule.description, name
    assert POLICY.rule("gtube").score >= POLICY.thresholds.reject
    assert "gmail.com" in POLICY.free_mail_domains


@pytest.mark.parametrize(
    ("total", "action"),
    [
        (-3, "deliver"),
        (0, "deliver"),
        (4.9, "deliver"),
        (5.0, "junk"),
        (14.9, "junk"),
        (15, "reject"),
        (1000, "reject"),
    ],
)
def test_thresholds(total: float, action: str) -> None:
    assert POLICY.action_for(total) == action
    assert (
        POLICY.verdict_action_for(total)
        is {"deliver": Action.DELIVER, "junk": Action.QUARANTINE, "reject": Action.REJECT}[action]
    )


def test_score_for_other_stages_and_rules() -> None:
    def f(stage: str, reason: str, status: Status = Status.FAIL, score: float = 0.0) -> Finding:
        return Finding(stage=stage, status=status, reason=reason, score=score)

    assert POLICY.score_for(f("authentication", "dkim-fail")) == 3.0
    assert POLICY.score_for(f("authentication", "dmarc-pass", Status.PASS)) == -2.0
    assert POLICY.score_for(f("authentication", "dkim-pass", Status.PASS)) == 0.0
    assert POLICY.score_for(f("spam", "gtube")) == 1000
    assert POLICY.score_for(f("spam", "spam-clean", Status.PASS)) == 0.0
    assert POLICY.score_for(f("antivirus", "virus-found")) == 0.0
    forged = [
        f("authentication", "dkim-fail"),
        f("authentication", "spf-fail"),
        f("authentication", "dmarc-reject"),
    ]
    assert POLICY.action_for(POLICY.total(forged)) == "reject"
    free_mail = [
        f("spam", "free-mail-sender"),
        f("spam", "unknown-sender-domain"),
        f("authentication", "dmarc-pass", Status.PASS),
    ]
    assert POLICY.action_for(POLICY.total(free_mail)) == "junk"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("thresholds: {junk: 10, reject: 5}\n", "thresholds"),
        ("rules:\n  gtube: {score: lots}\n", "rules.gtube.score"),
        ("rules:\n  no-such-rule: {score: 1}\n", "rules.no-such-rule"),
        ("rules:\n  url-shortener: {score: 1, domains: 3}\n", "rules.url-shortener.domains"),
        ("reason_scores: {gtube: 3}\n", "(top level)"),
        ("surprise: 1\n", "surprise"),
        ("- a list\n", "(top level)"),
    ],
)
def test_invalid_policy_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "spam.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_spam_policy(path)
    assert str(path) in str(info.value)
    assert f"key '{key}'" in str(info.value)


def test_unreadable_policy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_spam_policy(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("rules: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_spam_policy(tmp_path / "bad.yaml")


# -- with the real runner ----------------------------------------------------------------


@pytest.fixture
def runner() -> PipelineRunner:
    return PipelineRunner(
        [SpamStage(Directory(), POLICY)],
        load_pipeline_policy(ROOT / "policies" / "pipeline.yaml"),
        scoring=POLICY,
    )


async def test_gtube_alone_is_refused_by_the_runner(runner: PipelineRunner) -> None:
    verdict = await runner.run(inbound(raw(official(body=GTUBE.decode() + "\n"))))
    assert verdict.action is Action.REJECT
    assert verdict.deciding is not None and "gtube" in verdict.deciding.detail


async def test_free_mail_goes_to_junk_and_clean_is_delivered(runner: PipelineRunner) -> None:
    junk = await runner.run(
        inbound(raw(official(From="<vanthu.stp@gmail.com>")), "vanthu.stp@gmail.com")
    )
    assert junk.action is Action.QUARANTINE
    clean = await runner.run(inbound(CLEAN))
    assert clean.action is Action.DELIVER


async def test_disguised_executable_is_refused(runner: PipelineRunner) -> None:
    verdict = await runner.run(inbound(raw(with_attachment("cong-van.pdf.exe"))))
    assert verdict.action is Action.REJECT


async def test_process_pool_executor() -> None:
    """app.py may hand a process pool: the content rules must pickle."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1) as pool:
        stage = SpamStage(Directory(), POLICY, TextExtractor(pool))
        findings = await stage.inspect(inbound(raw(with_attachment("cong-van.pdf.exe"))))
    assert {f.reason for f in findings} == {"executable-attachment", "double-extension"}


def originator_seen(view: MessageView, _arg: None) -> tuple[Originator | None, Originator]:
    """An analysis task: what the worker was given, and what its stages read."""
    return view.parsed_originator, view.originator


async def test_the_worker_reads_the_originator_the_smtp_process_parsed() -> None:
    """From/Sender/Reply-To are parsed once per message: the limits stage parses them in
    the SMTP process, and the worker call (a real process) gets that parse, not the bytes
    to parse again; without one, the worker parses them itself."""
    from concurrent.futures import ProcessPoolExecutor

    data = raw(official(From="Văn thư <vanthu@stp.example.vn>", Reply_To="<b@stp.vn>"))
    with ProcessPoolExecutor(max_workers=1) as pool:
        extractor = TextExtractor(pool)
        extractor.add_task("probe", originator_seen, None)
        parsed = inbound(data)
        expected = parsed.originator  # as the limits stage does before the other stages
        given, read = (await extractor.analyse(parsed)).result("probe")
        assert given == expected and read == expected
        assert read.from_[0].display_name == "Văn thư"
        assert [m.addr_spec for m in read.reply_to] == ["b@stp.vn"]
        extractor.clear()
        given, read = (await extractor.analyse(inbound(data))).result("probe")
        assert given is None and read == expected


def test_the_spam_rules_use_the_originator_they_are_given() -> None:
    """The header rules read ``MessageView.originator``: two From addresses in the parse
    handed over count, although the bytes hold one (nothing parses From again)."""
    data = CLEAN
    two = Originator(
        from_=(Mailbox("", "vanthu@stp.example.vn"), Mailbox("", "giamdoc@stp.example.vn"))
    )
    message = email.message_from_bytes(data)
    text = ExtractedText(message_sha256="", parts=())
    assert "multiple-from" not in {
        h.rule for h in view_hits(MessageView(data, message, text, "in"), POLICY)
    }
    assert "multiple-from" in {
        h.rule for h in view_hits(MessageView(data, message, text, "in", two), POLICY)
    }
