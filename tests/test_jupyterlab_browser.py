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
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
NOTEBOOK = "notebooks/00_sam2_core.py"
SHIPPED_OVERRIDES = ROOT / "binder" / "overrides.json"
INSTALLED_OVERRIDES = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
EXPECTED_TITLE = "The SAM-2 predictor core"  # the notebook's first markdown heading
EXPECTED_OUTPUT = "model: nano_sam2_256"  # printed by the first code cell after the parameters

SERVER_START_S = 90
PAGE_OPEN_S = 120
KERNEL_IDLE_S = 120
CELL_RUN_S = 240
STOP_S = 15

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)


def _skip_reason():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return (
            f"browser test needs Debian's chromium and chromium-driver ({', '.join(missing)} missing); "
            "install them with `apt-get install chromium chromium-driver` (CI does)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "browser test needs selenium (pinned in requirements.txt; run `make env`)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fingerprint(path):
    if path.is_dir():
        return sorted(p.name for p in path.iterdir())
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _pids_with(marker):
    """Processes whose command line mentions `marker` (our tmp dir), other than this one."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(proc.name))
    return pids


def _kill_leftovers(marker):
    for pid in _pids_with(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _stop_process_group(proc):
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # JupyterLab shuts its kernels down on SIGTERM
        proc.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_S)
    except ProcessLookupError:
        pass


def _api(base, token, path):
    req = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def _wait(what, predicate, timeout, interval=0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server on a free loopback port; yields (base URL, token, log path)."""
    assert INSTALLED_OVERRIDES.is_file() and json.loads(INSTALLED_OVERRIDES.read_text()) == json.loads(
        SHIPPED_OVERRIDES.read_text()
    ), f"{INSTALLED_OVERRIDES} must be a copy of {SHIPPED_OVERRIDES} (`make env` installs it)"

    dirs = {name: tmp_path / "jupyter" / sub for name, sub in [
        ("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython"), ("MPLCONFIGDIR", "mpl"),
    ]}
    for d in dirs.values():
        d.mkdir(parents=True)
    # Autosave off: the test types into the parameters cell, and jupytext would write the edit to
    # the paired .py/.ipynb files. defaultViewers is not set here: it comes from the overrides.
    # The news prompt is answered "never" (it would cover part of the screenshot).
    user_settings = dirs["JUPYTER_CONFIG_DIR"] / "lab" / "user-settings" / "@jupyterlab"
    for plugin, settings in [("docmanager-extension/plugin", {"autosave": False}),
                             ("apputils-extension/notification", {"fetchNews": "false"})]:
        (user_settings / plugin).parent.mkdir(parents=True, exist_ok=True)
        (user_settings / f"{plugin}.jupyterlab-settings").write_text(json.dumps(settings))

    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERLAB_")}
    env.update({k: str(v) for k, v in dirs.items()})
    env.update(MPLBACKEND="Agg", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")

    port, token = _free_port(), secrets.token_hex(24)
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "jupyterlab.log"
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",  # CI runs as root
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={ROOT}", f"--IdentityProvider.token={token}",
        # Nothing reaches out to the network: no news feed, no update check, no PyPI extension manager.
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False",
        # Opening a file makes a checkpoint copy: keep it out of notebooks/ (an absolute path wins).
        f"--FileCheckpoints.checkpoint_dir={tmp_path / 'jupyter' / 'checkpoints'}",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def answers():
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                return _api(base, token, "/api/status")
            except OSError:
                return None

        _wait(f"JupyterLab to answer on {base}", answers, SERVER_START_S)
        yield base, token, log_path
    finally:
        _stop_process_group(proc)
        _kill_leftovers(str(tmp_path))  # a kernel the server failed to stop (its connection file)


@pytest.fixture
def chromium(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    # An explicit driver path: Selenium Manager is never run (it would try to download one).
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(PAGE_OPEN_S)
        driver.set_script_timeout(30)
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            if service.process is not None and service.process.poll() is None:
                service.process.kill()
                service.process.wait(timeout=STOP_S)
            _kill_leftovers(str(profile))


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

        _wait(f"{NOTEBOOK} to open", opened, PAGE_OPEN_S)
        text_editor = bool(driver.find_elements(By.CSS_SELECTOR, ".jp-FileEditor:not(.lm-mod-hidden)"))
        assert not text_editor, (
            f"{NOTEBOOK} opened in the text editor, not as a notebook: the 'Jupytext Notebook' default "
            "viewer from binder/overrides.json is not in effect"
        )
        _wait("the notebook's cells", lambda: len(cells()) >= 3, 30)

        def kernel_idle():
            sessions = _api(base, token, "/api/sessions")
            return any(s["path"] == NOTEBOOK and s["kernel"]["execution_state"] == "idle" for s in sessions)

        _wait("the notebook's kernel to be idle", kernel_idle, KERNEL_IDLE_S, interval=1)

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

        output = _wait(f"'{EXPECTED_OUTPUT}' in the model cell's output", printed, CELL_RUN_S)
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
