"""Malformed input to the workspace answers 400 or 404 with a message, never a 500: ids
and numbers that are not plain ASCII digits or do not fit the database's integers, dates
outside any register's years, and line breaks in single-line fields."""

from __future__ import annotations

from tests.e2e.conftest import RunningServer, server, service_home
from tests.web.workspace_setup import CLERK, client, seed_workspace, sign_in

__all__ = ["server", "service_home"]  # fixtures used here

ARABIC_INDIC = "".join(chr(0x0660 + i % 10) for i in range(30))  # ٠١٢٣…, 30 digits


async def test_ids_and_numbers_that_are_not_ascii_digits_or_too_big_answer_400_or_404(
    server: RunningServer,
) -> None:
    """A superscript two passes ``str.isdigit`` but not ``int``; 20 digits overflow
    SQLite's integers, 2**31 PostgreSQL's; 5000 digits pass Python's int digit limit;
    Arabic-Indic digits match a ``\\d`` route; PostgreSQL refuses a NUL in text."""
    seeded = await seed_workspace(server)
    doc = f"/w/incoming/{seeded.document_id}"
    async with client(server) as http:
        await sign_in(http, CLERK)
        for path in (
            "/w/incoming/2147483648",  # over PostgreSQL's integer
            "/w/incoming/999999999999999999",
            "/w/incoming/99999999999999999999",
            "/w/incoming/" + "9" * 5000,
            f"/w/incoming/{ARABIC_INDIC}",
            f"{doc}/preview/{'1' * 5000}.png",
            f"{doc}/files/99999999999999999999",
        ):
            answer = await http.get(path)
            assert answer.status_code == 404, (path[:60], answer.status_code)
            assert "Không tìm thấy" in answer.text, path[:60]
        for path in ("/w/incoming", "/w/mine"):
            for before in ("²", "1²", "2147483648", "9" * 30, "-1"):
                answer = await http.get(path, params={"before": before})
                assert answer.status_code == 400, (path, before, answer.status_code)
                assert "before" in answer.text, (path, before)
            assert (await http.get(path, params={"before": "5"})).status_code == 200
        for year in ("²", "²⁰²⁶", "٢٠٢٦", "9" * 150):
            answer = await http.get("/w/incoming", params={"year": year})
            assert answer.status_code == 200, (year, answer.status_code)
            assert "Năm không hợp lệ: bỏ qua." in answer.text, year
        odd_agency = await http.get("/w/incoming", params={"agency": "000.00\x0031.H56"})
        assert odd_agency.status_code == 200 and "Mã cơ quan không hợp lệ" in odd_agency.text


async def test_dates_outside_the_years_1900_to_2999_are_refused_not_a_crash(
    server: RunningServer,
) -> None:
    """The list drops such a date with a note (as any bad filter), the export and the forms
    refuse it with 400; before, date arithmetic or the SQL binding overflowed (500)."""
    seeded = await seed_workspace(server)
    doc = f"/w/incoming/{seeded.document_id}"
    bad_dates = (
        ("until", "9999-12-31"),
        ("since", "0001-01-01"),
        ("until", "31/12/9999"),
        ("since", "01/01/1899"),
    )
    async with client(server) as http:
        csrf = await sign_in(http, CLERK)
        for key, value in bad_dates:
            listing = await http.get("/w/incoming", params={key: value})
            assert listing.status_code == 200, (key, value, listing.status_code)
            assert "từ năm 1900 đến năm 2999" in listing.text and "Bỏ qua" in listing.text
            for fmt in ("csv", "html", "pdf"):
                export = await http.get("/w/incoming/export", params={"format": fmt, key: value})
                assert export.status_code == 400, (fmt, key, value, export.status_code)
                assert "từ năm 1900 đến năm 2999" in export.text, (fmt, key, value)
        # A good period still exports; the edges of the range are accepted.
        edges = await http.get(
            "/w/incoming/export",
            params={"format": "csv", "since": "1900-01-01", "until": "31/12/2999"},
        )
        assert edges.status_code == 200
        late = await http.post(
            f"{doc}/assign", data={"csrf": csrf, "assignee": CLERK, "deadline": "9999-12-31"}
        )
        assert late.status_code == 400 and "từ năm 1900 đến năm 2999" in late.text
        paper = await http.post(
            "/w/incoming/new",
            data={
                "csrf": csrf,
                "agency_name": "UBND huyện Đắk Mil",
                "abstract": "V/v báo cáo",
                "issued_date": "0001-01-01",
            },
            files={"file": ("", b"", "text/plain")},
        )
        assert paper.status_code == 400 and "từ năm 1900 đến năm 2999" in paper.text
