"""Random query strings on the workspace's pages, as a logged-in clerk, leader and admin
would type or tamper with them: every answer is a page or a precise 4xx, never a 500.

The values are drawn from what breaks parsers and SQL bindings (digits of other scripts,
NUL and line breaks, full-text operators and quotes, long and combining strings), over
every parameter the pages read. A seeded generator: the same requests every run;
``MAILSVC_WEB_FUZZ`` sets how many per page, ``MAILSVC_WEB_FUZZ_SEED`` the seed, for a longer
local run.
"""

from __future__ import annotations

import os
import random

from tests.e2e.conftest import RunningServer, server, service_home
from tests.web.workspace_setup import ADMIN, CLERK, LEADER, client, seed_workspace, sign_in

__all__ = ["server", "service_home"]  # fixtures used here

ROUNDS = int(os.environ.get("MAILSVC_WEB_FUZZ", "25"))
PIECES = [
    "1", "2026", "0", "-1", "²", "٢٠٢٦", "9" * 40, "2026-02-30", "31/12/2026", "1899-01-01",
    "\x00", "\r\n", "\t", "%", "%00", '"', "'", "*", "^", "(", ")", ":", "-", "NEAR(", "AND",
    "OR", "NOT", "{", "}", "\\", "/", "<script>", "&", "=", "đ", "Đơn", "công văn", "e\u0301",
    "\u202e", "\ufeff", "x" * 300, "moi", "hoa_toc", "valid", "reference_only", "csv", "html",
    "pdf", "xlsx", "000.00.04.H99", "..", "/w/", "//evil.example", "http://evil.example",
]  # fmt: skip
PAGES = {
    "/w/incoming": ["q", "year", "status", "urgency", "agency", "outcome", "overdue", "since",
                    "until", "before", "done"],
    "/w/mine": ["q", "year", "status", "before", "done"],
    "/w/incoming/export": ["format", "q", "year", "status", "since", "until", "agency"],
    "/w/dashboard": ["year", "since", "until", "agency"],
    "/w/admin": ["year", "agency"],
    "/w/login": ["next"],
}  # fmt: skip


def _value(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 4)))


async def test_random_query_strings_never_make_a_page_fail(server: RunningServer) -> None:
    await seed_workspace(server)
    rng = random.Random(int(os.environ.get("MAILSVC_WEB_FUZZ_SEED", "14")))
    seen: dict[int, int] = {}
    for person in (CLERK, LEADER, ADMIN):
        async with client(server) as http:
            await sign_in(http, person)
            for page, keys in PAGES.items():
                for _ in range(ROUNDS):
                    params = {k: _value(rng) for k in rng.sample(keys, rng.randint(1, len(keys)))}
                    answer = await http.get(page, params=params)
                    seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
                    assert answer.status_code < 500, (person, page, params, answer.status_code)
                    if answer.status_code >= 400:  # a precise answer, not an empty one
                        assert answer.text.strip(), (page, params, answer.status_code)
    assert seen.get(200, 0) > 0 and sum(seen.values()) == 3 * len(PAGES) * ROUNDS
