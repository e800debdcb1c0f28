"""LimitsStage: hostile structure in, one finding out. Real messages, real archives."""

from __future__ import annotations

import asyncio
import gzip
import io
import struct
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import tests.hostile_mail as hm
from mailsvc.message import InboundMessage
from mailsvc.pipeline.limits import (
    INLINE_BYTES,
    LimitBreach,
    LimitCounters,
    LimitsStage,
    check_limits,
)
from mailsvc.policy.limits import ArchiveLimits, DecodedLimits, LimitsPolicy, load_limits_policy
from mailsvc.verdict import Status

POLICY = load_limits_policy(Path(__file__).parents[2] / "policies" / "limits.yaml")


def message(raw: bytes) -> InboundMessage:
    return InboundMessage(
        queue_id="Q1",
        mail_from=hm.SENDER,
        rcpt_tos=(hm.RECIPIENT,),
        raw=raw,
        received_at=datetime.now(UTC),
        client_ip="192.0.2.10",
    )


async def inspect(raw: bytes, policy: LimitsPolicy = POLICY) -> tuple[str, str, Any]:
    """(status, reason, payload): a LimitBreach on fail, the LimitCounters on pass."""
    (finding,) = await LimitsStage(policy).inspect(message(raw))
    assert finding.stage == "limits"
    expected = LimitBreach if finding.status is Status.FAIL else LimitCounters
    assert isinstance(finding.payload, expected)
    return finding.status.value, finding.reason, finding.payload


async def breach(raw: bytes, policy: LimitsPolicy = POLICY) -> LimitBreach:
    (finding,) = await LimitsStage(policy).inspect(message(raw))
    assert isinstance(finding.payload, LimitBreach), finding
    return finding.payload


def encrypted_zip() -> bytes:
    """A zip whose member has the "encrypted" flag set (zipfile cannot write real ones)."""
    data = bytearray(hm.zip_bytes({"secret.docx": b"x" * 100}))
    data[6:8] = struct.pack("<H", struct.unpack("<H", data[6:8])[0] | 1)
    central = data.find(b"PK\x01\x02")
    data[central + 8 : central + 10] = struct.pack(
        "<H", struct.unpack("<H", data[central + 8 : central + 10])[0] | 1
    )
    return bytes(data)


def zip_with_entries(count: int) -> bytes:
    return hm.zip_bytes({f"f{i}.txt": b"" for i in range(count)}, zipfile.ZIP_STORED)


CASES = [
    ("clean", hm.clean(), "pass", "within-limits"),
    ("eicar-zip-is-not-a-bomb", hm.eicar_zipped(), "pass", "within-limits"),
    ("forwarded-10-deep", hm.nested_messages(4), "pass", "within-limits"),
    ("multipart-at-limit", hm.deep_nesting(10), "pass", "within-limits"),
    ("multipart-too-deep", hm.deep_nesting(11), "fail", "mime-depth-exceeded"),
    ("multipart-5000-deep", hm.deep_nesting(5000), "fail", "mime-depth-exceeded"),
    ("forwarded-too-deep", hm.nested_messages(12), "fail", "mime-depth-exceeded"),
    ("parts-at-limit", hm.many_parts(499), "pass", "within-limits"),
    ("too-many-parts", hm.many_parts(600), "fail", "mime-parts-exceeded"),
    ("100k-parts", hm.many_parts(100_000), "fail", "mime-parts-exceeded"),
    ("huge-header-block", hm.huge_header(), "fail", "header-too-large"),
    (
        "too-many-fields",
        hm.huge_header(total=300 * 1024, line=100),
        "fail",
        "header-fields-exceeded",
    ),
    ("long-header-line", hm.long_header_line(), "fail", "header-line-too-long"),
    ("42-zip", hm.with_attachment(hm.zip_bomb(), "42.zip"), "fail", "archive-nesting-exceeded"),
    ("ratio-bomb", hm.with_attachment(hm.ratio_bomb(), "zeros.zip"), "fail", "archive-bomb"),
    (
        "gzip-bomb",
        hm.with_attachment(gzip.compress(bytes(64 * 1024 * 1024)), "x.gz", "gzip"),
        "fail",
        "archive-bomb",
    ),
    (
        "too-many-entries",
        hm.with_attachment(zip_with_entries(6000), "many.zip"),
        "fail",
        "archive-entries-exceeded",
    ),
    (
        "broken-zip",
        hm.with_attachment(b"PK\x03\x04" + b"\x00" * 100, "broken.zip"),
        "fail",
        "archive-unreadable",
    ),
    (
        "encrypted-zip-allowed",
        hm.with_attachment(encrypted_zip(), "secret.zip"),
        "pass",
        "within-limits",
    ),
]


@pytest.mark.parametrize(("raw", "status", "reason"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
async def test_default_policy(raw: bytes, status: str, reason: str) -> None:
    started = time.perf_counter()
    got_status, got_reason, payload = await inspect(raw)
    assert (got_status, got_reason) == (status, reason), payload
    assert time.perf_counter() - started < 2.0


async def test_breach_payload_names_the_limit_and_part() -> None:
    (finding,) = await LimitsStage(POLICY).inspect(message(hm.deep_nesting(11)))
    assert finding.reason == "mime-depth-exceeded"
    assert isinstance(finding.payload, LimitBreach)
    got = finding.payload
    assert (got.limit, got.maximum, got.observed, got.part, got.member) == (
        "mime.max_depth", 10, 11, "1.1.1.1.1.1.1.1.1.1", "",
    )  # fmt: skip
    # The record stored with the message keeps the form it always had.
    assert finding.summary()["evidence"] == {
        "limit": "mime.max_depth",
        "maximum": 10,
        "observed": 11,
        "part": "1.1.1.1.1.1.1.1.1.1",
    }


async def test_42_zip_is_a_bomb_when_nesting_is_allowed() -> None:
    """With deep nesting allowed, the declared sizes of the innermost level give it away."""
    policy = POLICY.model_copy(update={"archives": ArchiveLimits(max_depth=10)})
    status, reason, found = await inspect(hm.with_attachment(hm.zip_bomb(), "42.zip"), policy)
    assert (status, reason) == ("fail", "archive-bomb")
    assert found.member.count(".zip/") == 3


async def test_total_declared_size_is_limited_even_without_ratio() -> None:
    stored = hm.zip_bytes({"a.bin": bytes(3 * 1024 * 1024)}, zipfile.ZIP_STORED)
    policy = POLICY.model_copy(update={"archives": ArchiveLimits(max_total_bytes=2 * 1024 * 1024)})
    found = await breach(hm.with_attachment(stored, "a.zip"), policy)
    assert (found.reason, found.limit) == ("archive-bomb", "archives.max_total_bytes")


async def test_nested_archive_depth_counts_zip_in_gzip_in_zip() -> None:
    inner = hm.zip_bytes({"doc.txt": b"hello"})
    middle = gzip.compress(inner)
    outer = hm.zip_bytes({"middle.gz": middle})
    raw = hm.with_attachment(outer, "outer.zip")
    assert (await inspect(raw))[1] == "within-limits"
    policy = POLICY.model_copy(update={"archives": ArchiveLimits(max_depth=2)})
    found = await breach(raw, policy)
    assert found.reason == "archive-nesting-exceeded"
    assert found.member == "middle.gz/(gzip)"


async def test_zip_renamed_and_prefixed_is_still_found() -> None:
    """A self-extracting style zip (data before the archive) under a harmless name."""
    bomb = b"MZ" + bytes(1000) + hm.ratio_bomb()
    status, reason, _ = await inspect(hm.with_attachment(bomb, "photo.jpg", "octet-stream"))
    assert (status, reason) == ("fail", "archive-bomb")


async def test_encrypted_members_can_be_refused() -> None:
    policy = POLICY.model_copy(update={"archives": ArchiveLimits(refuse_encrypted=True)})
    _, reason, _ = await inspect(hm.with_attachment(encrypted_zip(), "secret.zip"), policy)
    assert reason == "archive-encrypted"


async def test_unreadable_archives_can_be_allowed() -> None:
    policy = POLICY.model_copy(update={"archives": ArchiveLimits(refuse_unreadable=False)})
    raw = hm.with_attachment(b"PK\x03\x04" + b"\x00" * 100, "broken.zip")
    assert (await inspect(raw, policy))[1] == "within-limits"


async def test_decoded_size_per_part_and_total() -> None:
    raw = hm.with_attachment(bytes(range(256)) * 4096, "data.bin", "octet-stream")  # 1 MiB
    small = POLICY.model_copy(update={"decoded": DecodedLimits(max_part_bytes=512 * 1024)})
    found = await breach(raw, small)
    assert (found.reason, found.limit, found.observed) == (
        "decoded-size-exceeded", "decoded.max_part_bytes", 1024 * 1024,
    )  # fmt: skip
    total = POLICY.model_copy(
        update={"decoded": DecodedLimits(max_part_bytes=2 * 1024 * 1024, max_total_bytes=1024**2)}
    )
    found = await breach(raw, total)
    assert (found.reason, found.limit) == ("decoded-size-exceeded", "decoded.max_total_bytes")


async def test_counters_reported_on_pass() -> None:
    _, reason, counters = await inspect(hm.eicar_zipped())
    assert reason == "within-limits"
    assert counters.archives == 1 and counters.archive_entries == 1
    assert counters.archive_bytes == len(hm.EICAR)


HOSTILE = {
    "boundary-storm": (
        b'Content-Type: multipart/mixed; boundary="a"\r\n\r\n'
        + b'--a\r\nContent-Type: multipart/mixed; boundary="a"\r\n\r\n' * 200_000
    ),
    "continuation-storm": b"Subject: x\r\n" + b" y\r\n" * 1_000_000 + b"\r\nbody",
    "param-storm": b"Content-Type: multipart/mixed" + b'; a="' * 40_000 + b"\r\n\r\nx",
    "bad-base64": b"Content-Transfer-Encoding: base64\r\n\r\n" + b"!!=A=B=" * 500_000,
    "nul-bytes": bytes(5 * 1024 * 1024),
    "no-header-end": b"X-A: " + b"b" * 10_000,
    "truncated-gzip": b"Content-Transfer-Encoding: binary\r\n\r\n"
    + gzip.compress(bytes(10 * 1024 * 1024))[:5000],
}


@pytest.mark.parametrize("raw", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_input_ends_quickly(raw: bytes) -> None:
    started = time.perf_counter()
    breach, _ = check_limits(raw, POLICY)
    assert time.perf_counter() - started < 3.0
    assert breach is None or breach.reason


def test_hostile_results() -> None:
    assert check_limits(HOSTILE["boundary-storm"], POLICY)[0].reason in (  # type: ignore[union-attr]
        "mime-parts-exceeded", "mime-depth-exceeded",
    )  # fmt: skip
    assert check_limits(HOSTILE["continuation-storm"], POLICY)[0].reason == (  # type: ignore[union-attr]
        "header-too-large"
    )


async def test_runs_in_a_process_pool() -> None:
    with ProcessPoolExecutor(max_workers=1) as pool:
        (finding,) = await LimitsStage(POLICY, pool).inspect(message(hm.deep_nesting(20)))
    assert (finding.status, finding.reason) == (Status.FAIL, "mime-depth-exceeded")


def test_zip_bomb_sample_declares_hundreds_of_gigabytes() -> None:
    """Guard on the test data itself: the bomb is what it claims to be."""
    bomb = hm.zip_bomb()
    assert len(bomb) < 64 * 1024
    with zipfile.ZipFile(io.BytesIO(bomb)) as archive:
        assert len(archive.infolist()) == 16


class _RecordingThreads(ThreadPoolExecutor):
    """The loop's default executor, noting for each task whether the message's
    originator was parsed by the time the task returned (in the task's thread)."""

    def __init__(self, msg: InboundMessage) -> None:
        super().__init__(max_workers=1)
        self.msg = msg
        self.parsed_in_task: list[bool] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        def run() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                self.parsed_in_task.append("originator" in self.msg.__dict__)

        return super().submit(run)


async def inspect_recording(msg: InboundMessage) -> tuple[Status, list[bool]]:
    """The stage's status, and for each thread task it ran whether the originator had
    been parsed when the task returned."""
    threads = _RecordingThreads(msg)
    asyncio.get_running_loop().set_default_executor(threads)
    try:
        (finding,) = await LimitsStage(POLICY).inspect(msg)
    finally:
        threads.shutdown()
    return finding.status, threads.parsed_in_task


async def inspect_in_threads(raw: bytes) -> tuple[Status, list[bool]]:
    return await inspect_recording(message(raw))


async def test_a_large_message_is_walked_and_its_originator_read_in_one_thread_task() -> None:
    """Within limits, the stage parses From:/Sender:/Reply-To: in the same thread task
    as its walk (each trip to a thread costs the event loop a submit and a wake-up)."""
    raw = hm.with_attachment(b"x" * 70 * 1024, "phu-luc.txt", "octet-stream")
    assert len(raw) > INLINE_BYTES
    assert await inspect_in_threads(raw) == (Status.PASS, [True])


async def test_a_small_message_is_walked_on_the_event_loop() -> None:
    """Below INLINE_BYTES the walk and the originator parse cost less than the trip to a
    thread: no thread task, the same finding."""
    msg = message(hm.clean())
    assert len(msg.raw) <= INLINE_BYTES
    assert await inspect_recording(msg) == (Status.PASS, [])
    assert msg.originator_if_parsed is not None and msg.originator.from_address


async def test_an_archive_in_a_small_message_is_read_in_a_thread() -> None:
    """Reading an archive's members (decompression, up to the ratio and size limits) is
    never done on the event loop: the inline walk stops at the archive and the message
    is walked again in a thread, where the bomb is found."""
    harmless = hm.with_attachment(hm.zip_bytes({"a.txt": b"van ban"}), "ho-so.zip")
    (finding,) = await LimitsStage(POLICY).inspect(message(harmless))
    assert finding.status is Status.PASS
    assert isinstance(finding.payload, LimitCounters) and finding.payload.archives == 1
    small_bomb = hm.with_attachment(hm.zip_bomb(levels=2, fan_out=4), "ho-so.zip")
    assert len(small_bomb) <= INLINE_BYTES
    assert await inspect_in_threads(small_bomb) == (Status.FAIL, [False])


async def test_a_harmless_archive_in_a_small_message_takes_one_thread_task() -> None:
    harmless = hm.with_attachment(hm.zip_bytes({"a.txt": b"van ban"}), "ho-so.zip")
    assert await inspect_in_threads(harmless) == (Status.PASS, [True])


async def test_a_breach_is_reported_without_parsing_the_originator() -> None:
    assert await inspect_in_threads(hm.deep_nesting(40)) == (Status.FAIL, [])
    msg = message(hm.deep_nesting(40))
    await LimitsStage(POLICY).inspect(msg)
    assert msg.originator_if_parsed is None
