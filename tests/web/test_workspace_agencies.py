"""The workspace on a server hosting two agencies: what one agency's people see of the
other's register and mailboxes on the dashboard, the admin overview and exports."""

from __future__ import annotations

import re

import httpx

from mailsvc.db.base import utcnow
from mailsvc.jobs.models import JobRun
from mailsvc.register.queries import local_today
from mailsvc.time import VIETNAM
from tests.e2e.conftest import RunningServer, server, service_home
from tests.web.workspace_setup import (
    ADMIN,
    CLERK,
    LEADER,
    OTHER_ADMIN,
    OTHER_CLERK,
    OTHER_LEADER,
    add_other_agency,
    client,
    form_token,
    seed_workspace,
    sign_in,
)

__all__ = ["server", "service_home"]  # fixtures used here

OTHER_AUTHOR = "UBND huyện Mù Cang Chải"  # writes only to the other agency


async def record_paper(http: httpx.AsyncClient, csrf: str, **fields: str) -> httpx.Response:
    """POST /w/incoming/new as the signed-in clerk: a paper document without a scan."""
    data = {
        "csrf": csrf,
        "agency_name": OTHER_AUTHOR,
        "number_notation": "45/UBND-TC",
        "doc_type": "Công văn",
        "abstract": "V/v quyết toán ngân sách huyện năm 2026",
        **fields,
    }
    return await http.post("/w/incoming/new", data=data, files={"file": ("", b"", "text/plain")})


def svg_titled(page: str, title: str) -> str:
    """The SVG chart of ``page`` whose title starts with ``title``."""
    found = re.search(rf'<svg[^>]*aria-label="{re.escape(title)}[^"]*".*?</svg>', page, re.S)
    assert found, f"no chart {title!r}"
    return found.group(0)


async def test_dashboard_charts_count_only_the_agencys_own_register(
    server: RunningServer,
) -> None:
    """Charts, monthly counts, status mix and median times of Tổng quan: an agency's clerk
    and leader count their own register only, never documents that went to another agency
    served by the same server."""
    await seed_workspace(server)  # one document for our agency (by mail, registered)
    add_other_agency(server)
    async with client(server) as http:  # the other agency: a paper document, completed
        csrf = await sign_in(http, OTHER_CLERK)
        answer = await record_paper(http, csrf)
        assert answer.status_code == 303, answer.text
        doc = answer.headers["location"].split("?")[0]
        page = await http.get(doc)
        done = await http.post(
            f"{doc}/status",
            data={"csrf": form_token(page.text), "status": "done", "reason": "Đã giải quyết"},
        )
        assert done.status_code == 303, done.text
    today = local_today(VIETNAM)
    this_month = f"Tháng {today.month}/{today.year}: 1 văn bản"
    for ours in (LEADER, CLERK):
        async with client(server) as http:
            await sign_in(http, ours)
            board = await http.get("/w/dashboard")
        assert board.status_code == 200
        text = board.text
        assert OTHER_AUTHOR not in text, ours
        assert this_month in svg_titled(text, "Văn bản đến theo tháng"), ours
        assert "Thông tin" in svg_titled(text, "Văn bản đến năm")  # our own correspondent
        status = svg_titled(text, "Trạng thái văn bản đến")
        assert "Đã tiếp nhận: 1" in status and "Đã hoàn thành" not in status, ours
        assert "tới khi hoàn thành: chưa có số liệu" in text, ours
    # The other agency's leader sees their own document, and nothing of ours.
    async with client(server) as http:
        await sign_in(http, OTHER_LEADER)
        board = await http.get("/w/dashboard")
    text = board.text
    assert this_month in svg_titled(text, "Văn bản đến theo tháng")
    by_author = svg_titled(text, "Văn bản đến năm")
    assert OTHER_AUTHOR in by_author and "Thông tin" not in by_author
    status = svg_titled(text, "Trạng thái văn bản đến")
    assert "Đã hoàn thành: 1" in status and "Đã tiếp nhận" not in status
    assert "tới khi hoàn thành: <strong>" in text


async def test_admin_overview_shows_the_agencys_mailboxes_and_server_figures_to_operators(
    server: RunningServer,
) -> None:
    """/w/admin: a leader or administrator sees the mailboxes of their own agency (or mail
    domain) only; the outbound queue and the job runs, which are the whole server's, only
    an administrator who belongs to no agency (the server's operator) sees."""
    await seed_workspace(server)  # its status notice to the sender waits in the queue
    add_other_agency(server)
    summary = "overdue reminders: 3 sent (Sở Tài chính 2, Sở TTTT 1)"
    with server.app.sessions.begin() as session:
        session.add(
            JobRun(job="overdue-reminders", scheduled_for=utcnow(), node="n1", summary=summary)
        )

    async def overview(address: str) -> str:
        async with client(server) as http:
            await sign_in(http, address)
            answer = await http.get("/w/admin")
        assert answer.status_code == 200, address
        return answer.text

    ours, theirs = (CLERK, LEADER, ADMIN), (OTHER_CLERK, OTHER_LEADER, OTHER_ADMIN)
    for viewer, shown, hidden in (
        (LEADER, ours, theirs),
        (OTHER_LEADER, theirs, ours),
        (OTHER_ADMIN, theirs, ours),
    ):
        page = await overview(viewer)
        for address in shown:
            assert f">{address}<" in page, (viewer, address)
        for address in hidden:
            assert address not in page, (viewer, address)
        assert "Hàng đợi thư đi" not in page, viewer
        assert summary not in page and "overdue-reminders" not in page, viewer
    page = await overview(ADMIN)  # the server's operator
    assert "Hàng đợi thư đi" in page and summary in page
    assert f">{CLERK}<" in page and OTHER_CLERK not in page
