"""``mailsvc inspect``: the real command in a subprocess on generated documents (text layer,
DOCX, a scan read by OCR, a mail); what it shows and its exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from tests.documents import generator


def inspect(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailsvc", "--home", str(home), "inspect", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def pick(**want: object) -> generator.Doc:
    for doc in generator.corpus():
        if all(getattr(doc, k) == v for k, v in want.items()):
            return doc
    raise LookupError(want)


def test_inspect_shows_marking_place_source_and_metadata(tmp_path: Path) -> None:
    stamped = pick(fmt="pdf", position="under-number", form="boxed", style="state")
    clean = pick(fmt="docx", trap="urgency-stamp")
    (tmp_path / "stamped.pdf").write_bytes(generator.build(stamped))
    (tmp_path / "clean.docx").write_bytes(generator.build(clean))
    result = inspect(tmp_path / "home", str(tmp_path / "stamped.pdf"))
    assert result.returncode == 2, result.stderr
    out = result.stdout
    assert "text: text layer" in out
    assert f"{generator.TITLES[stamped.level or '']} ({stamped.level})" in out
    assert "under the number (Decree 30 box 10a)" in out
    assert f"number_notation  {stamped.truth.number}  (số, ký hiệu; from header)" in out
    assert "decision: refused: classified content" in out

    result = inspect(tmp_path / "home", "--json", str(tmp_path / "clean.docx"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["markings"] == [] and report["unreadable"] == []
    assert report["metadata"]["number_notation"] == clean.truth.number
    assert report["metadata"]["urgency"] == clean.truth.urgency
    assert report["metadata"]["sources"]["urgency"] == "header"
    assert report["parts"][0]["text_source"] == "text layer"


def test_inspect_reads_a_scan_by_ocr_and_a_mail(tmp_path: Path) -> None:
    doc = replace(pick(fmt="pdf", position="under-abstract", form="plain"), scan_dpi=300)
    (tmp_path / "scan.pdf").write_bytes(generator.build(doc))
    (tmp_path / "mail.eml").write_bytes(
        generator.mail(pick(fmt="body", trap="mat-khau")).as_bytes()
    )
    result = inspect(
        tmp_path / "home", "--json", str(tmp_path / "scan.pdf"), str(tmp_path / "mail.eml")
    )
    assert result.returncode == 2, result.stderr
    scan, mail = (json.loads(line) for line in result.stdout.splitlines())
    assert scan["parts"][0]["text_source"] == "OCR" and scan["parts"][0]["ocr_pages"] == [1]
    [marking] = scan["markings"]
    assert marking["level"] == doc.level
    assert marking["place"] == "header, left column, under the abstract (V/v)"
    assert mail["markings"] == [] and mail["parts"] == []


def test_inspect_reads_a_text_file_as_a_mail_text(tmp_path: Path) -> None:
    """A document typed as text (the corpus writes the mail-body ones as .txt): read as a
    mail's text, markings and metadata alike."""
    doc = pick(fmt="body", position="under-abstract", form="plain")
    (tmp_path / "van-ban.txt").write_bytes(generator.build(doc))
    result = inspect(tmp_path / "home", "--json", str(tmp_path / "van-ban.txt"))
    assert result.returncode == 2, result.stderr
    report = json.loads(result.stdout)
    [marking] = report["markings"]
    assert marking["level"] == doc.level
    assert report["metadata_from"] == "body"
    assert report["metadata"]["number_notation"] == doc.truth.number
    assert report["metadata"]["issued_date"] == doc.truth.issued.isoformat()


def test_inspect_survives_hostile_text_files(tmp_path: Path) -> None:
    """Bytes that are not UTF-8, an empty file and random bytes named .txt: read with
    replacement characters, an answer for each, no traceback."""
    (tmp_path / "bad.txt").write_bytes(b"T\xe1\xba\xa0I\xff\xfe LI\xc3\x8aU M\xe1\xba\xacT\n")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "noise.txt").write_bytes(bytes(range(256)) * 400)
    names = ("bad.txt", "empty.txt", "noise.txt")
    result = inspect(tmp_path / "home", "--json", *(str(tmp_path / n) for n in names))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["file"] for r in reports] == [str(tmp_path / n) for n in names]
    assert all(r["markings"] == [] and r["metadata_from"] == "body" for r in reports)


def test_inspect_missing_file_is_one_line_error(tmp_path: Path) -> None:
    result = inspect(tmp_path / "home", str(tmp_path / "nothing.pdf"))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error:") and "Traceback" not in result.stderr
