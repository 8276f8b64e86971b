"""SAM-2 models: the checkpoint registry and the predictor core."""

from .checkpoints import CHECKPOINTS, CheckpointInfo, DownloadError, checkpoint_dir, download_checkpoint
from .predictor import Decoded, Encoding, Predictor, boxes_to_input_frame
from .registry import RANDOM, CheckpointMismatchError, LoadedModel, load_model

__all__ = [
    "CHECKPOINTS", "CheckpointInfo", "DownloadError", "checkpoint_dir", "download_checkpoint",
    "Decoded", "Encoding", "Predictor", "boxes_to_input_frame",
    "RANDOM", "CheckpointMismatchError", "LoadedModel", "load_model",
]
