"""The web console of `herd serve` in a real headless browser: Debian's chromium driven by
Selenium through Debian's chromedriver (never a downloaded one), against the real server.

Locally the tests skip with a message when chromium or chromedriver is missing; under CI they
fail (tests.fixtures.services.missing_service). HERD_SCREENSHOTS=1 writes the main pages to
docs/console-<page>.png (1280x800), for the README.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.server import HERD, HerdServer, herd_server  # noqa: F401 - fixture
from tests.fixtures.services import missing_service, wait_until

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
except ImportError:  # the `browser` fixture says so: a skip locally, a failure under CI
    webdriver = None

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
DOCS = Path(__file__).resolve().parents[2] / "docs"
XSS = "<img src=x onerror=window.__xss=1>"
BINARY = bytes(range(256)) * 40 + b"\x00end\xff"  # not UTF-8, not text: bytes must come back exact


def stage(name: str, repo: str, body: str) -> dict[str, Any]:
    return {"pipeline": {"name": name}, "transform": {"cmd": ["sh", "-c", f'for f in /pfs/{repo}/*; do {body}; done']},
            "input": {"pfs": {"repo": repo, "glob": "/*"}}}


FIRST = stage("first", "images", 'echo "saw $(basename "$f")"; sleep 1; cp "$f" /pfs/out/')
SECOND = stage("second", "first", 'echo "second $(basename "$f")"; cp "$f" /pfs/out/')


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    if webdriver is None:
        missing_service("the browser tests need the Python package selenium (the dev extra)")
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        missing_service(f"the browser tests need Debian's chromium and chromium-driver: {', '.join(missing)} missing")
    downloads = tmp_path_factory.mktemp("downloads")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-sync", "--disable-extensions",
                "--window-size=1280,800"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads), "download.prompt_for_download": False,
        "safebrowsing.enabled": False,
    })
    # The driver's path is given, so Selenium Manager finds nothing to download.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_window_size(1280, 800)
    driver.download_dir = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()


def herd(server: HerdServer, tmp: Path, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """A CLI verb through the server, in a child process (so it can run while the browser watches)."""
    return subprocess.run([HERD, *args], env=client_env(server, tmp), input=input, capture_output=True, check=True,
                          timeout=300)


def client_env(server: HerdServer, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERD_")}
    env.update(HERD_ADDRESS=server.url, HERD_STORAGE=f"file://{tmp / 'not-used'}", HERD_RUNTIME="local")
    return env


@pytest.fixture(scope="module")
def stack(herd_server: HerdServer, tmp_path_factory: pytest.TempPathFactory) -> HerdServer:  # noqa: F811
    """images -> first -> second, one file put (its jobs ran before put-file returned), and a
    repo holding a file whose name is markup."""
    tmp = tmp_path_factory.mktemp("client")
    herd(herd_server, tmp, "create-repo", "images")
    spec = tmp / "spec.json"
    spec.write_text(json.dumps(FIRST) + json.dumps(SECOND))
    herd(herd_server, tmp, "create-pipeline", "-f", str(spec))
    herd(herd_server, tmp, "put-file", "images", "master", "/a.txt", "-f", "-", input=b"hello\n")
    herd(herd_server, tmp, "create-repo", "odd")
    herd(herd_server, tmp, "put-file", "odd", "master", "/" + XSS, "-f", "-", input=b"markup\n")
    herd(herd_server, tmp, "put-file", "odd", "master", "/dir/blob.bin", "-f", "-", input=BINARY)
    return herd_server


def screenshot(driver: WebDriver, page: str) -> None:
    if os.environ.get("HERD_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        driver.save_screenshot(str(DOCS / f"console-{page}.png"))


def until(check: Callable[[], Any], what: str, timeout: float = 120.0) -> None:
    assert wait_until(lambda: bool(check()), timeout=timeout, interval=0.1), f"timed out waiting for {what}"


def text(driver: WebDriver, css: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def test_the_dag_shows_both_pipelines_and_their_three_repos(browser: WebDriver, stack: HerdServer) -> None:
    browser.get(stack.url + "/")
    nodes = browser.find_elements(By.CSS_SELECTOR, "#dag svg a.node")
    drawn = {(n.get_attribute("data-kind"), n.get_attribute("data-name")) for n in nodes}
    assert {("pipeline", "first"), ("pipeline", "second"), ("repo", "images"), ("repo", "first"),
            ("repo", "second")} <= drawn
    states = {n.get_attribute("data-name"): n.get_attribute("data-state") for n in nodes
              if n.get_attribute("data-kind") == "pipeline"}
    assert states == {"first": "JOB_SUCCESS", "second": "JOB_SUCCESS"}
    # edges: input repo -> pipeline -> its output repo, drawn left to right
    x = {(n.get_attribute("data-kind"), n.get_attribute("data-name")): n.rect["x"] for n in nodes}
    assert x[("repo", "images")] < x[("pipeline", "first")] < x[("repo", "first")] < x[("pipeline", "second")] \
        < x[("repo", "second")]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#dag svg path.edge")) == 4
    screenshot(browser, "dag")
    browser.find_element(By.CSS_SELECTOR, "#dag a.node.pipeline[data-name='second']").click()
    until(lambda: browser.current_url.endswith("/pipelines/second"), "the pipeline page")
    assert "JOB_SUCCESS" in text(browser, "#job-rows")


def test_a_running_jobs_progress_is_followed_to_success_without_a_reload(
    browser: WebDriver, stack: HerdServer, tmp_path: Path,
) -> None:
    browser.get(stack.url + "/pipelines/first")
    loaded = browser.execute_script("return window.herdConsoleLoaded")
    assert loaded
    before = {row.get_attribute("data-job") for row in browser.find_elements(By.CSS_SELECTOR, "#job-rows tr.job")}
    folder = tmp_path / "batch"
    folder.mkdir()
    for name in ("b.txt", "c.txt", "d.txt"):
        (folder / name).write_text(f"{name}\n")
    # On the embedded default the request runs the jobs before it answers: start it, don't wait.
    put = subprocess.Popen([HERD, "put-file", "images", "master", "/", "-r", "-f", str(folder)],
                           env=client_env(stack, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen: list[tuple[str, str]] = []

        def new_row_state() -> str | None:
            for row in browser.find_elements(By.CSS_SELECTOR, "#job-rows tr.job"):
                if row.get_attribute("data-job") not in before:
                    state = row.get_attribute("data-state")
                    count = row.find_element(By.CSS_SELECTOR, ".count").text
                    if not seen or seen[-1] != (state, count):
                        seen.append((state, count))
                    return state
            return None

        until(lambda: new_row_state() == "JOB_RUNNING", "the new job to show as running")
        screenshot(browser, "pipeline")
        until(lambda: new_row_state() == "JOB_SUCCESS", "the new job to succeed")
    finally:
        _, err = put.communicate(timeout=300)
    assert put.returncode == 0, err.decode()
    assert seen[-1] == ("JOB_SUCCESS", "4/4"), seen  # 3 new datums processed, a.txt's skipped
    assert any(state == "JOB_RUNNING" for state, _ in seen), seen
    # the same page, updated in place: the marker set when it loaded is still there
    assert browser.execute_script("return window.herdConsoleLoaded") == loaded
    assert browser.current_url.endswith("/pipelines/first")


def test_a_jobs_datums_and_a_datums_logs(browser: WebDriver, stack: HerdServer) -> None:
    browser.get(stack.url + "/pipelines/first")
    browser.find_element(By.CSS_SELECTOR, "#job-rows tr.job td a").click()  # the newest job
    until(lambda: "/jobs/" in browser.current_url, "the job page")
    assert browser.find_element(By.ID, "job-summary").get_attribute("data-state") == "JOB_SUCCESS"
    rows = browser.find_elements(By.CSS_SELECTOR, "#datums tr.datum")
    states = sorted(r.get_attribute("data-state") for r in rows)
    assert states == ["SKIPPED", "SUCCESS", "SUCCESS", "SUCCESS"]
    processed = [r for r in rows if r.get_attribute("data-state") == "SUCCESS"]
    cells = processed[0].find_elements(By.TAG_NAME, "td")
    assert cells[3].text.endswith("s") and cells[4].text == "1"  # a duration, one try
    screenshot(browser, "job")
    target = next(r for r in processed if "/c.txt" in r.text)
    target.find_element(By.CSS_SELECTOR, "a.logs").click()
    until(lambda: "/datums/" in browser.current_url, "the datum page")
    until(lambda: "saw c.txt" in text(browser, "#log-lines"), "the datum's printed line")
    assert "saw b.txt" not in text(browser, "#log-lines")  # this datum's lines only
    screenshot(browser, "logs")


def test_a_running_datums_logs_are_followed(browser: WebDriver, stack: HerdServer, tmp_path: Path) -> None:
    before = set(job_ids(stack, tmp_path))
    (tmp_path / "slow.txt").write_text("slow\n")
    put = subprocess.Popen([HERD, "put-file", "images", "master", "/slow.txt", "-f", str(tmp_path / "slow.txt")],
                           env=client_env(stack, tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        new: list[str] = []
        until(lambda: new.extend(set(job_ids(stack, tmp_path)) - before) or new, "the new job")
        browser.get(f"{stack.url}/jobs/{new[0]}")
        logs: list[str] = []

        def slow_datum_logs() -> bool:
            for row in browser.find_elements(By.CSS_SELECTOR, "#datums tr.datum"):
                if "/slow.txt" in row.text:
                    logs.append(row.find_element(By.CSS_SELECTOR, "a.logs").get_attribute("href"))
                    return True
            return False

        until(slow_datum_logs, "the datum of /slow.txt on the job page")
        browser.get(logs[0])
        loaded = browser.execute_script("return window.herdConsoleLoaded")
        until(lambda: "saw slow.txt" in text(browser, "#log-lines"), "the line of the datum")
        until(lambda: browser.find_element(By.ID, "datum-summary").get_attribute("data-state") == "SUCCESS",
              "the datum to succeed")
        assert browser.execute_script("return window.herdConsoleLoaded") == loaded
    finally:
        put.communicate(timeout=300)
    assert put.returncode == 0


def job_ids(server: HerdServer, tmp: Path) -> list[str]:
    out = herd(server, tmp, "list-job", "-p", "first", "--json").stdout.decode()
    return [json.loads(line)["job"]["id"] for line in out.splitlines() if line.strip()]


def test_a_file_downloads_with_its_exact_bytes(browser: WebDriver, stack: HerdServer) -> None:
    browser.get(stack.url + "/repos/odd")
    browser.find_element(By.CSS_SELECTOR, "#branches a").click()  # master's head
    until(lambda: "/commits/" in browser.current_url, "the commit page")
    browser.find_element(By.CSS_SELECTOR, "#files a[href*='path=%2Fdir']").click()  # into /dir
    until(lambda: "/dir/blob.bin" in text(browser, "#files"), "the directory listing")
    screenshot(browser, "files")
    link = browser.find_element(By.CSS_SELECTOR, "#files a.download")
    href = link.get_attribute("href")
    # the bytes as the browser receives them (same origin, same cookies as a click)
    encoded = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => r.arrayBuffer()).then(b => {"
        "  let s = ''; new Uint8Array(b).forEach(c => s += String.fromCharCode(c)); done(btoa(s)); });", href)
    assert base64.b64decode(encoded) == BINARY
    # and a click saves the file under its own name
    link.click()
    saved = browser.download_dir / "blob.bin"  # type: ignore[attr-defined]
    until(saved.exists, "the downloaded file")
    until(lambda: saved.stat().st_size == len(BINARY), "the download to complete")
    assert saved.read_bytes() == BINARY


def test_an_output_commit_links_its_provenance(browser: WebDriver, stack: HerdServer) -> None:
    browser.get(stack.url + "/pipelines/second")
    browser.find_element(By.CSS_SELECTOR, "#job-rows tr.job td:last-child a").click()  # the newest output
    until(lambda: "/repos/second/commits/" in browser.current_url, "the output commit")
    links = {a.text: a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#provenance a")}
    assert any(name.startswith("first@") for name in links), links
    assert any(name.startswith("images@") for name in links), links
    assert "/a.txt" in text(browser, "#files")
    screenshot(browser, "commit")
    upstream = next(href for name, href in links.items() if name.startswith("first@"))
    browser.get(upstream)
    assert "/repos/first/commits/" in browser.current_url
    assert "/a.txt" in text(browser, "#files")


def test_markup_in_a_file_name_shows_as_text(browser: WebDriver, stack: HerdServer) -> None:
    browser.get(stack.url + "/repos/odd")
    browser.find_element(By.CSS_SELECTOR, "#branches a").click()
    until(lambda: "/commits/" in browser.current_url, "the commit page")
    assert "/" + XSS in text(browser, "#files")
    assert browser.find_elements(By.CSS_SELECTOR, "#files img") == []
    assert browser.execute_script("return window.__xss") is None
    entry = browser.find_element(By.CSS_SELECTOR, "#files tr.entry")
    assert entry.get_attribute("data-path") == "/" + XSS
    # its download link carries the name percent-encoded and gives back its bytes
    href = entry.find_element(By.CSS_SELECTOR, "a.download").get_attribute("href")
    body = browser.execute_async_script(
        "const done = arguments[arguments.length - 1]; fetch(arguments[0]).then(r => r.text()).then(done);", href)
    assert body == "markup\n"


def test_unknown_names_are_an_error_page_naming_them(browser: WebDriver, stack: HerdServer) -> None:
    browser.get(stack.url + "/repos/nope")
    assert text(browser, "#error-message") == "repo 'nope' not found"
    browser.get(stack.url + "/pipelines/" + "%3Cb%3Ehi%3Ci%3E")
    assert "<b>hi<i>" in text(browser, "#error-message")
    assert browser.find_elements(By.CSS_SELECTOR, "#error-message b") == []
    browser.get(stack.url + "/jobs/0000deadbeef")
    assert "not found" in text(browser, "#error-message")
    browser.get(stack.url + "/repos/images/commits/master?path=/../etc/passwd")
    assert "'..'" in text(browser, "#error-message")
    assert "Traceback" not in browser.page_source


# ---- the same pages over plain HTTP, as an attacker sends them (no browser needed) -----------


def test_pages_are_html_and_errors_are_html_pages_with_their_status(stack: HerdServer) -> None:
    with httpx.Client(base_url=stack.url) as http:
        home = http.get("/")
        assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
        assert "<svg" in home.text and 'data-name="second"' in home.text
        assert "script-src 'self'" in home.headers["content-security-policy"]  # no inline script runs
        for path, status, message in (
            ("/repos/nope", 404, "repo &#39;nope&#39; not found"),
            ("/pipelines/nope", 404, "nope"),
            ("/jobs/nope", 404, "job &#39;nope&#39; not found"),
            ("/repos/images/commits/master?path=/missing.txt", 404, "/missing.txt"),
            ("/repos/images/commits/master?path=/../x", 422, "&#39;..&#39;"),
            ("/repos/images/commits/nope", 404, "nope"),
            ("/repos/images/commits/master/download", 422, "path"),
            ("/console/jobs/nope/datums", 404, "nope"),
            ("/console/static/pages.py", 404, "pages.py"),
        ):
            answer = http.get(path)
            assert answer.status_code == status, (path, answer.text)
            assert answer.headers["content-type"].startswith("text/html"), path
            assert message in answer.text and "Traceback" not in answer.text, (path, answer.text)
        # the JSON API keeps its JSON errors
        api = http.get("/api/v1/repos/nope")
        assert api.status_code == 404 and api.json()["error"]["type"] == "RepoNotFound"
        assert http.get("/api/v1/health").json()["status"] == "ok"
        # only the two static files are served; no way out of the folder
        assert http.get("/console/static/console.js").headers["content-type"].startswith("text/javascript")
        for sneaky in ("/console/static/..%2Fpages.py", "/console/static/%2E%2E/pages.py", "/console/static/"):
            answer = http.get(sneaky)
            assert answer.status_code == 404 and "import" not in answer.text, sneaky


def test_a_download_is_an_attachment_with_the_verified_bytes(stack: HerdServer) -> None:
    with httpx.Client(base_url=stack.url) as http:
        answer = http.get("/repos/odd/commits/master/download", params={"path": "/dir/blob.bin"})
        assert answer.status_code == 200 and answer.content == BINARY
        assert answer.headers["content-disposition"] == "attachment; filename=\"blob.bin\"; filename*=UTF-8''blob.bin"
        assert answer.headers["x-herd-commit"]
        odd = http.get("/repos/odd/commits/master/download", params={"path": "/" + XSS})
        assert odd.content == b"markup\n"
        assert "<" not in odd.headers["content-disposition"] and "%3Cimg" in odd.headers["content-disposition"]
        # a directory is not a file; a live fragment answers JSON the page script replaces
        assert http.get("/repos/odd/commits/master/download", params={"path": "/dir"}).status_code >= 400
        live = http.get("/console/pipelines/first/jobs")
        assert live.headers["cache-control"] == "no-store" and live.json()["done"] is False
        assert "JOB_SUCCESS" in live.json()["html"]
