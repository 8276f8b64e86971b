"""What a notebook opens first: the benchmark root, its test domains, the model and its predictor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Session:
    root: Path  # benchmark root in the published layout
    datasets: list[str]  # its test domains, in the paper's order
    loaded: object  # LoadedModel
    predictor: object  # Predictor


def open_session(data_root=None, model: str = "nano", checkpoint=None, device: str = "cpu", *, seed: int = 0,
                 verbose: bool = True) -> Session:
    """``data_root`` None: UncertSAM-mini of generator seed ``seed`` from the cache (generated on first
    use); ``seed`` is also the init seed of random weights."""
    from .data.layout import DATASETS, list_datasets
    from .model import Predictor, load_model

    if data_root is None:
        from .data.mini import ensure_mini

        root = ensure_mini(seed=seed)
    else:
        root = Path(data_root)
    present = list_datasets(root)
    datasets = [d for d in DATASETS if d in present]
    loaded = load_model(model, checkpoint, device=device, seed=seed)
    predictor = Predictor(loaded.model)
    if verbose:
        print(f"model: {loaded.label}")
        print(f"data:  {root}  ({', '.join(datasets)})")
    return Session(root, datasets, loaded, predictor)
