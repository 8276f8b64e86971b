"""The book in a real browser: every notebook page loads, its images render, no page shows an error.

The site is built (``uncertsam_utils.book.site.build_site``) from the executed notebooks of the
smoke run that ``make test`` has just made (its nbval step writes them to ``build/smoke/executed``
through ``uncertsam_utils.book.nbval_capture``) and that run's figures and tables
(``build/smoke/outputs``); ``UNCERTSAM_BOOK_NOTEBOOKS`` and ``UNCERTSAM_BOOK_OUTPUTS`` point
elsewhere. It is served on a loopback port and every page is opened in headless Chromium: the page
loads with its title, every ``<img>`` has decoded (naturalWidth > 0), no notebook output is an error
(myst-nb's ``output traceback`` blocks), the browser logs no error (a missing file, a failed
script), and no page asks the network for anything (the site must work offline).

``make test`` runs this file after the notebooks, naming them in ``UNCERTSAM_BOOK_NOTEBOOKS`` (none
there is a failure); a plain ``pytest tests`` without executed notebooks skips it, saying why.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading
from pathlib import Path

import pytest

from browser_support import ROOT, chromium, free_port, skip_reason, wait

NOTEBOOKS = Path(os.environ.get("UNCERTSAM_BOOK_NOTEBOOKS", ROOT / "build" / "smoke" / "executed"))
OUTPUTS = Path(os.environ.get("UNCERTSAM_BOOK_OUTPUTS", ROOT / "build" / "smoke" / "outputs"))
BUILD_BUDGET_S = 180  # the bound for `make book` after a run

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from uncertsam_utils.book.site import build_site, executed_notebooks
    from uncertsam_utils.reproduce import numbered_notebooks

    found = executed_notebooks(NOTEBOOKS)
    if not found and "UNCERTSAM_BOOK_NOTEBOOKS" in os.environ:  # make test's run: they must be there
        pytest.fail(f"no executed notebooks in {NOTEBOOKS} (UNCERTSAM_BOOK_NOTEBOOKS): did nbval_capture run?")
    if not found:
        pytest.skip(f"no executed notebooks in {NOTEBOOKS}: `make test` runs this test after its notebook step, "
                    "which writes them (or set UNCERTSAM_BOOK_NOTEBOOKS)")
    expected = [p.stem for p in numbered_notebooks()]
    assert [p.stem for p in found] == expected, f"{NOTEBOOKS} does not hold every numbered notebook of the checkout"
    built = build_site(NOTEBOOKS, tmp_path_factory.mktemp("book") / "site", figures=OUTPUTS / "figures",
                       tables=OUTPUTS / "tables")
    assert built.seconds < BUILD_BUDGET_S, f"the site took {built.seconds:.0f} s to build"
    return built


@pytest.fixture(scope="module")
def served(site):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # one line per request would bury the test's output
            pass

    handler = functools.partial(Quiet, directory=str(site.out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_landing_page_lists_every_notebook_in_numbered_order(site):
    index = (site.out / "index.html").read_text(encoding="utf-8")
    links = re.findall(r'href="notebooks/(\d\d_[\w-]+)\.html"', index)
    ordered = list(dict.fromkeys(links))
    assert ordered == [p.stem for p in site.pages], ordered
    assert all(page.is_file() for page in site.pages)
    if (OUTPUTS / "tables" / "claims.md").is_file():
        assert "The claims scorecard" in index
    else:
        assert "The tables" in index and "claims.md" in index


def test_no_page_loads_anything_from_the_network(site):
    remote = re.compile(r'<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)="(?:https?:)?//[^"]*"', re.I)
    offenders = {str(p.relative_to(site.out)): remote.findall(p.read_text(encoding="utf-8"))[:3]
                 for p in site.out.rglob("*.html") if remote.search(p.read_text(encoding="utf-8"))}
    assert not offenders, offenders


def test_every_page_renders_in_chromium(site, served, tmp_path):
    from selenium.webdriver.common.by import By

    pages = ["index.html", "tables.html"] + [str(p.relative_to(site.out)) for p in site.pages]
    problems = []
    with chromium(tmp_path) as driver:
        for page in pages:
            driver.get(f"{served}/{page}")
            wait(f"{page} to load", lambda: driver.execute_script("return document.readyState") == "complete", 60)
            wait(f"the images of {page} to decode", lambda: driver.execute_script(
                "return [...document.images].every(i => i.complete)"), 60)
            heading = driver.find_elements(By.CSS_SELECTOR, "article h1")
            images = driver.execute_script(
                "return [...document.images].map(i => [i.getAttribute('src').slice(0, 80), i.naturalWidth])")
            errors = driver.find_elements(By.CSS_SELECTOR, ".cell_output .output.traceback")
            logged = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            if not heading:
                problems.append(f"{page}: no title")
            problems += [f"{page}: image {src} did not render" for src, width in images if not width]
            problems += [f"{page}: error output: {e.text[:300]}" for e in errors]
            problems += [f"{page}: browser error: {m[:300]}" for m in logged]
            driver.save_screenshot(str(tmp_path / f"{Path(page).stem}.png"))
    assert not problems, "\n".join(problems)
