"""Build the whole book on the smoke profile in a scratch copy and open every page in headless Chromium.

Each page must load, every <img> must have loaded (naturalWidth > 0), all math must be typeset by MathJax (served from
the build, no internet needed), and no page may show a Python traceback. Needs Debian's chromium and chromium-driver
(.ci/run installs them); without them the browser half skips with the reason.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sgdbayes.chapters import toc_files

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.book


def _book_env(root: Path) -> dict[str, str]:
    """The environment of a real build in ``root``: results and cache under its own _build/; a smoke cell that
    runs 5 minutes (they take seconds) is hung, and fails the build with its traceback instead of stalling CI."""
    env = {**os.environ, "SGDBAYES_ROOT": str(root)}
    env.setdefault("SGDBAYES_CELL_TIMEOUT", "300")
    for name in ("SGDBAYES_RESULTS_DIR", "SGDBAYES_CACHE_DIR"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("book") / "project"
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(
        ".venv", "_build", ".git", "*.ipynb", "__pycache__", ".pytest_cache", ".hypothesis", "dask-worker-space"))
    env = _book_env(dst)
    proc = subprocess.run([sys.executable, "-m", "sgdbayes.cli", "book", "--profile", "smoke", "--quiet"],
                          cwd=dst, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, f"smoke book build failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
    return dst


def test_every_toc_page_is_rendered_and_has_results(smoke_book):
    html = smoke_book / "_build" / "html"
    for entry in toc_files(smoke_book):
        assert (html / f"{entry}.html").is_file(), f"{entry} was not rendered"
    chapters = [Path(e).name for e in toc_files(smoke_book) if (smoke_book / f"{e}.py").is_file()]
    for chapter in chapters:
        if chapter != "report":
            assert (smoke_book / "_build" / "results" / f"{chapter}.json").is_file(), f"{chapter} recorded nothing"


def test_second_build_executes_nothing(smoke_book):
    env = _book_env(smoke_book)
    proc = subprocess.run([sys.executable, "-m", "sgdbayes.cli", "book", "--profile", "smoke", "--quiet",
                           "--no-html"], cwd=smoke_book, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    executed = [line for line in proc.stdout.splitlines() if "executed in" in line]
    assert len(executed) == 1, f"only the report should re-execute, got:\n{proc.stdout}"  # the report always runs


@pytest.fixture(scope="session")
def server(smoke_book):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(smoke_book / "_build" / "html"))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("headless Chromium not found: install Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver; .ci/run does this)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic", f"--user-data-dir={tmp_path_factory.mktemp('chrome')}",
                 "--window-size=1280,1600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def _pages(book: Path) -> list[str]:
    return [f"{entry}.html" for entry in toc_files(book)]


def test_pages_in_browser(smoke_book, server, browser):
    problems = []
    for page in _pages(smoke_book):
        browser.get(f"{server}/{page}")
        state = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const finish = () => {
              const imgs = Array.from(document.images).map(i => [i.currentSrc || i.src, i.complete, i.naturalWidth]);
              const math = document.querySelectorAll('.math').length;
              const typeset = document.querySelectorAll('mjx-container').length;
              const mathErrors = document.querySelectorAll('mjx-merror').length;
              const traces = document.querySelectorAll('.output.traceback, .output.error').length;
              done({imgs, math, typeset, mathErrors, traces, mathjax: typeof MathJax !== 'undefined',
                    text: document.body.innerText, title: document.title});
            };
            const waitAll = () => {
              if (typeof MathJax !== 'undefined' && MathJax.startup && MathJax.startup.promise) {
                MathJax.startup.promise.then(finish, finish);
              } else { finish(); }
            };
            if (document.readyState === 'complete') { setTimeout(waitAll, 200); }
            else { window.addEventListener('load', () => setTimeout(waitAll, 200)); }
        """)
        if not state["title"]:
            problems.append(f"{page}: no title (did it load?)")
        broken = [src for src, complete, width in state["imgs"] if not complete or width == 0]
        if broken:
            problems.append(f"{page}: images not loaded: {broken[:5]}")
        if state["math"] and (not state["mathjax"] or state["typeset"] < state["math"]):
            problems.append(f"{page}: math not typeset ({state['typeset']} of {state['math']} elements; "
                            f"MathJax loaded: {state['mathjax']})")
        if state["mathErrors"]:
            problems.append(f"{page}: {state['mathErrors']} MathJax errors")
        if state["traces"] or "Traceback (most recent call last)" in state["text"]:
            problems.append(f"{page}: shows a Python traceback")
    assert not problems, "\n".join(problems)


def test_intro_has_math_so_the_math_check_is_live(smoke_book, server, browser):
    browser.get(f"{server}/book/intro.html")
    n = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        MathJax.startup.promise.then(() => done(document.querySelectorAll('mjx-container').length));""")
    assert n > 0
