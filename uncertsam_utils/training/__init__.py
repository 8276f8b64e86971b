"""Training: the one epoch loop of the modules trained on a frozen SAM-2 (``loop``), and the pieces every
trainer shares, the nano SAM-2's own step loop included: the fit data in memory (``data``) and its frozen encodings (``features``), seeded
sampling (``sampling``), optimiser and schedule (``schedule``), progress and clocks (``progress``) and
the resume state (``resume``). The trainers themselves live with their models: ``uq/varnet/training.py``
(variance head), ``refine/training.py`` (fusion modules), ``model/nano/training.py`` (nano SAM-2)."""

from .data import DEFAULT_SIZE, FitData, load_fit_split, read_split, tight_boxes
from .features import FrozenFeatures, encode_split
from .loop import EpochLoop, LoopConfig, LoopResult, LoopState, Trainer, optimisation_step
from .progress import RunningMean, Stopwatch, progress_bar
from .resume import RESUME_SUFFIX, ResumeFile, resume_path
from .sampling import epoch_order, stream, stream_seed
from .schedule import adamw_with_schedule, warmup_constant_decay

__all__ = ["DEFAULT_SIZE", "EpochLoop", "FitData", "FrozenFeatures", "encode_split", "LoopConfig", "LoopResult", "LoopState", "RESUME_SUFFIX",
           "ResumeFile", "RunningMean", "Stopwatch", "Trainer", "adamw_with_schedule", "epoch_order",
           "load_fit_split", "optimisation_step", "progress_bar", "read_split", "resume_path", "stream",
           "stream_seed", "tight_boxes", "warmup_constant_decay"]
