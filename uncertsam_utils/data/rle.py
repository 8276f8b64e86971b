"""COCO compressed RLE as the UncertSAM ``dataset.json`` stores it: the RLE byte string, base64-wrapped.

pycocotools decodes without bounds checks: a corrupt ``counts`` string makes it read or write past
its buffers and return garbage (we observed masks with more foreground pixels than the image has).
So every string is parsed and validated here first (vectorised numpy, no per-run Python loop):
the runs must be non-negative and add up to exactly H*W. Only then does pycocotools see it.

Format of the byte string (pycocotools ``rleToString``): each run count is written as 5-bit groups,
least significant first, each as ``chr(48 + group | 0x20 if more groups follow)``; bit 0x10 of the last
group is the sign. From the fourth run on (index > 2) the value is stored as a delta to the run two
places earlier.
"""

from __future__ import annotations

import base64
import binascii
import warnings
from dataclasses import dataclass

import numpy as np
import pycocotools.mask as mask_utils

from uncertsam_utils.data.errors import DataError

# Runs longer than 2**60 cannot occur in an image; more groups than this means a corrupt string
# (and would overflow int64 in the shift below).
_MAX_GROUPS_PER_COUNT = 12


@dataclass(frozen=True)
class ParsedRle:
    """A validated RLE: what pycocotools needs, plus what we learn from the runs without decoding."""

    coco: dict           # {"size": [H, W], "counts": bytes}, safe to pass to pycocotools
    height: int
    width: int
    area: int            # number of foreground pixels
    bbox: tuple[int, int, int, int] | None  # inclusive (y0, x0, y1, x1) at original resolution; None if empty


def encode_mask(mask: np.ndarray) -> dict:
    """A boolean HxW mask as a ``dataset.json`` segmentation: ``{"size": [H, W], "counts": <base64 str>}``."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": base64.b64encode(rle["counts"]).decode("ascii")}


def decode_counts(counts: bytes) -> np.ndarray:
    """Run lengths (int64) of a COCO compressed RLE byte string. Raises ValueError when malformed."""
    if not counts:
        raise ValueError("empty counts string")
    chars = np.frombuffer(counts, dtype=np.uint8).astype(np.int64) - 48
    if chars.min() < 0 or chars.max() > 63:
        raise ValueError("counts string has characters outside the RLE alphabet")
    more = (chars & 0x20) != 0
    if more[-1]:
        raise ValueError("counts string ends in the middle of a number")
    ends = np.flatnonzero(~more)                       # last group of every number
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > _MAX_GROUPS_PER_COUNT:
        raise ValueError("counts string has an impossibly long number")
    position = np.arange(chars.size) - np.repeat(starts, lengths)  # group index within its number
    values = np.add.reduceat((chars & 0x1F) << (5 * position), starts)
    negative = (chars[ends] & 0x10) != 0
    values = values - np.where(negative, np.left_shift(1, 5 * lengths), 0)
    runs = values.copy()
    # Undo the delta coding: run m (m > 2) = stored value + run m-2, i.e. a cumulative sum along
    # the odd runs from run 1 and along the even runs from run 2 (run 0 is stored as is).
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def parse_segmentation(segmentation, where: str, *, base64_counts: bool = True) -> ParsedRle:
    """Validate one ``segmentation`` entry of ``dataset.json``; ``where`` names it in errors.

    ``base64_counts=False`` reads a plain COCO RLE, whose ``counts`` is the compressed string itself
    (SA-1B's annotation files, pycocotools' own JSON)."""
    if not isinstance(segmentation, dict):
        raise DataError(f"{where}: 'segmentation' must be an object with 'size' and 'counts'")
    size = segmentation.get("size")
    if (not isinstance(size, list) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise DataError(f"{where}: segmentation 'size' must be [H, W] with positive integers, got {size!r}")
    counts_text = segmentation.get("counts")
    kind = "a base64 string of the COCO RLE bytes" if base64_counts else "a COCO compressed RLE string"
    if not isinstance(counts_text, str):
        raise DataError(f"{where}: segmentation 'counts' must be {kind}, got {type(counts_text).__name__}")
    try:
        counts = base64.b64decode(counts_text, validate=True) if base64_counts else counts_text.encode("ascii")
    except (binascii.Error, ValueError) as err:      # UnicodeEncodeError is a ValueError
        encoding = "valid base64" if base64_counts else "ASCII"
        raise DataError(f"{where}: segmentation 'counts' is not {encoding} ({err})") from err
    height, width = size
    try:
        runs = decode_counts(counts)
    except ValueError as err:
        raise DataError(f"{where}: segmentation 'counts' is not a COCO compressed RLE ({err})") from err
    if runs.min() < 0 or int(runs.sum()) != height * width:
        raise DataError(f"{where}: RLE runs cover {int(runs.sum())} pixels (some negative: {bool(runs.min() < 0)}),"
                        f" but size {height}x{width} has {height * width}")
    area = int(runs[1::2].sum())
    return ParsedRle({"size": [height, width], "counts": counts}, height, width, area,
                     _bbox_from_runs(runs, height) if area else None)


def _bbox_from_runs(runs: np.ndarray, height: int) -> tuple[int, int, int, int]:
    # Foreground runs are the odd ones; in column-major order run [s, e) covers columns s//H .. (e-1)//H.
    # A run spanning more than one column covers every row; otherwise its rows are s%H .. (e-1)%H.
    ends = np.cumsum(runs)
    starts = ends - runs
    fg = (np.arange(runs.size) % 2 == 1) & (runs > 0)
    s, e = starts[fg], ends[fg] - 1
    col_s, col_e = s // height, e // height
    x0, x1 = int(col_s.min()), int(col_e.max())
    spans_columns = col_e > col_s
    row_s = np.where(spans_columns, 0, s % height)
    row_e = np.where(spans_columns, height - 1, e % height)
    # (A run crossing a column boundary covers row H-1 of one column and row 0 of the next, so rows
    # 0 .. H-1 is exact for it even when it covers neither column fully.)
    return int(row_s.min()), x0, int(row_e.max()), x1


def decode_masks(rles: list[ParsedRle]) -> np.ndarray:
    """Decode validated RLEs of one image into an (N, H, W) bool array (C order)."""
    if not rles:
        raise ValueError("no RLEs to decode")
    with warnings.catch_warnings():
        # pycocotools' Cython wrapper trips numpy 2's __array__(copy=...) deprecation on every call.
        warnings.filterwarnings("ignore", message=r"__array__ implementation", category=DeprecationWarning)
        stacked = mask_utils.decode([r.coco for r in rles])    # (H, W, N), Fortran order
    return np.ascontiguousarray(np.moveaxis(stacked, -1, 0)).astype(bool)


def decode_box(rle: ParsedRle, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    """The (y1-y0+1, x1-x0+1) bool window of a validated RLE, without decoding the whole image.

    Only the columns x0..x1 are painted (a difference array over their column-major pixel range), so
    a small mask on an 18-megapixel BIG image costs microseconds instead of a full decode.
    """
    height = rle.height
    runs = decode_counts(rle.coco["counts"])
    ends = np.cumsum(runs)
    starts = ends - runs
    lo, hi = x0 * height, (x1 + 1) * height            # column-major range of the window's columns
    fg = (np.arange(runs.size) % 2 == 1) & (ends > lo) & (starts < hi)
    s = np.clip(starts[fg], lo, hi) - lo
    e = np.clip(ends[fg], lo, hi) - lo
    delta = np.bincount(s, minlength=hi - lo + 1)[: hi - lo + 1] - np.bincount(e, minlength=hi - lo + 1)[: hi - lo + 1]
    columns = (np.cumsum(delta[:-1]) > 0).reshape(x1 - x0 + 1, height)
    return np.ascontiguousarray(columns.T[y0:y1 + 1])
