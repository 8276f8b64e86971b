"""The variance network's head (paper §3.4): a log-variance map from the frozen decoder's tokens.

SAM-2 stays frozen; this small module reads what the two-way transformer already computed for
a prompt (its image tokens and mask token 0's output, captured by ``Predictor.decode(...,
return_tokens=True)``) and predicts a per-pixel log-variance s of the residual y − σ(z):

* an upsampling branch on the image tokens (C channels, e×e): ×2 bilinear, 3×3 conv C→C/4,
  LayerNorm2d, GELU, ×2 bilinear, 3×3 conv C/4→C/8, GELU → (C/8, 4e, 4e), the mask size;
  unlike the mask branch it has no high-resolution skip features (as in the paper);
* a hypernetwork MLP C→C→C→C/8 (ReLU) on mask token 0's output;
* s = hyper · features per pixel, clamped to [−5, 5].

Only mask token 0 has a head: single-mask output always comes from token 0 here, so the
reference code's untrained heads for tokens 1–3 (selectable by its stability fallback) do not
exist. Sizes follow the model: C = 256 on official SAM-2, 64 on the nano model.

A trained head is stored on its own (``save_head``), with the identity of the model it was
trained on; ``load_head`` refuses a different model.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...artifacts import model_identity, read_payload, save_atomic

LOG_VARIANCE_RANGE = (-5.0, 5.0)
HEAD_FORMAT = "uncertsam-variance-head"
HEAD_FORMAT_VERSION = 1


class HeadModelMismatchError(ValueError):
    """A head file was trained on a different model than the one it is loaded onto."""


class VarianceHead(nn.Module):
    def __init__(self, dim: int, *, seed: int | None = 0):
        super().__init__()
        if dim % 8:
            raise ValueError(f"the transformer dimension must be a multiple of 8, got {dim}")
        from sam2.modeling.sam2_utils import MLP, LayerNorm2d

        self.dim = int(dim)
        self.training_record: dict = {}  # filled by load_head: how the head was trained
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.upscaling = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(dim, dim // 4, kernel_size=3, padding=1),
                LayerNorm2d(dim // 4),
                nn.GELU(),
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(dim // 4, dim // 8, kernel_size=3, padding=1),
                nn.GELU(),
            )
            self.hypernetwork = MLP(dim, dim, dim // 8, num_layers=3)
            # As the paper: Kaiming-normal (fan_out, ReLU) hypernetwork weights, zero biases;
            # the conv and norm layers keep PyTorch's default initialisation.
            for layer in self.hypernetwork.layers:
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def unclamped(self, image_tokens: torch.Tensor, mask_token: torch.Tensor) -> torch.Tensor:
        """s before the clamp: (..., C, e, e) image tokens and (..., C) mask token → (..., 4e, 4e)."""
        lead = image_tokens.shape[:-3]
        if mask_token.shape[:-1] != lead or mask_token.shape[-1] != self.dim or image_tokens.shape[-3] != self.dim:
            raise ValueError(
                f"a head for C={self.dim} got image tokens {tuple(image_tokens.shape)} and mask token {tuple(mask_token.shape)}"
            )
        # Channels-last: CPU upsampling and convolutions run about 2x faster in this layout (no
        # internal layout copies), and the transformer's tokens (n, e·e, C) already have it.
        tokens = image_tokens.reshape(-1, *image_tokens.shape[-3:]).contiguous(memory_format=torch.channels_last)
        features = self.upscaling(tokens)
        hyper = self.hypernetwork(mask_token.reshape(-1, self.dim))
        s = torch.einsum("nc,nchw->nhw", hyper, features)
        return s.reshape(*lead, *s.shape[-2:])

    def forward(self, image_tokens: torch.Tensor, mask_token: torch.Tensor) -> torch.Tensor:
        """The log-variance map s ∈ [−5, 5], (..., 4e, 4e) (the decoder's low-resolution mask size)."""
        return clamp_log_variance(self.unclamped(image_tokens, mask_token))


class _ClampPassingInwardGradients(torch.autograd.Function):
    """Clamp whose gradient still flows where it would move an out-of-range value back inside.

    A plain clamp has zero gradient outside the range, so pixels that start (or drift) beyond
    ±5 would never be trained again; the paper's loss at the clamped value still says which way
    is right. Gradients that push further outwards are dropped, so values cannot run away.
    """

    @staticmethod
    def forward(ctx, values, low, high):
        ctx.save_for_backward(values)
        ctx.low, ctx.high = low, high
        return values.clamp(low, high)

    @staticmethod
    def backward(ctx, grad):
        (values,) = ctx.saved_tensors
        # Gradient descent moves a value by −grad: inward above the range iff grad > 0.
        outward = ((values > ctx.high) & (grad < 0)) | ((values < ctx.low) & (grad > 0))
        return grad.masked_fill(outward, 0.0), None, None


def clamp_log_variance(s: torch.Tensor) -> torch.Tensor:
    if not (s.requires_grad and torch.is_grad_enabled()):
        return s.clamp(*LOG_VARIANCE_RANGE)  # same values; skips the autograd function at inference
    return _ClampPassingInwardGradients.apply(s, *LOG_VARIANCE_RANGE)


def gaussian_nll(log_variance: torch.Tensor, prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel ½[e^(−s)(p − y)² + s] (the paper's loss, without its constant); p gets no gradient.

    Its minimum over s is at s* = log (p − y)², the log squared residual."""
    squared_error = (prob.detach().float() - target.float()) ** 2
    return 0.5 * (torch.exp(-log_variance) * squared_error + log_variance)


# ------------------------------------------------------------------------------------- files

def transformer_dim(model: nn.Module) -> int:
    return int(model.sam_mask_decoder.transformer_dim)


def save_head(head: VarianceHead, path: str | Path, loaded_model, *, training: dict | None = None) -> Path:
    """Write the head's weights with its model's identity (and optional training record)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": HEAD_FORMAT,
        "version": HEAD_FORMAT_VERSION,
        "dim": head.dim,
        "model_identity": model_identity(loaded_model),
        "state_dict": {k: v.detach().cpu() for k, v in head.state_dict().items()},
        "training": training or {},
    }
    return save_atomic(payload, path)


def read_head_file(path: str | Path) -> dict:
    return read_payload(path, kind="variance head", file_format=HEAD_FORMAT, version=HEAD_FORMAT_VERSION)


def load_head(path: str | Path, loaded_model) -> VarianceHead:
    """The head stored at ``path``, checked against ``loaded_model`` (a ``LoadedModel``)."""
    payload = read_head_file(path)
    expected = model_identity(loaded_model)
    if payload["model_identity"] != expected:
        raise HeadModelMismatchError(
            f"variance head {path} was trained on model {payload['model_identity']}, "
            f"not on the loaded model {expected}; train a head for this model with `uncertsam train varnet`"
        )
    head = VarianceHead(payload["dim"], seed=None)
    head.load_state_dict(payload["state_dict"], strict=True)
    head.training_record = payload.get("training", {})
    return head.eval().to(next(loaded_model.model.parameters()).device)
