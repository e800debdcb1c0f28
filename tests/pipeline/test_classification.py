"""ClassificationStage on the labelled corpus (precision and recall must be 1.0) and on
unreadable, hostile and policy cases. Real extractor, real worker pool, real policy file."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pypdf
import pytest

from mailsvc.documents.extract import DocumentPart, ExtractionLimits, Source, TextExtractor
from mailsvc.documents.markings import MarkingDetector, MarkingMatch, fold, visible
from mailsvc.documents.pool import WorkerPool
from mailsvc.errors import ConfigError
from mailsvc.message import InboundMessage
from mailsvc.pipeline.classification import ClassificationResult, ClassificationStage
from mailsvc.policy.classification import (
    ClassificationPolicy,
    Unreadable,
    load_classification_policy,
)
from mailsvc.verdict import Finding, Status
from tests.documents.samples import PDF_TYPE, Sample, attach, load_corpus, make_pdf, message

POLICY_FILE = Path(__file__).resolve().parents[2] / "policies" / "classification.yaml"


def with_extras(policy: ClassificationPolicy) -> ClassificationPolicy:
    extra = policy.categories["khieu-nai-to-cao"].model_copy(update={"enabled": True})
    return policy.model_copy(
        update={"categories": {**policy.categories, "khieu-nai-to-cao": extra}}
    )


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(2)
    yield workers
    workers.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def corpus() -> list[tuple[Sample, bytes]]:
    return [(sample, sample.build().as_bytes()) for sample in load_corpus()]


def inbound(raw: bytes, queue_id: str = "Q1") -> InboundMessage:
    return InboundMessage(
        queue_id=queue_id,
        mail_from="vanthu@ubnd.example.vn",
        rcpt_tos=("vanthu@stttt.example.vn",),
        raw=raw,
        received_at=datetime.now(UTC),
    )


def _deciding(finding: Finding) -> MarkingMatch:
    """The marking that decided a refusal, read from the typed payload."""
    assert isinstance(finding.payload, ClassificationResult), finding
    assert finding.payload.deciding is not None, finding
    return finding.payload.deciding


def stage_for(pool: WorkerPool, policy: ClassificationPolicy | None = None) -> ClassificationStage:
    policy = policy or with_extras(load_classification_policy(POLICY_FILE))
    return ClassificationStage(policy, TextExtractor(pool), executor=None)


async def test_corpus_precision_and_recall(
    pool: WorkerPool, corpus: list[tuple[Sample, bytes]]
) -> None:
    stage = stage_for(pool)
    assert len(corpus) >= 40
    kinds = {s.kind for s, _ in corpus}
    assert {"pdf", "docx", "body", "html", "subject", "filename"} <= kinds
    results = await asyncio.gather(*(stage.inspect(inbound(raw, s.id)) for s, raw in corpus))
    tp = fp = fn = tn = 0
    wrong: list[str] = []
    for (sample, _), findings in zip(corpus, results, strict=True):
        (finding,) = findings
        assert finding.status in (Status.PASS, Status.FAIL), (sample.id, finding)
        flagged = finding.status is Status.FAIL
        positive = sample.expect != "clean"
        level = _deciding(finding).category if flagged else "clean"
        if positive and flagged:
            tp += 1
        elif positive:
            fn += 1
        elif flagged:
            fp += 1
        else:
            tn += 1
        if level != sample.expect:
            wrong.append(f"{sample.id}: expected {sample.expect}, got {level} ({finding.detail})")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    print(
        f"\nclassification corpus: {len(corpus)} documents, {tp + fn} positive, {tn + fp} clean;"
        f" precision {precision:.3f} recall {recall:.3f}"
    )
    assert not wrong, "\n".join(wrong)
    assert precision == 1.0 and recall == 1.0


async def test_payload_names_rule_level_and_place_but_no_content(
    pool: WorkerPool, corpus: list[tuple[Sample, bytes]]
) -> None:
    raw = dict((s.id, r) for s, r in corpus)["docx-in-zip"]
    (finding,) = await stage_for(pool).inspect(inbound(raw))
    assert finding.status is Status.FAIL and finding.reason == "classified-content"
    match = _deciding(finding)
    assert (match.rule, match.category, match.title) == ("stamp", "toi-mat", "Tối mật")
    assert (match.source, match.location) == ("attachment", "attachment 1 > member 1")
    assert len(match.part_sha256) == 64 and match.line == 2
    assert finding.summary()["evidence"]["where"] == "attachment 1 > member 1"
    dumped = json.dumps(finding.summary(), ensure_ascii=False)
    for content in ("CÔNG AN TỈNH", "901/CAT", "TỐI MẬT", "ho-so"):
        assert content not in dumped
    assert isinstance(finding.payload, ClassificationResult)
    assert finding.payload.title == "Tối mật" and finding.payload.level == "toi-mat"


async def test_complaints_pass_when_the_extra_category_is_off(
    pool: WorkerPool, corpus: list[tuple[Sample, bytes]]
) -> None:
    stage = stage_for(pool, load_classification_policy(POLICY_FILE))  # shipped: extras off
    for sample, raw in corpus:
        if sample.expect == "khieu-nai-to-cao":
            (finding,) = await stage.inspect(inbound(raw))
            assert finding.status is Status.PASS, sample.id


async def test_strongest_level_wins() -> None:
    msg = message("[MẬT] Báo cáo", "Độ mật: Tuyệt mật\n")
    stage = ClassificationStage(load_classification_policy(POLICY_FILE), TextExtractor(None))
    (finding,) = await stage.inspect(inbound(msg.as_bytes()))
    assert isinstance(finding.payload, ClassificationResult)
    assert finding.payload.level == "tuyet-mat" and len(finding.payload.matches) == 2


def _encrypted_pdf() -> bytes:
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(make_pdf("Nội dung")))
    writer.encrypt(user_password="k", owner_password="o", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "setting", "status", "reason"),
    [
        ("encrypted", Unreadable.REFUSE, Status.FAIL, "unreadable-content"),
        ("encrypted", Unreadable.ERROR, Status.ERROR, "extraction-failed"),
        ("encrypted", Unreadable.IGNORE, Status.PASS, "no-marking"),
        ("corrupt", Unreadable.ERROR, Status.ERROR, "extraction-failed"),
        ("corrupt", Unreadable.IGNORE, Status.PASS, "no-marking"),
    ],
)
async def test_unreadable_parts_follow_the_policy(
    pool: WorkerPool, data: str, setting: Unreadable, status: Status, reason: str
) -> None:
    policy = load_classification_policy(POLICY_FILE)
    unreadable = policy.unreadable.model_copy(update={data: setting})
    policy = policy.model_copy(update={"unreadable": unreadable})
    blob = _encrypted_pdf() if data == "encrypted" else b"%PDF-1.4\n garbage \x00\x01"
    msg = message()
    attach(msg, blob, "van-ban.pdf", PDF_TYPE)
    (finding,) = await stage_for(pool, policy).inspect(inbound(msg.as_bytes()))
    assert (finding.status, finding.reason) == (status, reason)
    if status is not Status.PASS:
        assert isinstance(finding.payload, ClassificationResult)
        assert finding.payload.kinds == [data]


async def test_a_marking_wins_over_an_unreadable_part(pool: WorkerPool) -> None:
    msg = message("TỐI MẬT - Kế hoạch")
    attach(msg, b"%PDF-1.4 broken", "x.pdf", PDF_TYPE)
    (finding,) = await stage_for(pool).inspect(inbound(msg.as_bytes()))
    assert finding.reason == "classified-content" and _deciding(finding).category == "toi-mat"


async def test_extraction_timeout_is_an_error_finding(pool: WorkerPool) -> None:
    msg = message()
    pdf = make_pdf("Nội dung của văn bản hành chính.\n" * 400)
    for n in range(8):  # far more work than the 1 ms allowed, even on a loaded machine
        attach(msg, pdf, f"a{n}.pdf", PDF_TYPE)
    policy = load_classification_policy(POLICY_FILE)
    stage = ClassificationStage(policy, TextExtractor(pool, ExtractionLimits(timeout_s=0.001)))
    (finding,) = await stage.inspect(inbound(msg.as_bytes()))
    assert (finding.status, finding.reason) == (Status.ERROR, "extraction-failed")
    assert "timed out" in finding.detail
    assert isinstance(finding.payload, ClassificationResult)
    assert finding.payload.kinds == ["timeout"]


def test_shipped_policy_loads_with_three_levels_and_extras_off() -> None:
    policy = load_classification_policy(POLICY_FILE)
    assert [code for code, _ in policy.enabled()] == ["tuyet-mat", "toi-mat", "mat"]
    assert policy.categories["khieu-nai-to-cao"].enabled is False
    detector = MarkingDetector(policy)
    assert {m.printed for m in detector.markings} == {"TUYỆT MẬT", "TỐI MẬT", "MẬT"}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("version: 1\ncategories: {}\n", "categories"),
        ("categories: {mat: {title: Mật, markings: [MẬT]}}\n", "version"),
        (
            "version: '1'\nunreadable: {corrupt: maybe}\n"
            "categories: {mat: {title: M, markings: [M]}}",
            "unreadable.corrupt",
        ),
        (
            "version: '1'\ncategories:\n  mat: {title: Mật, markings: []}\n",
            "categories.mat.markings",
        ),
        (
            "version: '1'\ncategories:\n  mat: {title: Mật, markings: [MẬT], colour: red}\n",
            "categories.mat.colour",
        ),
        ("version: '1'\ncategories:\n  'Mật!': {title: Mật, markings: [MẬT]}\n", "categories"),
    ],
)
def test_invalid_policy_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "classification.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_classification_policy(path)
    assert str(path) in str(info.value) and f"'{key}'" in str(info.value)


def test_fold() -> None:
    assert fold("TỐI MẬT") == "toi mat" and fold("Đơn khiếu nại") == "don khieu nai"


async def test_long_texts_are_scanned_off_the_event_loop() -> None:
    prose = "Tỉnh ủy yêu cầu bảo mật thông tin và bảo vệ mật khẩu hộp thư công vụ.\n" * 4000
    msg = message(body=prose + "\nĐộ mật: Tuyệt mật\n")
    executor = ThreadPoolExecutor(max_workers=1)
    try:
        policy = load_classification_policy(POLICY_FILE)
        stage = ClassificationStage(policy, TextExtractor(None), executor)
        (finding,) = await stage.inspect(inbound(msg.as_bytes()))
    finally:
        executor.shutdown()
    match = _deciding(finding)
    assert match.category == "tuyet-mat" and match.line == 4002


@pytest.mark.parametrize(
    ("text", "seen"),
    [
        ("Tối mật", "Tối mật"),  # a Vietnamese text: returned as it is
        ("Nội dung “trích dẫn” – 2026. " * 200, "Nội dung “trích dẫn” – 2026. " * 200),
        ("TỐI\u200bMẬT", "TỐIMẬT"),  # zero-width space dropped
        ("\ufeffMẬT\u00ad", "MẬT"),  # byte-order mark, soft hyphen
        ("ＴỐＩ ＭẬＴ", "TỐI MẬT"),  # full-width (NFKC)
        ("ТỐI МẬТ", "TỐI MẬT"),  # Cyrillic Т and М
        ("ΜẬΤ", "MẬT"),  # Greek Μ and Τ
        ("µ", "μ"),  # NFKC makes a Greek letter that reads as no Latin one
        ("\u202eTẬM\u202c", "TẬM"),  # direction controls dropped
    ],
)
def test_a_text_is_read_as_a_reader_sees_it(text: str, seen: str) -> None:
    assert visible(text) == seen


def test_a_stamp_on_one_line_of_many_is_found_and_a_text_without_a_trigger_is_skipped() -> None:
    """The line rules first look for a trigger in the whole text (case folded, spaces
    removed): a text that has one in a single line, spaced out or in capitals, is read
    line by line as before."""
    detector = MarkingDetector(load_classification_policy(POLICY_FILE))

    def part(text: str) -> DocumentPart:
        return DocumentPart(
            source=Source.BODY, filename="", content_type="text/plain", sha256="", text=text,
            location="body", depth=0, properties={}, truncated=False, pages=0, ocr_pages=0,
            ocr_images=0,
        )  # fmt: skip

    prose = "Nội dung văn bản thử nghiệm hiệu năng.\n" * 300
    assert detector.scan_part(part(prose)) == []
    for stamp in ("MẬT", "M Ậ T", "TỐI MẬT", "T U Y Ệ T  M Ậ T"):
        found = detector.scan_part(part(prose + stamp + "\n" + prose))
        assert [m.rule for m in found] == ["stamp"], stamp
        assert found[0].line == 301
