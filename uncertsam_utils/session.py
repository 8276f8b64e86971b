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


# torch's CPU thread count in every notebook. The float sums of a CPU computation depend on it, so it
# is part of every cache key (``artifacts.cpu_numerics``); one count for all notebooks lets each reuse
# what another fitted or trained, in any order. One: the evaluation's metric worker takes a second core.
NOTEBOOK_THREADS = 1


def use_notebook_threads(threads: int = NOTEBOOK_THREADS) -> int:
    """Set torch's CPU thread count to ``threads`` (what every notebook computes with); returns it."""
    import torch

    torch.set_num_threads(int(threads))
    return int(threads)


def open_session(data_root=None, model: str = "nano", checkpoint=None, device: str = "cpu", *, seed: int = 0,
                 verbose: bool = True, threads: int = NOTEBOOK_THREADS) -> Session:
    """``data_root`` None: UncertSAM-mini of generator seed ``seed`` from the cache (generated on first
    use); ``seed`` is also the init seed of random weights. Sets torch's CPU threads to ``threads``
    (``use_notebook_threads``)."""
    from .data.layout import DATASETS, list_datasets
    from .model import Predictor, load_model

    use_notebook_threads(threads)
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
