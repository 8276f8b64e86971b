import warnings

import numpy as np
import pytest
import torch

warnings.filterwarnings("ignore", message="torch.jit.script is deprecated", category=FutureWarning)


@pytest.fixture(scope="session")
def nano_random():
    from uncertsam_utils.model import load_model

    return load_model("nano", "random", seed=0)


@pytest.fixture(scope="session")
def tiny_random():
    from uncertsam_utils.model import load_model

    return load_model("sam2.1_hiera_tiny", "random", seed=0)


@pytest.fixture
def one_thread():
    """One torch thread for the test: many small ops on a busy two-core machine run up to 10x slower
    with two threads (they wait for each other), and one thread is as fast on an idle machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _no_grad_leaks():
    # Tests must not depend on a global grad mode left behind by another test.
    assert torch.is_grad_enabled()
    yield
    assert torch.is_grad_enabled()


def smooth_image(rng, h, w):
    coarse = rng.random((h // 16 + 2, w // 16 + 2, 3))
    up = np.kron(coarse, np.ones((16, 16, 1)))[:h, :w]
    return (up * 255).astype(np.uint8)


def pytest_terminal_summary(terminalreporter):
    """Skipped browser tests are said loudly at the end of the run, with the reason (a skip line is easy
    to miss in `make test`'s output)."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "browser" in r.nodeid]
    if not skipped:
        return
    terminalreporter.write_sep("!", f"{len(skipped)} BROWSER TEST(S) SKIPPED: NOT CHECKED IN A BROWSER", red=True, bold=True)
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        terminalreporter.write_line(f"  {report.nodeid}: {reason.removeprefix('Skipped: ')}", red=True)
