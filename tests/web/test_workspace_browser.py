"""The workspace in a real browser: Debian's chromium, headless, driven by Selenium
through Debian's chromedriver, against a running mailsvc.

The clerk signs in, searches without diacritics, opens the signed document (preview and
signature report), assigns it; the assignee receives the copy by mail (IMAP) and marks
it done; the sender agency gets 04 and 06; a leader sees the charts; an official of
another unit cannot open the document; a form without its CSRF token is refused.
Screenshots of the main pages go to $MAILSVC_SCREENSHOTS (the README's pictures) or
to the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import select

from mailsvc.outbound.models import OutboundMessage
from mailsvc.register.demo import seed_demo_register
from tests.e2e.conftest import PASSWORD, RunningServer, server, service_home
from tests.e2e.test_smtp_core import fetch_inbox
from tests.web.workspace_setup import (
    CLERK,
    LEADER,
    OFFICIAL,
    OTHER_OFFICIAL,
    SENDER,
    base_url,
    seed_workspace,
)

__all__ = ["server", "service_home"]  # fixtures used here

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@contextmanager
def chromium(width: int = 1280, height: int = 1000, *, phone: bool = False) -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = CHROMIUM
    if phone:  # a window cannot be narrower than 500 px: emulate the phone's screen
        options.add_experimental_option(
            "mobileEmulation",
            {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2}},
        )
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--ignore-certificate-errors",
        "--lang=vi-VN",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def until(driver: WebDriver, condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait for a condition, polled by Selenium's own wait, failing after ``timeout``."""
    WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda _driver: condition())


def body_text(driver: WebDriver) -> str:
    """The page's text; "" while a navigation replaces the document."""
    try:
        return str(driver.execute_script("return document.body ? document.body.innerText : ''"))
    except WebDriverException:
        return ""


def sign_in(driver: WebDriver, url: str, address: str, shots: Path | None = None) -> None:
    driver.get(f"{url}/w/")
    WebDriverWait(driver, 20).until(expected_conditions.url_contains("/w/login"))
    driver.find_element(By.ID, "address").send_keys(address)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    if shots is not None:
        driver.save_screenshot(str(shots / "dang-nhap.png"))
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, 20).until(
        lambda d: "/w/login" not in d.current_url and "Đăng xuất" in body_text(d)
    )


def sign_out(driver: WebDriver) -> None:
    driver.find_element(By.XPATH, "//button[text()='Đăng xuất']").click()
    WebDriverWait(driver, 20).until(expected_conditions.url_contains("/w/login"))


def scenario(server: RunningServer, document_id: int, shots: Path) -> None:
    url = base_url(server)
    doc = f"{url}/w/incoming/{document_id}"
    shots.mkdir(parents=True, exist_ok=True)
    with chromium() as driver:
        # The clerk: search without diacritics, open the document, assign it.
        sign_in(driver, url, CLERK, shots)
        box = driver.find_element(By.ID, "q")
        box.send_keys("chuyen doi so")
        box.submit()
        WebDriverWait(driver, 20).until(expected_conditions.url_contains("q=chuyen"))
        links = driver.find_elements(By.CSS_SELECTOR, f"a[href='/w/incoming/{document_id}']")
        assert links, "the search did not find the document"
        driver.save_screenshot(str(shots / "so-van-ban-den.png"))
        links[0].click()
        WebDriverWait(driver, 20).until(expected_conditions.url_contains(f"/{document_id}"))
        until(
            driver,
            lambda: bool(
                driver.execute_script(
                    "const i = document.querySelector('.previews img');"
                    "return i !== null && i.complete && i.naturalWidth > 100;"
                )
            ),
        )
        text = body_text(driver)
        assert "Chữ ký số cơ quan, tổ chức (thay con dấu)" in text
        assert "Hợp lệ (có giá trị pháp lý)" in text
        driver.save_screenshot(str(shots / "van-ban.png"))

        # A form whose CSRF token was removed is refused.
        driver.execute_script(
            "const f = document.querySelector(\"form[action$='/status']\");"
            "f.querySelector('input[name=csrf]').remove(); f.submit();"
        )
        until(driver, lambda: "CSRF" in body_text(driver))
        driver.get(doc)

        driver.find_element(By.ID, "assignee").send_keys(OFFICIAL)
        driver.execute_script("document.getElementById('deadline').value = '2099-12-31';")
        driver.find_element(By.ID, "instructions").send_keys("Đồng chí An chủ trì, báo cáo lại.")
        driver.find_element(By.XPATH, "//button[text()='Chuyển xử lý']").click()
        until(driver, lambda: "Đã chuyển xử lý" in body_text(driver))
        sign_out(driver)

        # The assignee's copy arrives by mail.
        until(driver, lambda: len(fetch_inbox(server, OFFICIAL)) == 1)

        # The official marks it done from "Việc của tôi".
        sign_in(driver, url, OFFICIAL)
        driver.get(f"{url}/w/mine")
        driver.save_screenshot(str(shots / "viec-cua-toi.png"))
        driver.find_element(By.CSS_SELECTOR, f"a[href='/w/incoming/{document_id}']").click()
        Select(driver.find_element(By.ID, "status")).select_by_value("done")
        driver.find_element(By.ID, "reason").send_keys("Đã triển khai xong.")
        driver.find_element(By.XPATH, "//button[text()='Cập nhật']").click()
        until(driver, lambda: "Đã cập nhật trạng thái" in body_text(driver))
        assert "Đã hoàn thành" in body_text(driver)
        sign_out(driver)

        # Another unit's official: the same URL tells nothing.
        sign_in(driver, url, OTHER_OFFICIAL)
        driver.get(doc)
        assert "Không tìm thấy văn bản" in body_text(driver)
        sign_out(driver)

        # The leader's dashboard.
        sign_in(driver, url, LEADER)
        driver.get(f"{url}/w/dashboard")
        charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert len(charts) >= 3 and charts[0].size["width"] > 300
        driver.save_screenshot(str(shots / "tong-quan.png"))
    with chromium(width=390, height=844, phone=True) as phone:
        sign_in(phone, url, CLERK)
        phone.get(f"{url}/w/incoming")
        screen = phone.execute_script("return window.innerWidth")
        width = phone.execute_script("return document.documentElement.scrollWidth")
        assert screen == 390 and width <= screen, f"the list overflows a phone ({width}px)"
        phone.save_screenshot(str(shots / "dien-thoai.png"))
    for name in ("dang-nhap", "so-van-ban-den", "van-ban", "viec-cua-toi", "tong-quan"):
        assert (shots / f"{name}.png").stat().st_size > 5000, name


async def test_workspace_in_chromium(server: RunningServer, tmp_path: Path) -> None:
    seeded = await seed_workspace(server)
    with server.app.sessions.begin() as session:  # a fuller register for the pictures
        added = seed_demo_register(session, CLERK, OFFICIAL, server.app.blobs, only_if_empty=False)
        assert added == 6
    shots = Path(os.environ.get("MAILSVC_SCREENSHOTS") or tmp_path)
    await asyncio.to_thread(scenario, server, seeded.document_id, shots)
    with server.sessions() as session:
        kinds = {
            row.kind
            for row in session.scalars(
                select(OutboundMessage).where(OutboundMessage.recipient == SENDER)
            )
        }
    assert {"notice-04", "notice-06"} <= kinds, kinds


async def test_chromium_forgets_the_session_cookie_at_sign_out(server: RunningServer) -> None:
    """A browser drops a ``__Host-`` cookie only when the deletion is Secure, Path=/ and
    without Domain, as the cookie was set: after sign-out the browser holds no session."""
    await seed_workspace(server)

    def run() -> tuple[list[str], list[str]]:
        with chromium() as driver:
            sign_in(driver, base_url(server), CLERK)
            before = [str(c["name"]) for c in driver.get_cookies()]
            sign_out(driver)
            return before, [str(c["name"]) for c in driver.get_cookies()]

    signed_in, signed_out = await asyncio.to_thread(run)
    assert "__Host-mailsvc-ws" in signed_in
    assert "__Host-mailsvc-ws" not in signed_out, signed_out
