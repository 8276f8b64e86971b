"""A training run's resume state: one file beside the output, ``<out>.resume.pt``, written atomically and
read back only by a run with the same key (seed, recipe, model, data), so that an interrupted run
continues exactly as an uninterrupted one and never as another run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..artifacts import save_atomic

RESUME_SUFFIX = ".resume.pt"


def resume_path(out) -> Path:
    """Where the run writing ``out`` keeps its resume state."""
    return Path(str(out) + RESUME_SUFFIX)


@dataclass(frozen=True)
class ResumeFile:
    path: Path
    key: dict  # what makes two runs the same run; stored in the file and checked on reading

    @classmethod
    def beside(cls, out, key: dict) -> "ResumeFile | None":
        """The resume file of the run writing ``out``; None when the run writes no file."""
        return None if out is None else cls(resume_path(out), key)

    def exists(self) -> bool:
        return self.path.is_file()

    def read(self) -> dict:
        """The saved state, refused when it was written by a run with another key."""
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("key") != self.key:
            raise ValueError(f"{self.path} was written by a different run (seed, recipe, model or data differ); "
                             "delete it or run without --resume")
        return state

    def write(self, state: dict) -> None:
        """``state`` plus the key, through a temporary file renamed into place (never half-written)."""
        save_atomic({**state, "key": self.key}, self.path)

    def remove(self) -> None:
        """The run is complete: its resume state is no longer needed."""
        self.path.unlink(missing_ok=True)
