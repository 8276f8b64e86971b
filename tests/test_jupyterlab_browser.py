"""JupyterLab opens the jupytext `.py` notebooks as notebooks, checked in a real browser.

The test starts JupyterLab from this environment on a free loopback port (random token, Jupyter
config/data/runtime/IPython dirs in a temporary folder, but the environment's JupyterLab app dir, so
the shipped `binder/overrides.json` installed by `make env` is in effect), opens
`notebooks/00_sam2_core.py` in headless Chromium driven by Selenium, and checks that it opens as a
notebook (not as a text editor). It then runs the first cells through the UI: the markdown title,
the parameters cell with `checkpoint = "random"` typed in (so that the test does not depend on the
trained nano weights) and the cell that loads the model, and checks that their output appears.

Nothing is saved: autosave is off in the temporary user settings and the test checks that the
notebook files are unchanged. A screenshot of the page is left in the test's tmp dir (failure.png on
failure). JupyterLab, the kernel, ChromeDriver and Chromium are always stopped, in bounded time.

Needs Debian's `chromium` and `chromium-driver` (CI installs them: see .ci/run); skipped elsewhere.
"""

import hashlib
import json
import sys
from pathlib import Path

import pytest

import browser_support
from browser_support import ROOT, api, skip_reason, wait

NOTEBOOK = "notebooks/00_sam2_core.py"
SHIPPED_OVERRIDES = ROOT / "binder" / "overrides.json"
INSTALLED_OVERRIDES = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
EXPECTED_TITLE = "The SAM-2 predictor core"  # the notebook's first markdown heading
EXPECTED_OUTPUT = "model: nano_sam2_256"  # printed by the first code cell after the parameters

SERVER_START_S = 90
PAGE_OPEN_S = 120
KERNEL_IDLE_S = 120
CELL_RUN_S = 240

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")


def _fingerprint(path):
    if path.is_dir():
        return sorted(p.name for p in path.iterdir())
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on a free loopback port, with the shipped viewer overrides installed;
    yields (base URL, token, log path)."""
    assert INSTALLED_OVERRIDES.is_file() and json.loads(INSTALLED_OVERRIDES.read_text()) == json.loads(
        SHIPPED_OVERRIDES.read_text()
    ), f"{INSTALLED_OVERRIDES} must be a copy of {SHIPPED_OVERRIDES} (`make env` installs it)"
    with browser_support.jupyterlab(tmp_path, start_s=SERVER_START_S) as server:
        yield server


@pytest.fixture
def chromium(tmp_path):
    with browser_support.chromium(tmp_path, page_load_s=PAGE_OPEN_S) as driver:
        yield driver


def test_py_notebook_opens_and_runs_in_jupyterlab(jupyterlab, chromium, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, token, log_path = jupyterlab
    driver = chromium
    paired = [ROOT / NOTEBOOK, (ROOT / NOTEBOOK).with_suffix(".ipynb")]
    before = {p: _fingerprint(p) for p in paired + [ROOT / "notebooks" / ".ipynb_checkpoints"]}

    def cells():
        return driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")

    def keys(*sequence):
        ActionChains(driver).send_keys(*sequence).perform()

    def chord(modifier, key):
        ActionChains(driver).key_down(modifier).send_keys(key).key_up(modifier).perform()

    try:
        driver.get(f"{base}/lab/tree/{NOTEBOOK}?token={token}")

        # Opened with the default viewer for python files: a notebook, not the text editor.
        def opened():
            tab = driver.find_elements(By.CSS_SELECTOR, ".jp-mod-current .lm-TabBar-tabLabel")
            if any(t.text == Path(NOTEBOOK).name for t in tab):
                return cells() or driver.find_elements(By.CSS_SELECTOR, ".jp-FileEditor:not(.lm-mod-hidden)")
            return None

        wait(f"{NOTEBOOK} to open", opened, PAGE_OPEN_S)
        text_editor = bool(driver.find_elements(By.CSS_SELECTOR, ".jp-FileEditor:not(.lm-mod-hidden)"))
        assert not text_editor, (
            f"{NOTEBOOK} opened in the text editor, not as a notebook: the 'Jupytext Notebook' default "
            "viewer from binder/overrides.json is not in effect"
        )
        wait("the notebook's cells", lambda: len(cells()) >= 3, 30)

        def kernel_idle():
            sessions = api(base, token, "/api/sessions")
            return any(s["path"] == NOTEBOOK and s["kernel"]["execution_state"] == "idle" for s in sessions)

        wait("the notebook's kernel to be idle", kernel_idle, KERNEL_IDLE_S, interval=1)

        first, params, load = cells()[:3]
        assert "jp-MarkdownCell" in first.get_attribute("class")
        assert "checkpoint = None" in params.text, params.text
        # 1. The markdown title cell: select it and run it (command mode, Shift+Enter).
        first.click()
        keys(Keys.ESCAPE)
        chord(Keys.SHIFT, Keys.ENTER)
        assert EXPECTED_TITLE in first.find_element(By.CSS_SELECTOR, ".jp-RenderedMarkdown").text

        # 2. The parameters cell (now selected): edit it, append checkpoint = "random", run it.
        keys(Keys.ENTER)  # edit mode
        chord(Keys.CONTROL, Keys.END)
        keys(Keys.ENTER, 'checkpoint = "random"')
        source = params.find_element(By.CSS_SELECTOR, ".cm-content").text
        assert source.rstrip().endswith('checkpoint = "random"'), source
        chord(Keys.SHIFT, Keys.ENTER)

        # 3. The cell that loads the model (now selected): run it and wait for its output.
        chord(Keys.SHIFT, Keys.ENTER)

        def printed():
            errors = load.find_elements(By.CSS_SELECTOR, '[data-mime-type="application/vnd.jupyter.error"]')
            if errors:
                raise AssertionError(f"the model cell failed:\n{errors[0].text}")
            text = " ".join(o.text for o in load.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output"))
            return text if EXPECTED_OUTPUT in text else None

        output = wait(f"'{EXPECTED_OUTPUT}' in the model cell's output", printed, CELL_RUN_S)
        assert "RANDOM WEIGHTS" in output  # the edited parameter reached the kernel
        assert "[1]" in params.find_element(By.CSS_SELECTOR, ".jp-InputPrompt").text
        driver.save_screenshot(str(tmp_path / "jupyterlab.png"))
    except Exception as err:
        shot = tmp_path / "failure.png"
        try:
            driver.save_screenshot(str(shot))
        except Exception:  # noqa: BLE001 (the browser may be gone)
            shot = "none (the browser did not answer)"
        log_tail = log_path.read_text(errors="replace")[-2000:]
        raise AssertionError(f"{err}\nscreenshot: {shot}\nJupyterLab log (tail):\n{log_tail}") from err

    after = {p: _fingerprint(p) for p in before}
    assert after == before, "the browser test must not modify (or add) files in notebooks/"
