"""The approvals page in a real headless Chromium (Debian's chromium + chromium-driver, Selenium).

scripts/test.sh installs the browser; without it these tests fail, saying so.
One `agentrt serve` process (SQLite store) serves the module.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from tests.service_support import ACME, GLOBEX, Replica, ledger_lines, replicas


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail(
            "the approvals-page tests need Chromium and its WebDriver: run scripts/test.sh "
            "(installs them) or apt-get install chromium chromium-driver",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    workdir = tmp_path_factory.mktemp("page")
    with replicas(workdir, f"sqlite:///{workdir}/state.db", ("a",), workdir / "ledger") as found:
        yield found[0]


def _pause(replica: Replica, token: str, order: str) -> dict[str, Any]:
    with replica.client(token) as client:
        run: dict[str, Any] = client.post(
            "/v1/runs", json={"input": f"refund {order} 500 4111111111111111"}
        ).json()
    assert run["status"] == "pending_approval"
    return run


def _sign_in(browser: WebDriver, replica: Replica, token: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{replica.url}/approvals")
    assert browser.current_url.endswith("/login")  # no session: sent to the login form
    browser.find_element(By.ID, "token").send_keys(token)
    _submit(browser, browser.find_element(By.ID, "sign-in"))
    assert browser.current_url.endswith("/approvals")


def _submit(browser: WebDriver, button: Any) -> None:
    """Click a button that submits a form, and wait until the answer's page replaced this one."""
    page = browser.find_element(By.TAG_NAME, "html")
    button.click()

    def replaced(_: WebDriver) -> bool:
        # Chromium answers a question about a node of a document being replaced with a
        # generic error ("Node with given id does not belong to the document") rather than
        # `StaleElementReferenceException` (its subclass): either means the page is gone.
        try:
            page.is_enabled()
        except WebDriverException:
            return True
        return False

    WebDriverWait(browser, 60).until(replaced)
    WebDriverWait(browser, 60).until(
        lambda b: b.execute_script("return document.readyState") == "complete"
    )


def _row(browser: WebDriver, approval_id: str) -> Any:
    return browser.find_element(By.ID, f"approval-{approval_id}")


def test_approving_in_the_page_finishes_the_run_exactly_once(
    browser: WebDriver, replica: Replica
) -> None:
    run = _pause(replica, ACME, "W-1")
    approval_id = run["approval_ids"][0]
    _sign_in(browser, replica, ACME)
    row = _row(browser, approval_id)
    assert row.find_element(By.CLASS_NAME, "tool").text.startswith("issue_refund")
    shown = row.find_element(By.CLASS_NAME, "arguments").text
    assert '"redacted": "path"' in shown and "4111111111111111" not in browser.page_source
    assert "approve-big-refunds" in row.find_element(By.CLASS_NAME, "rule").text
    assert "need a human" in row.find_element(By.CLASS_NAME, "reason").text
    assert row.find_element(By.CLASS_NAME, "age").text.endswith("s")

    _submit(browser, row.find_element(By.CLASS_NAME, "approve-button"))
    # The page answers once the resumed run stopped, and says how it ended.
    assert "completed" in browser.find_element(By.ID, "message").text
    assert not browser.find_elements(By.ID, f"approval-{approval_id}")
    refunds = [line for line in ledger_lines(replica.ledger) if " W-1 " in line]
    assert len(refunds) == 1
    with replica.client(ACME) as client:
        assert client.get(f"/v1/runs/{run['run_id']}").json()["status"] == "completed"
        finished = [
            event
            for name, event in _events(client, run["run_id"])
            if name == "run.finished" and event["status"] == "completed"
        ]
    assert len(finished) == 1
    browser.refresh()  # a reload re-sends nothing (the answer was a redirect)
    assert len([line for line in ledger_lines(replica.ledger) if " W-1 " in line]) == 1


def _events(client: httpx.Client, run_id: str) -> list[tuple[str, dict[str, Any]]]:
    from tests.service_support import sse_events

    return list(sse_events(client, f"/v1/runs/{run_id}/events"))


def test_acmes_page_never_shows_globexs_calls(browser: WebDriver, replica: Replica) -> None:
    ours = _pause(replica, ACME, "X-1")["approval_ids"][0]
    theirs = _pause(replica, GLOBEX, "X-2")["approval_ids"][0]
    _sign_in(browser, replica, ACME)
    assert browser.find_element(By.ID, "tenant").text == "acme"
    ids = {
        r.get_attribute("data-approval-id")
        for r in browser.find_elements(By.CLASS_NAME, "approval")
    }
    assert ours in ids and theirs not in ids
    assert theirs not in browser.page_source and "X-2" not in browser.page_source

    # A forged form for globex's call, submitted from acme's page: not found, not decided.
    form = _row(browser, ours).find_element(By.CLASS_NAME, "approve")
    browser.execute_script(
        "arguments[0].setAttribute('action', arguments[1])", form, f"/approvals/{theirs}/approve"
    )
    _submit(browser, form.find_element(By.CLASS_NAME, "approve-button"))
    assert "no approval" in browser.find_element(By.ID, "error").text
    with replica.client(GLOBEX) as client:
        assert client.get(f"/v1/approvals/{theirs}").json()["status"] == "pending"

    _sign_in(browser, replica, GLOBEX)
    ids = {
        r.get_attribute("data-approval-id")
        for r in browser.find_elements(By.CLASS_NAME, "approval")
    }
    assert theirs in ids and ours not in ids


def test_editing_arguments_in_the_page_is_checked_again(
    browser: WebDriver, replica: Replica
) -> None:
    approval_id = _pause(replica, ACME, "Y-1")["approval_ids"][0]
    _sign_in(browser, replica, ACME)

    def submit_edit(text: str) -> None:
        row = _row(browser, approval_id)
        row.find_element(By.TAG_NAME, "summary").click()
        box = row.find_element(By.CLASS_NAME, "edit-arguments")
        box.clear()
        box.send_keys(text)
        _submit(browser, row.find_element(By.CLASS_NAME, "edit-button"))

    submit_edit('{"order_id": "Y-1", "amount": "lots", "card_number": {"redacted": "path"}}')
    assert "refused" in browser.find_element(By.ID, "error").text
    submit_edit('{"order_id": "Y-1", "amount": 9000, "card_number": {"redacted": "path"}}')
    assert "Refunds over 5000" in browser.find_element(By.ID, "error").text
    assert _row(browser, approval_id)  # still pending
    submit_edit('{"order_id": "Y-1", "amount": 120, "card_number": {"redacted": "path"}}')
    assert "completed" in browser.find_element(By.ID, "message").text
    refunds = [line for line in ledger_lines(replica.ledger) if " Y-1 " in line]
    assert [line.split(" pid=")[0] for line in refunds] == ["refund Y-1 120"]
    with replica.client(ACME) as client:
        record = client.get(f"/v1/approvals/{approval_id}").json()
    # The secret the page never showed went back in unchanged (and stays redacted here).
    assert record["edited_arguments"]["card_number"] == {"redacted": "path"}


def test_forms_need_the_session_and_its_csrf_token(replica: Replica) -> None:
    approval_id = _pause(replica, ACME, "Z-1")["approval_ids"][0]
    with httpx.Client(base_url=replica.url, follow_redirects=False) as client:
        assert client.post("/login", data={"token": "nope-nope-nope"}).status_code == 401
        login = client.post("/login", data={"token": ACME})
        assert login.status_code == 303
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        forged = client.post(f"/approvals/{approval_id}/approve", data={"csrf": "0" * 64})
        assert forged.status_code == 403 and "CSRF" in forged.text
        missing = client.post(f"/approvals/{approval_id}/approve")
        assert missing.status_code == 403
        client.cookies.clear()
        anonymous = client.post(f"/approvals/{approval_id}/approve", data={"csrf": "x"})
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"
    with replica.client(ACME) as api:
        assert api.get(f"/v1/approvals/{approval_id}").json()["status"] == "pending"


def test_the_audit_view_queries_and_verifies(browser: WebDriver, replica: Replica) -> None:
    _sign_in(browser, replica, ACME)
    browser.get(f"{replica.url}/approvals/audit?tool=issue_refund&status=ok")
    assert "verifies" in browser.find_element(By.ID, "chain").text
    rows = browser.find_elements(By.CLASS_NAME, "record")
    assert rows and {r.find_element(By.CLASS_NAME, "tool").text for r in rows} == {"issue_refund"}
    assert {r.find_element(By.CLASS_NAME, "status").text for r in rows} == {"ok"}
    browser.get(f"{replica.url}/approvals/audit?since=someday")
    assert "cannot read time" in browser.find_element(By.ID, "error").text


def test_page_paths_are_not_in_the_api_schema(replica: Replica) -> None:
    with replica.client(ACME) as client:
        paths = set(client.get("/openapi.json").json()["paths"])
    assert not any(p.startswith(("/approvals", "/login")) for p in paths)
    assert Path(__file__).exists()
