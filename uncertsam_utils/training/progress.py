"""What a training run shows and measures while it runs: a progress bar, a running loss and clocks
that continue across a resumed run."""

from __future__ import annotations

import time


def progress_bar(total: int, *, desc: str, unit: str = "step", initial: int = 0, enabled: bool = True,
                 leave: bool = False, smoothing: float = 0.05):
    """A tqdm bar (tqdm imported only when a run starts: importing the package stays fast)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, leave=leave,
                smoothing=smoothing)


class RunningMean:
    """Exponential moving average of a loss (the first value as the start), for the progress bar."""

    def __init__(self, decay: float = 0.98):
        self.decay, self.value = decay, None

    def add(self, value: float) -> float:
        self.value = value if self.value is None else self.decay * self.value + (1 - self.decay) * value
        return self.value


class Stopwatch:
    """Wall and process CPU seconds since the start, plus what earlier parts of the run measured."""

    def __init__(self, wall: float = 0.0, cpu: float = 0.0):
        self._wall0, self._cpu0 = time.perf_counter() - wall, time.process_time() - cpu

    @property
    def wall(self) -> float:
        return time.perf_counter() - self._wall0

    @property
    def cpu(self) -> float:
        return time.process_time() - self._cpu0
