"""The console once auth is active, in a real headless browser: a login form with the token,
and a reader sees only the repos it has a role on (a page of another is refused, naming it)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.server import HERD, HerdServer, start_server, stop_server
from tests.server.test_console import browser, client_env, text, until  # noqa: F401 - fixture

try:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
except ImportError:  # the `browser` fixture says so
    pass


def herd(server: HerdServer, tmp: Path, *args: str, token: str | None = None, input: bytes | None = None) -> str:
    env = client_env(server, tmp)
    if token:
        env["HERD_TOKEN"] = token
    env["HERD_CONFIG_DIR"] = str(tmp / "config")
    done = subprocess.run([HERD, *args], env=env, input=input, capture_output=True, check=True, timeout=300)
    return done.stdout.decode()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HerdServer, str, str]]:
    """A server with auth active: repos `open` (alice reads it) and `secret` (she has no role)."""
    tmp = tmp_path_factory.mktemp("guarded")
    server = start_server(tmp)
    try:
        for repo in ("open", "secret"):
            herd(server, tmp, "create-repo", repo)
            herd(server, tmp, "put-file", repo, "master", "/x.txt", "-f", "-", input=f"{repo} data\n".encode())
        admin = herd(server, tmp, "auth", "activate").strip()
        alice = herd(server, tmp, "auth", "create-token", "alice", token=admin).strip()
        herd(server, tmp, "auth", "set-role", "open", "alice", "reader", token=admin)
        yield server, admin, alice
    finally:
        stop_server(server)


def log_in(browser: WebDriver, server: HerdServer, token: str) -> None:  # noqa: F811
    browser.get(server.url + "/")
    until(lambda: "/login" in browser.current_url, "the redirect to the login form")
    field = browser.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "form#login button").click()


def test_a_reader_logs_in_and_sees_only_its_repo(browser: WebDriver, guarded: tuple[HerdServer, str, str]) -> None:  # noqa: F811
    server, _, alice = guarded
    browser.delete_all_cookies()
    # Given a wrong token, the form says why and lets nobody in
    log_in(browser, server, "herd_" + "x" * 43)
    until(lambda: browser.find_elements(By.ID, "error-message"), "the login error")
    assert "unknown or revoked" in text(browser, "#error-message")
    # When alice logs in with her token
    log_in(browser, server, alice)
    until(lambda: browser.find_elements(By.ID, "viewer"), "the signed-in page")
    assert text(browser, "#viewer") == "alice"
    # Then the DAG and the repo list show `open` and not `secret`
    repos = text(browser, "#repos")
    assert "open" in repos and "secret" not in repos
    assert "secret" not in browser.find_element(By.ID, "dag").get_attribute("innerHTML")
    # And `secret`'s page is refused, naming the repo and the role
    browser.get(server.url + "/repos/secret")
    assert "needs the reader role on repo 'secret'" in text(browser, "#error-message")
    # But `open`'s commit page and file are hers to read
    browser.get(server.url + "/repos/open")
    assert "master" in browser.page_source
    # And after logging out, pages send her back to the form
    browser.find_element(By.CSS_SELECTOR, "form.user button").click()
    # (the logout's own answer first: navigating while its POST is in flight cancels it, and then
    # its cookie may never be dropped)
    until(lambda: browser.current_url.startswith(server.url + "/login"), "the logout's redirect")
    browser.get(server.url + "/repos/open")
    until(lambda: "/login" in browser.current_url, "the redirect after logging out")
    assert not browser.find_elements(By.ID, "viewer")


def test_without_a_browser_pages_need_a_token_and_a_role(guarded: tuple[HerdServer, str, str]) -> None:
    server, admin, alice = guarded
    with httpx.Client(base_url=server.url, timeout=30) as http:
        anonymous = http.get("/repos/open")
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=%2Frepos%2Fopen"
        assert http.get("/repos/open/commits/master/download", params={"path": "/x.txt"}).status_code == 303
        assert http.get("/console/pipelines/nope/jobs").status_code == 303
        as_alice = {"cookie": f"herd_token={alice}"}
        assert http.get("/repos/open/commits/master/download", params={"path": "/x.txt"},
                        headers=as_alice).content == b"open data\n"
        refused = http.get("/repos/secret/commits/master/download", params={"path": "/x.txt"}, headers=as_alice)
        assert refused.status_code == 403 and b"secret data" not in refused.content
        assert http.get("/repos/secret", headers={"cookie": f"herd_token={admin}"}).status_code == 200
        # A login may only send the browser on to this server
        login = http.post("/login", content=f"token={alice}&next=//evil.example/x",
                          headers={"content-type": "application/x-www-form-urlencoded"})
        assert login.status_code == 303 and login.headers["location"] == "/"
        assert "httponly" in login.headers["set-cookie"].lower() and "samesite=strict" in login.headers["set-cookie"].lower()
