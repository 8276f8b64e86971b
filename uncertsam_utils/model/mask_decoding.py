"""SAM-2's mask decoder, computed for many prompts at a fraction of the per-prompt cost.

The same function as ``MaskDecoder.predict_masks`` of the ``sam2`` package, with the package's
own modules and weights; tests/test_mask_decoding.py checks logits, IoU, object scores, tokens and
gradients against the package's ``predict_masks``. Three exact rewrites, equal up to float
rounding, make a prompt's share of the work small (on CPU, where the decoder's e² × C image
tokens dominate):

1. **Shared first block.** Without a mask prompt every prompt of an image enters the two-way
   transformer with the same image tokens, so the first block's image-side projections (keys and
   values of token→image attention, queries of image→token attention) are computed once per
   image, not once per prompt.
2. **Factored few-token attention.** A prompt has about ten tokens against e² image tokens. For
   token→image attention, scores_h = (q_h W_k,hᵀ) xᵀ (the key bias adds a per-row constant, which
   softmax ignores) and out_h = (softmax_h x) W_v,hᵀ + b_v,h, so the e² × C key and value
   projections are never formed. For image→token attention, scores_h = x (W_q,hᵀ k_hᵀ) + b_q,h k_hᵀ
   and the output projection is folded into the values: Σ_h A_h (v_h W_o,hᵀ + b_o / H) (each A_h
   row sums to one), added to the residual in the same matrix product.
3. **Channels-last upscaling.** A 2 × 2, stride-2 transposed convolution is a per-pixel matrix
   product; in channels-last layout SAM's LayerNorm2d becomes one ``layer_norm`` over the last
   dimension and the masks one batched product with the hypernetwork outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Part of every cache key of results computed through the decoder (evaluations, posteriors, heads,
# fusion modules): a change of numerics, even by rounding, recomputes them instead of mixing.
IMPLEMENTATION = "restructured-1"


@dataclass
class DecoderOutput:
    logits: torch.Tensor  # (n, M, m, m) every mask token's low-resolution logits
    iou: torch.Tensor  # (n, M)
    object_score: torch.Tensor  # (n, 1)
    tokens: torch.Tensor  # (n, Q, C) transformer outputs of the output tokens (object-score, IoU, mask tokens)
    image_tokens: torch.Tensor  # (n, e², C) transformer output image tokens
    h: torch.Tensor  # (n, C) input of the last Linear of mask token 0's hypernetwork
    U: torch.Tensor  # (n, C/8, m, m) upscaled mask embedding (a channels-last view)


def predict_masks(decoder, image_embed: torch.Tensor, image_pe: torch.Tensor, sparse: torch.Tensor,
                  dense: torch.Tensor, high_res_feats: list[torch.Tensor], index: torch.Tensor) -> DecoderOutput:
    """``decoder`` a sam2 ``MaskDecoder``; ``image_embed`` (T, C, e, e) one entry per encoded image;
    ``image_pe`` (1, C, e, e); ``sparse`` (n, P, C) prompt tokens; ``dense`` (n, C, e, e) dense
    prompt embeddings, or (1, C, e, e) when every prompt has the same one (no mask prompt);
    ``high_res_feats`` [(T, C/8, 4e, 4e), (T, C/4, 2e, 2e)] or []; ``index`` (n,) image of each prompt."""
    n = sparse.shape[0]
    shared = dense.shape[0] == 1  # the first block's image tokens are the same for all prompts of an image
    x = (image_embed + dense) if shared else (_per_prompt(image_embed, index) + dense)
    keys = x.flatten(2).transpose(1, 2)  # (T or n, e², C)
    key_pe = image_pe.flatten(2).transpose(1, 2)  # (1, e², C)

    s = 1 if decoder.pred_obj_scores else 0
    heads = [decoder.obj_score_token.weight] if s else []
    output_tokens = torch.cat([*heads, decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat([output_tokens.unsqueeze(0).expand(n, -1, -1), sparse], dim=1)
    queries, keys = _two_way_transformer(decoder.transformer, tokens, keys, key_pe, index if shared else None,
                                         output_tokens.shape[0])

    e = image_embed.shape[-1]
    U = _upscale(decoder, keys.reshape(n, e, e, -1), high_res_feats, index)  # (n, m, m, C/8)

    mask_tokens = queries[:, s + 1: s + 1 + decoder.num_mask_tokens]
    hypernetworks = [_mlp_with_last_input(mlp, mask_tokens[:, i])
                     for i, mlp in enumerate(decoder.output_hypernetworks_mlps)]
    hyper = torch.stack([out for out, _ in hypernetworks], dim=1)  # (n, M, C/8)
    h = hypernetworks[0][1]
    m = U.shape[1]
    logits = torch.bmm(hyper, U.reshape(n, m * m, -1).transpose(1, 2)).view(n, -1, m, m)
    iou = decoder.iou_prediction_head(queries[:, s])
    if decoder.pred_obj_scores:
        object_score = decoder.pred_obj_score_head(queries[:, 0])
    else:
        object_score = 10.0 * iou.new_ones(n, 1)  # the package's constant: object assumed present
    return DecoderOutput(logits=logits, iou=iou, object_score=object_score, tokens=queries, image_tokens=keys,
                         h=h, U=U.permute(0, 3, 1, 2))


def _per_prompt(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Per-image tensors (T, ...) → per prompt (n, ...): a broadcast view for one image, a gather for several."""
    if values.shape[0] == 1:
        return values.expand(index.shape[0], *values.shape[1:])
    return values.index_select(0, index)


def _mlp_with_last_input(mlp, x):
    for i, layer in enumerate(mlp.layers):
        if i == mlp.num_layers - 1:
            last_input = x
            x = layer(x)
        else:
            x = mlp.act(layer(x))
    return (torch.sigmoid(x) if mlp.sigmoid_output else x), last_input


# ---------------------------------------------------------------------------------- transformer

def _two_way_transformer(transformer, tokens, keys, key_pe, shared_index, used_tokens):
    """sam2 ``TwoWayTransformer.forward``; ``keys`` holds one entry per image while ``shared_index``
    is not None (first block), one per prompt afterwards. Only the first ``used_tokens`` tokens
    (the decoder's output tokens) go through the final attention: the prompt tokens' outputs are
    never read, and each query attends independently."""
    queries, query_pe = tokens, tokens
    for block in transformer.layers:
        if block.skip_first_layer_pe:
            queries = block.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + block.self_attn(q=q, k=q, v=queries)
        queries = block.norm1(queries)

        keys_pe = keys + key_pe  # both cross attentions of a block see the same keys
        queries = block.norm2(queries + _token_to_image(block.cross_attn_token_to_image, queries + query_pe,
                                                        keys_pe, keys, shared_index))
        queries = block.norm3(queries + block.mlp(queries))
        keys = _image_to_token(block.cross_attn_image_to_token, keys_pe, queries + query_pe, queries, keys,
                               shared_index)
        keys = block.norm4(keys)
        shared_index = None
    queries, query_pe = queries[:, :used_tokens], query_pe[:, :used_tokens]
    attn_out = _token_to_image(transformer.final_attn_token_to_image, queries + query_pe, keys + key_pe, keys, None)
    return transformer.norm_final_attn(queries + attn_out), keys


def _split(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """(H·d, C) projection weight → (H, d, C)."""
    return weight.view(heads, weight.shape[0] // heads, weight.shape[1])


def _check_attention(attn) -> None:
    if attn.training and attn.dropout_p > 0:
        raise ValueError("the restructured decoder has no attention dropout; SAM-2's decoder uses none")


def _token_to_image(attn, q_in, k_in, v_in, shared_index):
    """Attention of (n, Q, C) tokens to image tokens k_in / v_in, (n or T, N, C)."""
    _check_attention(attn)
    n, Q, _ = q_in.shape
    H = attn.num_heads
    d = attn.internal_dim // H
    # 1/√d applied to the few token-side queries, not to the n·H·Q·N scores.
    q = attn.q_proj(q_in).view(n, Q, H, d).transpose(1, 2) * (1.0 / math.sqrt(d))  # (n, H, Q, d)
    if shared_index is not None:
        # Project the image tokens once per image; attend per prompt.
        k = attn.k_proj(k_in).view(k_in.shape[0], -1, H, d).transpose(1, 2)  # (T, H, N, d)
        v = attn.v_proj(v_in).view(v_in.shape[0], -1, H, d).transpose(1, 2)
        k, v = _per_prompt(k, shared_index), _per_prompt(v, shared_index)
        probs = torch.softmax(torch.matmul(q, k.transpose(-1, -2)), dim=-1)
        out = torch.matmul(probs, v)  # (n, H, Q, d)
    else:
        w_k, w_v = _split(attn.k_proj.weight, H), _split(attn.v_proj.weight, H)
        q_k = torch.einsum("nhqd,hdc->nhqc", q, w_k).reshape(n, H * Q, -1)  # queries in image-token space
        probs = torch.softmax(torch.bmm(q_k, k_in.transpose(1, 2)), dim=-1)  # (n, H·Q, N)
        context = torch.bmm(probs, v_in).view(n, H, Q, -1)  # (n, H, Q, C)
        out = torch.einsum("nhqc,hdc->nhqd", context, w_v) + attn.v_proj.bias.view(H, 1, d)
    return attn.out_proj(out.transpose(1, 2).reshape(n, Q, H * d))


def _image_to_token(attn, q_in, k_in, v_in, residual, shared_index):
    """``residual`` + attention of image tokens q_in (n or T, N, C) to (n, Q, C) tokens."""
    _check_attention(attn)
    n, Q, C = k_in.shape
    H = attn.num_heads
    d = attn.internal_dim // H
    k = attn.k_proj(k_in).view(n, Q, H, d).transpose(1, 2) * (1.0 / math.sqrt(d))  # (n, H, Q, d), scaled
    v = attn.v_proj(v_in).view(n, Q, H, d).transpose(1, 2)
    # Output projection folded into the values; b_o / H per head sums to b_o (softmax rows sum to 1).
    values = torch.einsum("nhqd,chd->nhqc", v, attn.out_proj.weight.view(C, H, d)) + attn.out_proj.bias / H
    values = values.reshape(n, H * Q, C)
    # Scores laid out (n, H, Q, N): softmax over the few tokens then runs along a non-inner
    # dimension, vectorised over the many image tokens (a 10-wide inner softmax is slow on CPU).
    if shared_index is not None:
        q = attn.q_proj(q_in).view(q_in.shape[0], -1, H, d).transpose(1, 2)  # (T, H, N, d), once per image
        q = _per_prompt(q, shared_index)
        scores = torch.matmul(k, q.transpose(-1, -2))  # (n, H, Q, N)
        residual = _per_prompt(residual, shared_index)
    else:
        w_q = _split(attn.q_proj.weight, H)
        token_side = torch.einsum("hdc,nhqd->nhqc", w_q, k).reshape(n, H * Q, C)
        bias = torch.einsum("hd,nhqd->nhq", attn.q_proj.bias.view(H, d), k).reshape(n, H * Q, 1)
        scores = torch.baddbmm(bias, token_side, q_in.transpose(1, 2)).view(n, H, Q, -1)  # (n, H, Q, N)
    probs = torch.softmax(scores, dim=2).view(n, H * Q, -1).transpose(1, 2)  # (n, N, H·Q)
    return torch.baddbmm(residual, probs, values)


# ---------------------------------------------------------------------------------- upscaling

def _upscale(decoder, src, high_res_feats, index):
    """The decoder's output upscaling on channels-last (n, e, e, C) → (n, 4e, 4e, C/8)."""
    dc1, ln1, act1, dc2, act2 = decoder.output_upscaling
    feat_s0, feat_s1 = high_res_feats if high_res_feats else (None, None)
    x = _transposed_conv_2x2(dc1, src, feat_s1, index)
    x = act1(F.layer_norm(x, (x.shape[-1],), ln1.weight, ln1.bias, ln1.eps))
    return act2(_transposed_conv_2x2(dc2, x, feat_s0, index))


def _transposed_conv_2x2(conv, x, feat, index):
    """ConvTranspose2d(kernel 2, stride 2) on channels-last (n, h, w, Cin) → (n, 2h, 2w, Cout), plus the
    image's high-resolution features ``feat`` (T, Cout, 2h, 2w) when given."""
    if conv.kernel_size != (2, 2) or conv.stride != (2, 2) or conv.padding != (0, 0) or conv.groups != 1:
        raise ValueError(f"expected SAM's 2×2 stride-2 transposed convolution, got {conv}")
    n, h, w, _ = x.shape
    c_out = conv.out_channels
    weight = conv.weight.permute(0, 2, 3, 1).reshape(conv.in_channels, 4 * c_out)  # (Cin, a·b·Cout)
    y = torch.matmul(x, weight).view(n, h, w, 2, 2, c_out).permute(0, 1, 3, 2, 4, 5)  # (n, h, a, w, b, Cout)
    bias = conv.bias if conv.bias is not None else y.new_zeros(c_out)
    if feat is None:
        return y.reshape(n, 2 * h, 2 * w, c_out) + bias
    # Bias folded into the per-image features (T images, not n prompts); the contiguous first
    # operand makes the sum come out in (n, h, a, w, b, C) order, i.e. (n, 2h, 2w, C) channels-last.
    addend = (feat.permute(0, 2, 3, 1) + bias).contiguous().view(-1, h, 2, w, 2, c_out)
    return (_per_prompt(addend, index) + y).view(n, 2 * h, 2 * w, c_out)
