"""The nano SAM-2: the project's own small SAM-2 (the ``sam2`` package's classes at 256², 1.7 M parameters),
its training recipe (``recipe``), batches (``sampling``), loss (``loss``), training run (``training``)
and model card (``card``). The shipped weights are ``model/weights/nano_sam2_256.pt``."""

from ...training.data import FitData, read_split, tight_boxes
from .card import EvalItem, evaluate_items, evaluate_split, items_from_samples, nano_card, summarise
from .loss import batch_loss, forward_batch
from .recipe import DEFAULT_STEPS, IMAGE_SIZE, TrainConfig
from .sampling import KINDS, Batch, box_raster, sample_batch
from .training import TrainResult, load_fit, make_optimizer, resume_path, train, train_from_root, train_step, write_weights

__all__ = ["DEFAULT_STEPS", "IMAGE_SIZE", "KINDS", "Batch", "EvalItem", "FitData", "TrainConfig", "TrainResult",
           "batch_loss", "box_raster", "evaluate_items", "evaluate_split", "forward_batch", "items_from_samples",
           "load_fit", "make_optimizer", "nano_card", "read_split", "resume_path", "sample_batch", "summarise",
           "tight_boxes", "train", "train_from_root", "train_step", "write_weights"]
