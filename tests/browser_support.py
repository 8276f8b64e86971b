"""Headless Chromium and JupyterLab for the browser tests of the book and the explorer.

``skip_reason()`` says why a browser test cannot run here (None: it can); ``chromium(tmp)`` is a
Selenium driver of Debian's Chromium with an explicit ChromeDriver (Selenium Manager never runs:
it would download one), console logging on; ``jupyterlab(tmp)`` a JupyterLab server of this
environment on a free loopback port with its own config, data and runtime folders (autosave off,
nothing fetched), as tests/test_jupyterlab_browser.py starts it. Both are context managers that
always stop what they started, in bounded time, and only that (by process group and by the tmp
folder named in the command lines).
"""

from __future__ import annotations

import contextlib
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

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
STOP_S = 15
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000")


def skip_reason() -> str | None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return (f"browser test needs Debian's chromium and chromium-driver ({', '.join(missing)} missing); "
                "install them with `apt-get install chromium chromium-driver` (CI does)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "browser test needs selenium (pinned in requirements.txt; run `make env`)"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(what, predicate, timeout, interval=0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def kill_leftovers(marker: str) -> None:
    """Kill the processes whose command line names ``marker`` (a tmp folder of this test)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


@contextlib.contextmanager
def chromium(tmp: Path, *, page_load_s: int = 120):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tmp / "chromium-profile"
    profile.mkdir(parents=True)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(page_load_s)
        driver.set_script_timeout(30)
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            if service.process is not None and service.process.poll() is None:
                service.process.kill()
                service.process.wait(timeout=STOP_S)
            kill_leftovers(str(profile))


def api(base: str, token: str, path: str):
    req = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def _stop_group(proc) -> None:
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


def _jupyter_dirs(tmp: Path) -> dict[str, Path]:
    dirs = {name: tmp / "jupyter" / sub for name, sub in [
        ("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"), ("MPLCONFIGDIR", "mpl")]}
    for d in dirs.values():
        d.mkdir(parents=True)
    # Autosave off (the tests type into parameter cells; jupytext would write the edits to the pairs);
    # the news prompt answered "never" (it would cover part of the page).
    user_settings = dirs["JUPYTER_CONFIG_DIR"] / "lab" / "user-settings" / "@jupyterlab"
    for plugin, settings in [("docmanager-extension/plugin", {"autosave": False}),
                             ("apputils-extension/notification", {"fetchNews": "false"})]:
        (user_settings / plugin).parent.mkdir(parents=True, exist_ok=True)
        (user_settings / f"{plugin}.jupyterlab-settings").write_text(json.dumps(settings))
    return dirs


@contextlib.contextmanager
def jupyterlab(tmp: Path, *, start_s: int = 90):
    """Yields (base URL, token, log path) of a JupyterLab server rooted at the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERLAB_")}
    env.update({k: str(v) for k, v in _jupyter_dirs(tmp).items()})
    env.update(MPLBACKEND="module://matplotlib_inline.backend_inline", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    port, token = free_port(), secrets.token_hex(24)
    base, log_path = f"http://127.0.0.1:{port}", tmp / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",  # CI runs as root
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--ServerApp.root_dir={ROOT}", f"--IdentityProvider.token={token}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False",
           f"--FileCheckpoints.checkpoint_dir={tmp / 'jupyter' / 'checkpoints'}"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def answers():
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                return api(base, token, "/api/status")
            except OSError:
                return None

        wait(f"JupyterLab to answer on {base}", answers, start_s)
        yield base, token, log_path
    finally:
        _stop_group(proc)
        kill_leftovers(str(tmp))  # a kernel the server failed to stop (its connection file names tmp)
