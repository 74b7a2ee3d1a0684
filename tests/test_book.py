"""Build the whole book on the smoke profile in a scratch copy and read every page in headless Chromium.

Every page is visited once; the checks then run per page and per kind, so the summary says exactly which page fails
what (``pytest tests/test_book.py -k report`` runs one page's checks; the build happens once per session):

- ``loads``: the page has a title, every image loaded, all math was typeset by MathJax (served from the build, no
  internet needed), no MathJax error, no Python traceback;
- ``console``: no console error (uncaught exception, failed resource, ``console.error``) beyond :data:`ALLOWED`;
- ``raw_tex``: no ``$$``, ``\\frac`` or ``\\tag`` in the text outside rendered math and code;
- ``reprs``: no ``Text(...)`` or ``<Figure size ...>`` repr leaked into an output;
- ``tables``: no NaN in a table cell;
- ``figures``: every figure image sits in a numbered, captioned figure and is shown at ≥ 90% of its width;
- ``widgets``: saved widget state renders (the widget JavaScript is served from the build, not a CDN);
- ``summary``: a chapter page has its "What this shows" section;
- ``scorecard`` (the report page): every row has a status, none is "not declared", every row's link reaches a
  section that exists.

Strict for every page: the checks are not relaxed for chapters that do not meet them yet. Needs Debian's chromium
and chromium-driver (.ci/run installs them); without them the browser half skips with the reason.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

from sgdbayes.chapters import toc_files

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WINDOW = (1280, 1600)  # the window the plotting convention is measured in (sgdbayes.plots.CONTENT_WIDTH_PX)

#: Console errors that are not the book's fault, each with the reason it is tolerated. Keep it short.
ALLOWED: list[tuple[str, str]] = [
    # (regex on the console message, why it is harmless)
]

pytestmark = pytest.mark.book

PAGES = [f"{entry}.html" for entry in toc_files(ROOT)]
CHAPTER_PAGES = [p for p in PAGES if (ROOT / p.replace(".html", ".py")).is_file() and Path(p).stem != "report"]
REPORT_PAGE = next((p for p in PAGES if Path(p).stem == "report"), None)
STATUSES = {"reproduced", "partly", "not reproduced", "not run"}


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


def test_two_runs_with_the_same_seed_write_identical_results(smoke_book, tmp_path_factory):
    """Every chapter's results file is identical byte for byte when the smoke book runs again from scratch on this
    CPU (a second copy, caching off, so nothing is read back from the first run)."""
    again = tmp_path_factory.mktemp("book-again") / "project"
    shutil.copytree(smoke_book, again, ignore=shutil.ignore_patterns("_build", "*.ipynb", "__pycache__"))
    env = {**_book_env(again), "SGDBAYES_CACHE": "off"}
    proc = subprocess.run([sys.executable, "-m", "sgdbayes.cli", "book", "--profile", "smoke", "--quiet", "--no-html"],
                          cwd=again, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, f"second smoke run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    first = sorted(p.name for p in (smoke_book / "_build" / "results").glob("*.json"))
    second = sorted(p.name for p in (again / "_build" / "results").glob("*.json"))
    assert first == second and len(first) >= 4
    differ = [name for name in first if (smoke_book / "_build" / "results" / name).read_bytes()
              != (again / "_build" / "results" / name).read_bytes()]
    assert not differ, f"results differ between two runs with the same seed: {differ}"


@pytest.fixture(scope="session")
def server(smoke_book):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args, **kwargs):
            pass

    handler = functools.partial(Quiet, directory=str(smoke_book / "_build" / "html"))
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
                 f"--window-size={WINDOW[0]},{WINDOW[1]}", "--hide-scrollbars"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


# Everything the checks need from one page, gathered once the page has loaded and MathJax has finished.
COLLECT = r"""
const done = arguments[arguments.length - 1];
const collect = () => {
  const art = document.querySelector('article.bd-article') || document.body;
  const imgs = Array.from(art.querySelectorAll('img')).map(i => {
    const fig = i.closest('figure');
    return {src: (i.currentSrc || i.src).split('/').pop(), complete: i.complete, natural: i.naturalWidth,
            shown: i.getBoundingClientRect().width,
            attr: parseFloat(i.style.width) || parseFloat(i.getAttribute('width')) || null,
            inOutput: !!i.closest('.cell_output, .output'),
            figure: !!fig, caption: fig && fig.querySelector('figcaption') ? fig.querySelector('figcaption').textContent.trim() : '',
            number: !!(fig && fig.querySelector('.caption-number'))};
  });
  const clone = art.cloneNode(true);
  clone.querySelectorAll('mjx-container, .math, pre, code, script, style, .cell_input, mjx-assistive-mml')
       .forEach(e => e.remove());
  const outputs = Array.from(art.querySelectorAll('.cell_output, .output')).map(o => o.textContent).join('\n');
  const rows = Array.from(art.querySelectorAll('table tr')).map(
    tr => Array.from(tr.querySelectorAll('td, th')).map(c => c.textContent.trim()));
  const headings = Array.from(art.querySelectorAll('h1, h2')).map(h => h.textContent.replace(/[#¶]/g, '').trim());
  const claims = Array.from(art.querySelectorAll('tr.sgd-claim')).map(tr => {
    const a = tr.querySelector('a.sgd-section-link');
    const b = tr.querySelector('.sgd-badge');
    return {id: tr.dataset.claim, status: b ? b.dataset.status : null, href: a ? a.href : null};
  });
  done({title: document.title, imgs, text: clone.textContent, outputs, rows, headings, claims,
        ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
        math: document.querySelectorAll('.math').length,
        typeset: document.querySelectorAll('mjx-container').length,
        mathErrors: document.querySelectorAll('mjx-merror').length,
        mathjax: typeof MathJax !== 'undefined',
        traces: document.querySelectorAll('.output.traceback, .output.error').length,
        widgetViews: document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length,
        widgetsRendered: document.querySelectorAll('.jupyter-widgets').length,
        body: document.body.innerText});
};
const settle = () => setTimeout(collect, 1500);   // widgets render asynchronously after MathJax
const waitAll = () => {
  if (typeof MathJax !== 'undefined' && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(settle, settle);
  } else { settle(); }
};
if (document.readyState === 'complete') { setTimeout(waitAll, 200); }
else { window.addEventListener('load', () => setTimeout(waitAll, 200)); }
"""


@pytest.fixture(scope="session")
def pages(smoke_book, server, browser) -> dict[str, dict]:
    """Each page's collected state and its console messages (visited once per session)."""
    out = {}
    browser.get_log("browser")  # drop anything from before the first page
    for page in PAGES:
        browser.get(f"{server}/{page}")
        state = browser.execute_async_script(COLLECT)
        time.sleep(0.2)
        state["console"] = browser.get_log("browser")
        state["url"] = f"{server}/{page}"
        out[page] = state
    return out


def _page_ids(pages: dict[str, dict], server: str) -> dict[str, set[str]]:
    return {urlparse(urljoin(server + "/", p)).path: set(s["ids"]) for p, s in pages.items()}


def check_loads(state: dict) -> list[str]:
    problems = []
    if not state["title"]:
        problems.append("no title (did it load?)")
    broken = [i["src"] for i in state["imgs"] if not i["complete"] or i["natural"] == 0]
    if broken:
        problems.append(f"images not loaded: {broken[:5]}")
    if state["math"] and (not state["mathjax"] or state["typeset"] < state["math"]):
        problems.append(f"math not typeset ({state['typeset']} of {state['math']} elements; MathJax loaded: "
                        f"{state['mathjax']})")
    if state["mathErrors"]:
        problems.append(f"{state['mathErrors']} MathJax errors")
    if state["traces"] or "Traceback (most recent call last)" in state["body"]:
        problems.append("shows a Python traceback")
    return problems


def check_widgets(state: dict) -> list[str]:
    views, rendered = state.get("widgetViews", 0), state.get("widgetsRendered", 0)
    return [f"{views} saved widget views but nothing rendered (widget JavaScript from _static/vendor not loaded?)"
            ] if views and not rendered else []


def check_console(state: dict) -> list[str]:
    errors = [e["message"] for e in state["console"] if e.get("level") == "SEVERE"]
    return [f"console error: {m[:300]}" for m in errors
            if not any(re.search(pattern, m) for pattern, _why in ALLOWED)]


def check_raw_tex(state: dict) -> list[str]:
    text = state["text"]
    problems = []
    for token in ("$$", "\\frac", "\\tag"):
        n = text.count(token)
        if n:
            at = text.index(token)
            problems.append(f"{n}× raw {token!r} outside rendered math, e.g. …{text[max(0, at - 60):at + 40]!r}…")
    return problems


def check_reprs(state: dict) -> list[str]:
    problems = []
    for pattern in (r"\bText\(", r"<Figure size \d", r"<Axes: ", r"<matplotlib\.\w+"):
        found = re.findall(rf".{{0,40}}{pattern}.{{0,40}}", state["outputs"])
        if found:
            problems.append(f"{len(found)}× repr {pattern!r} in outputs, e.g. {found[0]!r}")
    return problems


def check_tables(state: dict) -> list[str]:
    nan = re.compile(r"(^|[^A-Za-z])(nan|NaN|<NA>)([^A-Za-z]|$)")
    bad = [row for row in state["rows"] if any(nan.search(c) for c in row)]
    n = sum(1 for row in bad for c in row if nan.search(c))
    return [f"{n} table cells show NaN, in rows like: " + " / ".join(" | ".join(r)[:120] for r in bad[:3])] if bad else []


def check_figures(state: dict) -> list[str]:
    problems = []
    shown = [i for i in state["imgs"] if i["inOutput"] and i["shown"] > 0]
    uncaptioned = [i["src"][:16] for i in shown if not (i["figure"] and i["caption"] and i["number"])]
    if uncaptioned:
        problems.append(f"{len(uncaptioned)} of {len(shown)} figures without a numbered caption "
                        f"(glue + {{glue:figure}} with :name:), e.g. {uncaptioned[:3]}")
    shrunk = [(i["src"][:16], round(i["shown"] / (i["attr"] or i["natural"]), 2)) for i in shown
              if i["shown"] < 0.9 * (i["attr"] or i["natural"])]
    if shrunk:
        problems.append(f"{len(shrunk)} figures shown below 90% of their width (make them with "
                        f"plots.new_figure): {shrunk[:4]}")
    return problems


def check_summary(state: dict) -> list[str]:
    return [] if any(h.startswith("What this shows") for h in state["headings"]) else [
        "no 'What this shows' section (## What this shows, label <prefix>-summary)"]


def check_scorecard(state: dict, ids_by_path: dict[str, set[str]]) -> list[str]:
    claims = state["claims"]
    if not claims:
        return ["the scorecard has no rows"]
    problems = []
    no_status = [c["id"] for c in claims if c["status"] not in STATUSES]
    undeclared = [c["id"] for c in claims if c["status"] == "not declared"]
    if undeclared:
        problems.append(f"{len(undeclared)} expected claims not declared by any chapter: {undeclared}")
    other = [i for i in no_status if i not in undeclared]
    if other:
        problems.append(f"{len(other)} rows without a status: {other}")
    for c in claims:
        if c["href"] is None:
            continue
        url = urlparse(c["href"])
        if url.fragment not in ids_by_path.get(url.path, set()):
            problems.append(f"row {c['id']}: link {url.path}#{url.fragment} reaches no section")
    return problems


CHECKS = {"loads": check_loads, "console": check_console, "raw_tex": check_raw_tex, "reprs": check_reprs,
          "tables": check_tables, "figures": check_figures, "widgets": check_widgets}
CASES = ([(p, c) for p in PAGES for c in CHECKS] + [(p, "summary") for p in CHAPTER_PAGES]
         + ([(REPORT_PAGE, "scorecard")] if REPORT_PAGE else []))


@pytest.mark.parametrize("page,check", CASES, ids=[f"{Path(p).stem}-{c}" for p, c in CASES])
def test_page(pages, server, page, check):
    state = pages[page]
    if check == "summary":
        problems = check_summary(state)
    elif check == "scorecard":
        problems = check_scorecard(state, _page_ids(pages, server))
    else:
        problems = CHECKS[check](state)
    assert not problems, f"{page} [{check}]:\n  " + "\n  ".join(problems)


def test_intro_has_math_so_the_math_check_is_live(pages):
    intro = next(s for p, s in pages.items() if Path(p).stem == "intro")
    assert intro["typeset"] > 0


def test_checks_catch_what_they_claim():
    """The checks themselves, on hand-made page states (so a check that cannot fail is caught here)."""
    base = {"title": "t", "imgs": [], "math": 0, "typeset": 0, "mathErrors": 0, "mathjax": True, "traces": 0,
            "body": "", "console": [], "text": "", "outputs": "", "rows": [], "headings": [], "claims": []}
    assert check_raw_tex({**base, "text": "solves $$ A = B $$ and \\frac{a}{b}"})
    assert not check_raw_tex({**base, "text": "costs 5 dollars"})
    assert check_reprs({**base, "outputs": "Text(0.5, 0.98, 'title')"})
    assert check_reprs({**base, "outputs": "<Figure size 640x480 with 1 Axes>"})
    assert check_tables({**base, "rows": [["KL", "0.5"], ["λ", "nan"]]})
    assert not check_tables({**base, "rows": [["nanometre", "—"]]})
    assert check_console({**base, "console": [{"level": "SEVERE", "message": "Uncaught SyntaxError"}]})
    assert not check_console({**base, "console": [{"level": "WARNING", "message": "strict mode"}]})
    img = {"src": "a.png", "complete": True, "natural": 1000, "shown": 500, "attr": 500, "inOutput": True,
           "figure": True, "caption": "Fig. 1 x", "number": True}
    assert not check_figures({**base, "imgs": [img]})
    assert check_figures({**base, "imgs": [{**img, "attr": None}]})          # 1000-px image shown at 500
    assert check_figures({**base, "imgs": [{**img, "figure": False, "caption": "", "number": False}]})
    assert check_widgets({**base, "widgetViews": 2, "widgetsRendered": 0})
    assert not check_widgets({**base, "widgetViews": 2, "widgetsRendered": 5})
    assert check_summary({**base, "headings": ["Intro", "Summary"]})
    assert not check_summary({**base, "headings": ["What this shows"]})
    claims = [{"id": "a", "status": "not declared", "href": None},
              {"id": "b", "status": "partly", "href": "http://h/book/x.html#sec"}]
    problems = check_scorecard({**base, "claims": claims}, {"/book/x.html": {"other"}})
    assert any("not declared" in p for p in problems) and any("reaches no section" in p for p in problems)
    assert not check_scorecard({**base, "claims": claims[1:]}, {"/book/x.html": {"sec"}})
