"""The predictor core every method uses: encode an image once, decode many prompts in one call.

Frames: images are squashed to the model's square input (``image_size``², aspect ratio not
kept, as the paper does); prompts are given in that input frame, in pixels. Low-resolution
logits are ``mask_size``² (4× the image embedding: 256² on official SAM-2, 64² on the nano
model) and are upsampled bilinearly to the original image size for metrics.

Single-mask output always comes from mask token 0. SAM-2's stability fallback (switch to the
multimask token with the best predicted IoU when token 0 is unstable) is available as
``stability_fallback=True`` for users who want SAM-2's interactive behaviour; it is off by
default because it makes the output token, and hence ``h`` and ``U``, depend on the input.

Numerics: fp32 everywhere on CPU and by default on CUDA. ``encoder_autocast=True`` runs the
image encoder under bf16 autocast on CUDA only (faster on large models); the decoder, whose
logits feed every metric and the Laplace closed forms, always runs in fp32.

Decoder: ``decoder="restructured"`` (default) computes SAM-2's mask decoder with the package's
modules and weights through ``mask_decoding.predict_masks``, equal to the package's
``MaskDecoder.predict_masks`` up to float rounding but with the image-side work of the first
block shared by all prompts of an image (2x faster for 30 prompts on hiera-tiny);
``decoder="sam2"`` runs the package's own decoder body (the reference; the nano trainer uses it).

Laplace internals: for each prompt, ``h`` is the input of the last Linear of
``output_hypernetworks_mlps[0]`` and ``U`` the upscaled mask embedding, from the same forward
pass (no second pass, no copy to host): logits = Uᵀ(W h + b). Variance-network inputs
(``return_tokens``): the two-way transformer's output image tokens and mask token 0's output.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .allocator import keep_freed_memory
from .images import to_rgb_uint8
from .mask_decoding import DecoderOutput, predict_masks

DECODERS = ("restructured", "sam2")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BOX_LABELS = (2, 3)  # SAM's labels for the top-left and bottom-right box corners


@dataclass
class Encoding:
    """Image-encoder output for a batch of images (batch index = image index)."""

    image_embed: torch.Tensor  # (T, C, e, e)
    high_res_feats: list[torch.Tensor]  # [(T, C/8, 4e, 4e), (T, C/4, 2e, 2e)] or []
    orig_hw: list[tuple[int, int]]

    @property
    def num_images(self) -> int:
        return self.image_embed.shape[0]


@dataclass
class Decoded:
    """Decoder output; leading dims follow the prompts' leading dims."""

    logits: torch.Tensor  # (..., m, m) low-resolution mask logits, token 0
    iou: torch.Tensor  # (...,) predicted IoU of token 0
    object_score: torch.Tensor  # (...,) object-presence logit (not applied as a gate)
    h: torch.Tensor | None = None  # (..., C) input of the treated Linear
    U: torch.Tensor | None = None  # (..., C/8, m, m) upscaled mask embedding
    all_logits: torch.Tensor | None = None  # (..., 4, m, m) every mask token (0: single mask, 1-3: multimask)
    all_iou: torch.Tensor | None = None  # (..., 4)
    image_tokens: torch.Tensor | None = None  # (..., C, e, e) two-way transformer output image tokens
    mask_token: torch.Tensor | None = None  # (..., C) transformer output of mask token 0


class Predictor:
    def __init__(self, model: torch.nn.Module, *, stability_fallback: bool = False, encoder_autocast: bool = False,
                 decoder: str = "restructured"):
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        self.decoder_impl = decoder
        self.model = model
        self.decoder = model.sam_mask_decoder
        self.prompt_encoder = model.sam_prompt_encoder
        self.stability_fallback = stability_fallback  # applied in decode; the shared model is not changed
        self.encoder_autocast = encoder_autocast
        self.image_size = int(model.image_size)
        self.embed_size = self.prompt_encoder.image_embedding_size[0]
        self.mask_size = 4 * self.embed_size
        self._cache_key: str | None = None
        self._cache: Encoding | None = None
        if self.device.type == "cpu":
            keep_freed_memory()  # batched decodes allocate > 32 MB blocks; see allocator.py

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ----------------------------------------------------------------- images
    def to_input(self, image) -> torch.Tensor:
        """One image (any supported layout) → (3, S, S) float in [0, 1] on the model's device."""
        return self._resize(to_rgb_uint8(image))

    def _resize(self, rgb: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(rgb).to(self.device).permute(2, 0, 1)[None].float() / 255.0
        resized = F.interpolate(tensor, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False, antialias=True)
        return resized[0].clamp_(0.0, 1.0)

    def encode(self, images, *, use_cache: bool = True) -> Encoding:
        """Encode one image or a list of images in one encoder pass; the last single image is cached."""
        batch = [to_rgb_uint8(image) for image in (images if isinstance(images, (list, tuple)) else [images])]
        key = None
        if use_cache and len(batch) == 1:
            key = hashlib.blake2b(batch[0].tobytes(), digest_size=16).hexdigest() + str(batch[0].shape)
            if key == self._cache_key and self._cache is not None:
                return self._cache
        inputs = torch.stack([self._resize(rgb) for rgb in batch])
        encoding = self.encode_inputs(inputs, [rgb.shape[:2] for rgb in batch])
        if key is not None:
            self._cache_key, self._cache = key, encoding
        return encoding

    def encode_inputs(self, inputs: torch.Tensor, orig_hw: list[tuple[int, int]]) -> Encoding:
        """Encode already-resized inputs (T, 3, S, S) in [0, 1], e.g. augmented copies for TTA."""
        if inputs.ndim != 4 or inputs.shape[1:] != (3, self.image_size, self.image_size):
            raise ValueError(f"expected inputs of shape (T, 3, {self.image_size}, {self.image_size}), got {tuple(inputs.shape)}")
        if len(orig_hw) != inputs.shape[0]:
            orig_hw = list(orig_hw) * inputs.shape[0] if len(orig_hw) == 1 else orig_hw
        mean = inputs.new_tensor(IMAGENET_MEAN)[:, None, None]
        std = inputs.new_tensor(IMAGENET_STD)[:, None, None]
        normalised = (inputs - mean) / std
        use_autocast = self.encoder_autocast and normalised.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_autocast):
            backbone = self.model.forward_image(normalised)
            _, feats, _, sizes = self.model._prepare_backbone_features(backbone)
        if self.model.directly_add_no_mem_embed:
            feats[-1] = feats[-1] + self.model.no_mem_embed
        batch = normalised.shape[0]
        maps = [f.float().permute(1, 2, 0).reshape(batch, -1, *size) for f, size in zip(feats, sizes)]
        return Encoding(image_embed=maps[-1], high_res_feats=maps[:-1], orig_hw=[tuple(hw) for hw in orig_hw])

    # ---------------------------------------------------------------- prompts
    def decode(
        self,
        encoding: Encoding,
        boxes=None,
        points=None,
        point_labels=None,
        mask_logits: torch.Tensor | None = None,
        image_index=None,
        *,
        dense_prompt: torch.Tensor | None = None,
        return_internals: bool = False,
        return_all_tokens: bool = False,
        return_tokens: bool = False,
    ) -> Decoded:
        """Decode a batch of prompts in one decoder call.

        ``boxes`` (..., 4) xyxy and/or ``points`` (..., P, 2) with ``point_labels`` (..., P), in
        input-frame pixels; any leading shape (objects × perturbations, images × objects, ...),
        shared by the outputs. ``mask_logits`` (..., m, m) is an optional dense mask prompt.
        ``image_index`` (...,) says which encoded image each prompt belongs to (default 0).
        ``dense_prompt`` (..., C, e, e) replaces the prompt encoder's dense embedding (what it makes of
        ``mask_logits``, or its no-mask embedding), e.g. a refinement module's fused prompt.
        ``return_all_tokens`` adds every mask token's logits and IoU (for training losses).
        ``return_tokens`` adds the transformer's image tokens and mask token 0's output.
        Gradients flow unless the caller disables them (training uses this same path).
        """
        coords, labels, lead = self._sparse_prompts(boxes, points, point_labels)
        n = coords.shape[0]
        if image_index is None:
            if encoding.num_images != 1:
                raise ValueError("image_index is required when the encoding holds several images")
            index = torch.zeros(n, dtype=torch.long, device=self.device)
        else:
            index = torch.as_tensor(image_index, device=self.device).long().expand(lead).reshape(-1)
        masks = None
        if mask_logits is not None:
            masks = mask_logits.to(self.device, torch.float32).reshape(n, 1, self.mask_size, self.mask_size)
        sparse, dense = self.prompt_encoder(points=(coords, labels), boxes=None, masks=masks)
        if dense_prompt is not None:
            if masks is not None:
                raise ValueError("give mask_logits or dense_prompt, not both")
            dense = dense_prompt.to(self.device, torch.float32).reshape(n, *dense.shape[1:])
        decoded = self._predict_masks(encoding, sparse, dense, index, single_image=image_index is None,
                                   same_dense=masks is None and dense_prompt is None)
        all_logits, all_iou, object_score = decoded.logits, decoded.iou, decoded.object_score
        if self.stability_fallback and not self.decoder.training:
            logits, iou = self.decoder._dynamic_multimask_via_stability(all_logits, all_iou)
        else:
            logits, iou = all_logits[:, 0:1], all_iou[:, 0:1]
        m = logits.shape[-1]
        out = Decoded(
            logits=logits[:, 0].reshape(*lead, m, m),
            iou=iou[:, 0].reshape(lead),
            object_score=object_score[:, 0].reshape(lead),
        )
        if return_all_tokens:
            out.all_logits = all_logits.reshape(*lead, -1, m, m)
            out.all_iou = all_iou.reshape(*lead, -1)
        if return_internals:
            out.h = decoded.h.reshape(*lead, -1)
            out.U = decoded.U.reshape(*lead, *decoded.U.shape[1:])
        if return_tokens:
            e = self.embed_size
            image_tokens = decoded.image_tokens.transpose(1, 2).reshape(n, -1, e, e)
            out.image_tokens = image_tokens.reshape(*lead, *image_tokens.shape[1:])
            out.mask_token = decoded.tokens[:, 1 + int(bool(self.decoder.pred_obj_scores))].reshape(*lead, -1)
        return out

    def _predict_masks(self, encoding: Encoding, sparse, dense, index, *, single_image: bool,
                       same_dense: bool) -> DecoderOutput:
        """Every mask token's logits and IoU, object scores and internals for (n,) prompts;
        ``same_dense``: ``dense`` is the no-mask embedding, the same for every prompt."""
        if self.decoder_impl == "restructured":
            return predict_masks(self.decoder, encoding.image_embed, self.prompt_encoder.get_dense_pe(), sparse,
                                 dense[:1] if same_dense else dense, encoding.high_res_feats, index)
        # The package's own decoder body (the reference), fed exactly as before the restructured
        # decoder existed (the shipped nano was trained so: its gradients sum in the same order);
        # internals captured by hooks on the same pass.
        n = sparse.shape[0]
        feats = [encoding.image_embed, *encoding.high_res_feats]
        if single_image:
            feats = [f.expand(n, *f.shape[1:]) for f in feats]  # broadcast views, not copies
        else:
            feats = [f.index_select(0, index) for f in feats]
        with self._capture() as captured:
            logits, iou, _, object_score = self.decoder.predict_masks(
                image_embeddings=feats[0],
                image_pe=self.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                repeat_image=False,
                high_res_features=feats[1:] or None,
            )
        return DecoderOutput(logits=logits, iou=iou, object_score=object_score, tokens=captured["tokens"],
                             image_tokens=captured["image_tokens"], h=captured["h"], U=captured["U"])

    def _sparse_prompts(self, boxes, points, point_labels):
        parts_c, parts_l, lead = [], [], None
        if boxes is not None:
            boxes = _as_float_tensor(boxes, self.device)
            if boxes.shape[-1] != 4:
                raise ValueError(f"boxes must have shape (..., 4), got {tuple(boxes.shape)}")
            lead = boxes.shape[:-1]
            parts_c.append(boxes.reshape(-1, 2, 2))
            parts_l.append(torch.tensor(BOX_LABELS, device=self.device).expand(parts_c[0].shape[0], 2))
        if points is not None:
            points = _as_float_tensor(points, self.device)
            if point_labels is None:
                raise ValueError("points need point_labels (1 foreground, 0 background)")
            labels = torch.as_tensor(point_labels, device=self.device)
            if points.shape[-1] != 2 or labels.shape != points.shape[:-1]:
                raise ValueError(f"points (..., P, 2) and labels (..., P) disagree: {tuple(points.shape)}, {tuple(labels.shape)}")
            if lead is not None and points.shape[:-2] != lead:
                raise ValueError(f"boxes lead shape {tuple(lead)} and points lead shape {tuple(points.shape[:-2])} differ")
            lead = points.shape[:-2]
            parts_c.append(points.reshape(-1, points.shape[-2], 2))
            parts_l.append(labels.reshape(-1, labels.shape[-1]))
        if lead is None:
            raise ValueError("decode needs boxes or points")
        coords = torch.cat(parts_c, dim=1)
        labels = torch.cat(parts_l, dim=1).int()
        return coords, labels, tuple(lead)

    @contextmanager
    def _capture(self):
        captured: dict[str, torch.Tensor] = {}
        treated = self.decoder.output_hypernetworks_mlps[0].layers[-1]
        last_upscale = self.decoder.output_upscaling[-1]  # runs last in both decoder variants

        def keep_transformer_outputs(_module, _args, outputs):
            captured["tokens"], captured["image_tokens"] = outputs

        handles = [
            treated.register_forward_pre_hook(lambda _m, args: captured.__setitem__("h", args[0])),
            last_upscale.register_forward_hook(lambda _m, _a, out: captured.__setitem__("U", out)),
            self.decoder.transformer.register_forward_hook(keep_transformer_outputs),
        ]
        try:
            yield captured
        finally:
            for handle in handles:
                handle.remove()

    @property
    def treated_layer(self) -> torch.nn.Linear:
        """The layer the Laplace approximation treats (last Linear of token 0's hypernetwork)."""
        return self.decoder.output_hypernetworks_mlps[0].layers[-1]

    # ------------------------------------------------------------ resolution
    @staticmethod
    def upsample(maps: torch.Tensor, orig_hw: tuple[int, int]) -> torch.Tensor:
        """Bilinear upsampling of (..., m, m) maps to the original (H, W), align_corners=False."""
        lead = maps.shape[:-2]
        flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
        up = F.interpolate(flat, size=tuple(orig_hw), mode="bilinear", align_corners=False)
        return up.reshape(*lead, *orig_hw)

    def predict(self, image, boxes) -> Decoded:
        """Plain SAM-2 prediction: encode (cached) + one decode of the boxes, no gradients."""
        with torch.inference_mode():
            return self.decode(self.encode(image), boxes=boxes)


def _as_float_tensor(values, device) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.to(device, torch.float32)
    return torch.tensor(np.asarray(values, dtype=np.float32), device=device)


def boxes_to_input_frame(boxes, orig_hw: tuple[int, int], image_size: int) -> np.ndarray:
    """Scale xyxy boxes from original-image pixels to the model's square input frame."""
    h, w = orig_hw
    scale = np.array([image_size / w, image_size / h, image_size / w, image_size / h], dtype=np.float32)
    return np.asarray(boxes, dtype=np.float32) * scale
