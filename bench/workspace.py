"""Workspace pages on a register of a million entries: server time per page. Not a test.

    python bench/workspace.py [--rows 1000000] [--requests 20] [--pg postgresql://...]

Fills a migrated database with ``--rows`` incoming documents shaped like a provincial
department's register over 2024-2026 (about 200 sending agencies, document types,
abstracts built from a vocabulary, statuses, urgencies, deadlines, signature outcomes)
and their search rows, written with SQLAlchemy Core executemany in chunks (not through
the recorder: the bench is about reading). Then it builds the real HTTPS application
(``make_app`` with a ``Workspace``, TLS with a self-signed certificate because the
session cookie is ``__Host-`` and Secure), signs a clerk in over HTTP with httpx, and
requests each page ``--requests`` times one after another: the first list page, a deep
page (keyset ``before``), each filter alone, searches (a common word, a rare word,
several words without diacritics, a search with a filter, a search's deep page) and a
document page. ``/healthz`` (no database) is the baseline in the same run.

For each page it prints the server time (an outermost middleware: from the request's
arrival at the application to its response, page rendered) as median and p95, the
round trip seen by the client, its ratio to /healthz's round trip, and the rows shown.
The issue's target is a server time under 200 ms for the search and list pages.

SQLite runs on a temporary file (no ANALYZE: the server never runs one); with --pg, a
fresh database is created under the given admin URL, filled, VACUUM ANALYZEd (as
autovacuum would after a load) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from aiohttp import web
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, Table, create_engine, insert, text
from sqlalchemy.orm import sessionmaker

from mailsvc.app import server_tls_context
from mailsvc.config import PasswordSection, WorkspaceSection, load_settings
from mailsvc.db.models import Agency, Mailbox
from mailsvc.db.session import make_engine, make_sessionmaker, migrate
from mailsvc.lockout import Lockout
from mailsvc.passwords import hash_password
from mailsvc.register import search
from mailsvc.register.models import Register, RegisterDocument
from mailsvc.store.blobs import BlobStore
from mailsvc.time import VIETNAM
from mailsvc.web.app import make_app, start_http
from mailsvc.web.password import PageLimits
from mailsvc.web.workspace.auth import Authenticator
from mailsvc.web.workspace.pages import Workspace
from tests.tlsutil import write_self_signed

DOMAIN = "stttt.daknong.gov.vn"
OUR_CODE = "000.00.31.H56"
CLERK = f"vanthu@{DOMAIN}"
PASSWORD = "Bench-Password-2026"
CHUNK = 20_000
TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "workspace"
TARGET_MS = 200.0

# ----------------------------------------------------------------------------- vocabulary

PLACES = [
    "Đắk Nông", "Gia Nghĩa", "Đắk Mil", "Đắk Song", "Đắk R'lấp", "Đắk Glong",
    "Krông Nô", "Cư Jút", "Tuy Đức", "Lâm Đồng", "Đắk Lắk", "Bình Phước",
]  # fmt: skip
DEPARTMENTS = [
    ("Sở Tài chính", "STC"), ("Sở Kế hoạch và Đầu tư", "SKHĐT"),
    ("Sở Nội vụ", "SNV"), ("Sở Tư pháp", "STP"), ("Sở Xây dựng", "SXD"),
    ("Sở Giáo dục và Đào tạo", "SGDĐT"), ("Sở Y tế", "SYT"),
    ("Sở Nông nghiệp và Phát triển nông thôn", "SNN"),
    ("Sở Tài nguyên và Môi trường", "STNMT"), ("Sở Công Thương", "SCT"),
    ("Sở Lao động - Thương binh và Xã hội", "SLĐTBXH"),
    ("Sở Văn hóa, Thể thao và Du lịch", "SVHTTDL"), ("Sở Giao thông vận tải", "SGTVT"),
    ("Sở Khoa học và Công nghệ", "SKHCN"), ("Thanh tra tỉnh", "TTr"),
    ("Ban Dân tộc", "BDT"), ("Công an tỉnh", "CAT"), ("Bộ Chỉ huy Quân sự tỉnh", "BCHQS"),
]  # fmt: skip
DISTRICT_BODIES = [
    ("Ủy ban nhân dân", "UBND"), ("Phòng Tài chính - Kế hoạch", "TCKH"),
    ("Phòng Nội vụ", "PNV"), ("Phòng Giáo dục và Đào tạo", "PGDĐT"),
    ("Phòng Tài nguyên và Môi trường", "TNMT"), ("Phòng Kinh tế", "PKT"),
    ("Trung tâm Y tế", "TTYT"), ("Phòng Văn hóa và Thông tin", "VHTT"),
    ("Phòng Lao động - Thương binh và Xã hội", "LĐTBXH"), ("Ban Quản lý dự án", "BQLDA"),
    ("Phòng Tư pháp", "PTP"), ("Hội đồng nhân dân", "HĐND"),
    ("Chi cục Thuế khu vực", "CCT"), ("Kho bạc Nhà nước", "KBNN"),
    ("Phòng Nông nghiệp và Phát triển nông thôn", "PNN"),
    ("Ban Chỉ huy Quân sự", "BCHQS"),
]  # fmt: skip
DOC_TYPES = [  # (name, abbreviation, weight)
    ("Công văn", "", 55), ("Quyết định", "QĐ", 12), ("Kế hoạch", "KH", 8),
    ("Báo cáo", "BC", 8), ("Thông báo", "TB", 7), ("Giấy mời", "GM", 5),
    ("Tờ trình", "TTr", 3), ("Chỉ thị", "CT", 1), ("Nghị quyết", "NQ", 1),
]  # fmt: skip
TOPICS = [  # (phrase, weight)
    ("triển khai kế hoạch chuyển đổi số", 8), ("triển khai chữ ký số chuyên dùng", 4),
    ("báo cáo tình hình thực hiện nhiệm vụ", 6), ("phê duyệt dự toán ngân sách", 5),
    ("tăng cường công tác phòng cháy, chữa cháy", 3), ("cải cách hành chính", 6),
    ("tổ chức hội nghị sơ kết", 4), ("thực hiện chế độ báo cáo thống kê", 3),
    ("quyết toán vốn đầu tư xây dựng cơ bản", 3), ("tuyển dụng công chức", 2),
    ("đánh giá, xếp loại chất lượng cán bộ", 3), ("phòng, chống thiên tai", 2),
    ("bảo đảm an toàn thông tin mạng", 3), ("kiểm tra công tác văn thư, lưu trữ", 2),
    ("giải quyết khiếu nại, tố cáo", 2), ("giao chỉ tiêu kế hoạch phát triển kinh tế - xã hội", 3),
    ("thực hiện Nghị định số 30/2020/NĐ-CP về công tác văn thư", 2),
    ("cấp giấy chứng nhận quyền sử dụng đất", 2), ("hỗ trợ hộ nghèo, hộ cận nghèo", 2),
    ("tiêm chủng mở rộng", 1), ("phòng, chống dịch bệnh", 2), ("xây dựng nông thôn mới", 3),
    ("quản lý, sử dụng tài sản công", 2), ("thu ngân sách nhà nước", 2),
    ("góp ý dự thảo văn bản quy phạm pháp luật", 4), ("cử cán bộ tham gia tập huấn", 3),
    ("thẩm định hồ sơ dự án", 2), ("khen thưởng thành tích", 2), ("bổ nhiệm cán bộ", 1),
    ("sắp xếp đơn vị hành chính cấp xã", 2), ("công khai ngân sách", 1),
    ("an toàn vệ sinh thực phẩm", 1), ("bảo vệ và phát triển rừng", 2),
    ("chương trình mục tiêu quốc gia", 2), ("dịch vụ công trực tuyến toàn trình", 3),
]  # fmt: skip
RARE_TOPIC = "khắc phục sạt lở đất tại xã Đắk Plao"  # about 1 in 10,000 documents
OPENINGS = [
    "Căn cứ Luật Tổ chức chính quyền địa phương ngày 19 tháng 6 năm 2015",
    "Căn cứ Nghị định số 30/2020/NĐ-CP ngày 05 tháng 3 năm 2020 của Chính phủ về công tác văn thư",
    "Căn cứ Luật Ngân sách nhà nước ngày 25 tháng 6 năm 2015",
    "Thực hiện chỉ đạo của Ủy ban nhân dân tỉnh tại Công văn số 1234/UBND-KGVX",
    "Căn cứ Quyết định số 749/QĐ-TTg phê duyệt Chương trình chuyển đổi số quốc gia",
    "Theo đề nghị của Chánh Văn phòng",
    "Nhằm nâng cao hiệu quả công tác quản lý nhà nước trên địa bàn tỉnh",
    "Căn cứ Luật Giao dịch điện tử ngày 22 tháng 6 năm 2023",
]  # fmt: skip
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Y"]
MIDDLE = ["Văn", "Thị", "Đức", "Minh", "Thanh", "Hữu", "Ngọc", "Quang"]
GIVEN = ["An", "Bình", "Cường", "Dũng", "Hà", "Hải", "Hùng", "Lan", "Long", "Mai", "Nam",
         "Phong", "Quân", "Sơn", "Tâm", "Thảo", "Trung", "Tuấn", "Việt", "Yến"]  # fmt: skip
UNITS = ["vp", "kt", "tckh", "ttcntt", "bcvt", "tth", "qlcntt"]
URGENCIES = [("normal", 85), ("urgent", 10), ("very_urgent", 4), ("immediate", 1)]
OUTCOMES = [("valid", 88), ("reference_only", 10), ("invalid", 2)]
OPEN_STATUSES = ("registered", "assigned", "in_progress")


@dataclass(frozen=True)
class Sender:
    code: str
    name: str
    abbreviation: str
    domain: str


def make_senders(count: int = 200) -> list[Sender]:
    found: list[Sender] = []
    for i, (name, abbr) in enumerate(DEPARTMENTS):
        found.append(Sender(f"000.00.{40 + i:02d}.H56", name, abbr, f"s{i}.daknong.gov.vn"))
    n = 0
    for p, place in enumerate(PLACES):
        for name, abbr in DISTRICT_BODIES:
            if len(found) >= count:
                return found
            kind = "tỉnh" if place in ("Lâm Đồng", "Đắk Lắk", "Bình Phước") else "huyện"
            found.append(
                Sender(f"{p:03d}.{n % 100:02d}.{60 + n // 100:02d}.H56",
                       f"{name} {kind} {place}", abbr, f"d{p}-{n}.daknong.gov.vn")
            )  # fmt: skip
            n += 1
    return found


@cache
def words(value: str) -> str:
    """The search words of a repeated piece of a field (cached: fill speed), as
    ``search.document_words`` makes them."""
    return " ".join(search.plain_words(value))


def weighted(rng: random.Random, pairs: list[tuple[Any, int]], k: int) -> list[Any]:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs], k=k)


@dataclass
class Filled:
    rows: int
    seconds: float
    register_id: int
    sample_agency: str
    first_id: int
    last_id: int


def generate(
    rng: random.Random, rows: int, senders: list[Sender], register_id: int, today: date
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """(documents, search rows) in chunks, ids 1..rows in order of arrival."""
    start = datetime(2024, 1, 2, 1, 0, tzinfo=UTC)
    end = datetime.combine(today, datetime.min.time(), tzinfo=VIETNAM).astimezone(UTC)
    span = (end - start).total_seconds()
    sender_weights = [1.0 / (i + 3) for i in range(len(senders))]  # a few send most
    numbers: dict[int, int] = {}
    notation_numbers: dict[tuple[str, int], int] = {}
    topics = [(t, w * 100) for t, w in TOPICS] + [(RARE_TOPIC, 1)]
    for first in range(1, rows + 1, CHUNK):
        n = min(CHUNK, rows - first + 1)
        picked = rng.choices(senders, weights=sender_weights, k=n)
        types = weighted(rng, [((d, a), w) for d, a, w in DOC_TYPES], n)
        chosen = weighted(rng, topics, n)
        urgencies = weighted(rng, URGENCIES, n)
        outcomes = weighted(rng, OUTCOMES, n)
        docs: list[dict[str, Any]] = []
        found: list[dict[str, Any]] = []
        for j in range(n):
            doc_id = first + j
            received = start + timedelta(seconds=span * (doc_id - 0.5) / rows)
            local = received.astimezone(VIETNAM)
            year = local.year
            sender = picked[j]
            doc_type, type_abbr = types[j]
            topic = chosen[j]
            outcome = outcomes[j]
            age = (today - local.date()).days
            if outcome == "invalid":
                status = "refused"
            elif age < 3 and rng.random() < 0.5:
                status = "arrived"
            elif age < 60:
                status = rng.choice(("registered", "assigned", "in_progress", "done", "done"))
            else:
                roll = rng.random()
                status = (
                    "done" if roll < 0.93
                    else "in_progress" if roll < 0.95
                    else "assigned" if roll < 0.96
                    else "registered" if roll < 0.97
                    else "recalled" if roll < 0.98
                    else "deleted"
                )  # fmt: skip
            numbered = status not in ("arrived", "refused")
            number: int | None = None
            if numbered:
                number = numbers[year] = numbers.get(year, 0) + 1
            key = (sender.code, year)
            notation_numbers[key] = notation_numbers.get(key, 0) + 1
            tail = f"{type_abbr}-{sender.abbreviation}" if type_abbr else sender.abbreviation
            notation = f"{notation_numbers[key]}/{tail}"
            if doc_type == "Công văn":
                abstract = f"V/v {topic}"
            elif doc_type == "Quyết định":
                abstract = f"Về việc {topic}"
            else:
                abstract = f"{topic[0].upper()}{topic[1:]} năm {year}"
            urgency = urgencies[j]
            subject = f"{doc_type} số {notation} {abstract}"
            if urgency == "immediate":
                subject = f"HỎA TỐC - {subject}"
            signer = f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"
            deadline = (
                local.date() + timedelta(days=rng.randint(5, 30))
                if numbered and rng.random() < 0.5
                else None
            )
            assigned = ""
            if status in ("assigned", "in_progress", "done"):
                unit = rng.choice(UNITS)
                assigned = unit if rng.random() < 0.6 else f"cv{rng.randint(1, 40)}.{unit}@{DOMAIN}"
            sender_address = f"vanthu@{sender.domain}"
            docs.append(
                {
                    "id": doc_id,
                    "register_id": register_id,
                    "incoming_number": number,
                    "year": year,
                    "received_at": received,
                    "registered_at": received + timedelta(minutes=3) if numbered else None,
                    "agency_code": sender.code,
                    "agency_name": sender.name,
                    "sender": sender_address,
                    "recipient": CLERK,
                    "message_record_id": None,
                    "queue_id": f"B{doc_id:09d}",
                    "message_id": f"<{doc_id}.bench@{sender.domain}>",
                    "subject": subject,
                    "number_notation": notation,
                    "issued_date": (received - timedelta(days=1)).date(),
                    "doc_type": doc_type,
                    "abstract": abstract,
                    "urgency": urgency,
                    "signer": signer,
                    "signature_outcome": outcome,
                    "signature_reason": "signed" if outcome != "invalid" else "bad-signature",
                    "status": status,
                    "deadline": deadline,
                    "assigned_to": assigned,
                    "note": "",
                    "message_key": f"{doc_id:016x}",
                    "main_sha256": f"{doc_id:064x}",
                    "ref_key": f"{notation}|{sender.code}",
                    "duplicates": 0,
                    "updated_at": received + timedelta(days=1),
                }
            )
            notation_words = f"{notation_numbers[key]} {words(tail)}"
            subject_words = " ".join(
                (words("HỎA TỐC - ") if urgency == "immediate" else "", words(doc_type), "so",
                 notation_words, words(abstract))
            ).lstrip()  # fmt: skip
            content = " ".join(
                (notation_words, words(abstract), subject_words, words(doc_type),
                 words(sender.name), words(sender.code), words(signer), words(sender_address))
            )  # fmt: skip
            body = " ".join(words(o) for o in rng.sample(OPENINGS, 2)) + " " + words(abstract)
            found.append({"id": doc_id, "content": content, "body": body})
        yield docs, found


def fill(engine: Engine, rows: int, today: date) -> Filled:
    sqlite = engine.dialect.name == "sqlite"
    senders = make_senders()
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        ours = Agency(
            code=OUR_CODE, name="Sở Thông tin và Truyền thông", domains=[DOMAIN], local=True
        )
        session.add(ours)
        session.add_all(Agency(code=s.code, name=s.name, domains=[s.domain]) for s in senders)
        session.flush()
        session.add(
            Mailbox(
                address=CLERK,
                role="clerk",
                full_name="Trần Thị Văn Thư",
                agency_id=ours.id,
                must_change=False,
                password_hash=hash_password(PASSWORD, PasswordSection()),
            )
        )
        register = Register(
            code=OUR_CODE, name="Sổ đăng ký văn bản đến - Sở Thông tin và Truyền thông",
            agency_id=ours.id,
        )  # fmt: skip
        session.add(register)
        session.flush()
        register_id = register.id
    if sqlite:
        index_sql = "INSERT INTO register_fts (rowid, content, body) VALUES (:id, :content, :body)"
    else:
        index_sql = (
            "INSERT INTO register_search (document_id, content, body) VALUES (:id, :content, :body)"
        )
    table = RegisterDocument.__table__
    assert isinstance(table, Table)
    rng = random.Random(15)
    started = time.perf_counter()
    done = 0
    checked = False
    for docs, found in generate(rng, rows, senders, register_id, today):
        if not checked:  # the bench's search words are the registering path's
            for doc, row in zip(docs, found, strict=True):
                expected = search.document_words(RegisterDocument(**doc))
                assert row["content"] == expected, (row["content"], expected)
            checked = True
        with engine.begin() as conn:
            conn.execute(insert(table), docs)
            conn.execute(text(index_sql), found)
        done += len(docs)
        if done % 200_000 == 0 or done == rows:
            print(f"  filled {done:,} rows in {time.perf_counter() - started:.0f} s", flush=True)
    if not sqlite:
        with engine.connect() as conn:
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence('register_document', 'id'), :n)"),
                {"n": rows},
            )
            conn.commit()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    seconds = time.perf_counter() - started
    # A sender of middling volume (about 0.5 % of the register).
    return Filled(rows, seconds, register_id, senders[len(senders) // 4].code, 1, rows)


# ----------------------------------------------------------------------------- requests


@dataclass
class Figure:
    name: str
    server: list[float]
    client: list[float]
    shown: int


SERVER_TIMES: list[float] = []


@web.middleware
async def timed(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        return await handler(request)
    finally:
        SERVER_TIMES.append(time.perf_counter() - started)


_ROW = re.compile(r'<td class="num" data-label="Số đến"><a href="/w/incoming/\d+">')


async def measure(
    http: httpx.AsyncClient, name: str, paths: Callable[[int], str], requests: int
) -> Figure:
    server: list[float] = []
    client: list[float] = []
    shown = 0
    for i in range(-2, requests):  # two warm-up requests
        SERVER_TIMES.clear()
        t0 = time.perf_counter()
        answer = await http.get(paths(i))
        elapsed = time.perf_counter() - t0
        if answer.status_code != 200:
            raise SystemExit(f"{name}: HTTP {answer.status_code} for {paths(i)}")
        if i >= 0:
            server.append(SERVER_TIMES[-1])
            client.append(elapsed)
            shown = len(_ROW.findall(answer.text))
    return Figure(name, server, client, shown)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(len(ordered) * 0.95) - 1)]


async def sign_in(http: httpx.AsyncClient) -> None:
    page = await http.get("/w/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token, "no CSRF token on the sign-in page"
    answer = await http.post(
        "/w/login",
        data={"csrf": token.group(1), "address": CLERK, "password": PASSWORD, "next": "/w/"},
    )
    if answer.status_code != 303:
        raise SystemExit(f"sign-in refused: HTTP {answer.status_code}")


async def run_pages(
    engine: Engine, filled: Filled, home: Path, requests: int, today: date
) -> list[Figure]:
    write_self_signed(home / "tls/cert.pem", home / "tls/key.pem", "localhost")
    (home / "mailsvc.toml").write_text(
        f'[server]\nhostname = "localhost"\ndomain = "{DOMAIN}"\n', encoding="utf-8"
    )
    settings = load_settings(home, environ={})
    sessions: sessionmaker[Any] = make_sessionmaker(engine)
    lockout = Lockout(5, 60, 3600)
    executor = ThreadPoolExecutor(max_workers=2)
    workspace = Workspace(
        sessions=sessions,
        auth=Authenticator(sessions, PasswordSection(), PageLimits.from_pair(lockout),
                           WorkspaceSection()),
        templates=TEMPLATES,
        blobs=BlobStore(home / "blobs"),
        executor=executor,
        previews_dir=home / "previews",
    )  # fmt: skip

    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app = make_app(
        sessions=sessions,
        password_cfg=PasswordSection(),
        lockout=lockout,
        health=health,
        registry=CollectorRegistry(),
        workspace=workspace,
    )
    app.middlewares.insert(0, timed)
    listener = await start_http(app, "127.0.0.1", 0, server_tls_context(settings))
    host, port = listener.address
    rng = random.Random(4)
    middle = filled.last_id // 2
    year = today.year - 1
    month = date(year, 3, 1)
    pages: list[tuple[str, Callable[[int], str]]] = [
        ("/healthz (baseline)", lambda i: "/healthz"),
        ("list, first page", lambda i: "/w/incoming"),
        ("list, deep page (before=)", lambda i: f"/w/incoming?before={middle - i * 997}"),
        ("filter: status", lambda i: "/w/incoming?status=in_progress"),
        ("filter: year + urgency", lambda i: f"/w/incoming?year={year}&urgency=very_urgent"),
        ("filter: agency", lambda i: "/w/incoming?" + urlencode({"agency": filled.sample_agency})),
        ("filter: overdue", lambda i: "/w/incoming?overdue=1"),
        ("filter: signature outcome", lambda i: "/w/incoming?outcome=invalid"),
        (
            "filter: date range (a month)",
            lambda i: f"/w/incoming?since={month.isoformat()}&until={(month + timedelta(days=30)).isoformat()}",  # noqa: E501
        ),
        ("search: common word", lambda i: "/w/incoming?q=trien"),
        ("search: rare word", lambda i: "/w/incoming?q=plao"),
        ("search: 4 words, no diacritics", lambda i: "/w/incoming?" + urlencode({"q": "quyet dinh ky so"})),  # noqa: E501
        ("search + filter (status)", lambda i: "/w/incoming?" + urlencode({"q": "ke hoach", "status": "in_progress"})),  # noqa: E501
        ("search, deep page (before=)", lambda i: f"/w/incoming?q=trien&before={middle - i * 997}"),
        ("document page", lambda i: f"/w/incoming/{rng.randint(1, filled.last_id)}"),
    ]  # fmt: skip
    figures: list[Figure] = []
    try:
        async with httpx.AsyncClient(
            base_url=f"https://{host}:{port}", verify=False, timeout=120
        ) as http:
            await sign_in(http)
            for name, path in pages:
                figures.append(await measure(http, name, path, requests))
    finally:
        await listener.close()
        executor.shutdown()
    return figures


def report(label: str, filled: Filled, figures: list[Figure]) -> bool:
    print(f"{label}: {filled.rows:,} register entries, filled in {filled.seconds:.0f} s")
    print(
        f"  {'page':<34} {'server p50':>10} {'p95':>8} {'round trip':>10} {'x /healthz':>10}"
        f" {'rows':>5}"
    )
    base = statistics.median(figures[0].client)
    ok = True
    for f in figures:
        server50 = statistics.median(f.server) * 1000
        over = server50 > TARGET_MS and f.name != figures[0].name
        ok &= not over
        trip = statistics.median(f.client)
        print(
            f"  {f.name:<34} {server50:7.1f} ms {p95(f.server) * 1000:5.1f} ms"
            f" {trip * 1000:7.1f} ms {trip / base:9.1f}x"
            f" {f.shown:>5}{'  OVER 200 ms' if over else ''}"
        )
    return ok


def bench(label: str, url: str, rows: int, requests: int, home: Path) -> bool:
    migrate(url)
    engine = make_engine(url)
    today = datetime.now(VIETNAM).date()
    try:
        filled = fill(engine, rows, today)
        figures = asyncio.run(run_pages(engine, filled, home, requests, today))
    finally:
        engine.dispose()
    return report(label, filled, figures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page")
    parser.add_argument(
        "--pg", metavar="ADMIN_URL", help="PostgreSQL admin URL, e.g. postgresql://postgres@127.0.0.1/test"
    )  # fmt: skip
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="mailsvc-bench-workspace-") as tmp:
        root = Path(tmp)
        if not args.skip_sqlite:
            url = f"sqlite:///{root / 'workspace.sqlite3'}"
            ok &= bench("SQLite", url, args.rows, args.requests, root / "home-sqlite")
        if args.pg:
            name = f"mailsvc_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(
                args.pg.replace("postgresql://", "postgresql+psycopg://", 1),
                isolation_level="AUTOCOMMIT",
            )
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
            try:
                url = f"{args.pg.rsplit('/', 1)[0]}/{name}"
                ok &= bench("PostgreSQL", url, args.rows, args.requests, root / "home-pg")
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
