"""Rank machinery shared by Spearman, AUROC, AUPR and AUSE: exact, tie-aware, one sort per quantity.

``argsort`` of float32 values packs the order-preserving 32-bit key of each value with its index
into one uint64 and sorts the values (numpy's vectorised sort), which is several times faster than
``np.argsort`` on large maps. Ties (equal values) always share their average rank / are treated as
one threshold, so the results do not depend on the order of tied pixels. Sums are plain numpy
reductions (no BLAS ``dot``: its threads stall on a busy machine).
"""

from __future__ import annotations

import math

import numpy as np

_SIGN = np.uint32(0x80000000)


def monotone_keys(values: np.ndarray) -> np.ndarray:
    """uint32 keys with key(a) < key(b) ⇔ a < b for finite float32 values (−0.0 counts as +0.0)."""
    v = np.ascontiguousarray(values, dtype=np.float32) + np.float32(0.0)  # −0.0 → +0.0
    bits = v.view(np.uint32)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def _values_of_keys(keys: np.ndarray) -> np.ndarray:
    """The float32 values of ``monotone_keys`` (its inverse)."""
    keys = keys.astype(np.uint32)
    return np.where(keys & _SIGN, keys ^ _SIGN, ~keys).view(np.float32)


def sort_with_order(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ascending order, sorted values) of a 1-D array, ties in index order. float32 takes the fast
    path: one sort of uint64 (key << 32 | index), the sorted values read back from the keys."""
    values = np.asarray(values)
    n = values.shape[0]
    if values.dtype == np.float32 and n < (1 << 32):
        packed = (monotone_keys(values).astype(np.uint64) << np.uint64(32)) | np.arange(n, dtype=np.uint64)
        packed.sort()
        order = (packed & np.uint64(0xFFFFFFFF)).astype(np.int64)
        return order, _values_of_keys(packed >> np.uint64(32))
    order = np.argsort(values, kind="stable")
    return order, values[order]


def argsort(values: np.ndarray) -> np.ndarray:
    """Ascending order of a 1-D array (ties in index order); fast path for float32."""
    return sort_with_order(values)[0]


def _groups(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of each run of equal values in a sorted array."""
    n = sorted_values.shape[0]
    new = np.empty(n, dtype=bool)
    new[:1] = True
    np.not_equal(sorted_values[1:], sorted_values[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1:] = n
    return starts, ends


class _Sorted:
    """A 1-D array's ascending order, sorted values and runs of ties."""

    def __init__(self, values: np.ndarray):
        self.n = values.shape[0]
        self.order, self.sorted = sort_with_order(values)
        self.starts, self.ends = _groups(self.sorted)
        self.ties = self.starts.shape[0] < self.n

    def sorted_ranks(self) -> np.ndarray:
        """1-based average ranks, in sorted order."""
        if not self.ties:
            return np.arange(1, self.n + 1, dtype=np.float64)
        return np.repeat((self.starts + self.ends + 1) / 2.0, self.ends - self.starts)

    def ranks(self) -> np.ndarray:
        """1-based average ranks, in the input's order."""
        out = np.empty(self.n, dtype=np.float64)
        out[self.order] = self.sorted_ranks()
        return out


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (scipy.stats.rankdata(method='average'))."""
    return _Sorted(np.asarray(values)).ranks()


def pearson_1d(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r in float64; 0 when either input is constant (no association can be measured)."""
    if x.shape[0] == 0:
        return math.nan
    xc = x - x.mean()
    yc = y - y.mean()
    den = math.sqrt(float((xc * xc).sum()) * float((yc * yc).sum()))
    return float((xc * yc).sum()) / den if den > 0 else 0.0


class Ranked:
    """One region's pixels: uncertainty u, soft error e and misclassified flags z (1-D, finite).
    u is sorted once for every metric; e once, when Spearman or AUSE asks for it."""

    def __init__(self, u: np.ndarray, e: np.ndarray | None = None, z: np.ndarray | None = None):
        self.u = np.asarray(u)
        self.e = None if e is None else np.asarray(e)
        self.z = None if z is None else np.asarray(z, dtype=bool)
        self.n = self.u.shape[0]
        self._u = _Sorted(self.u)
        self.order, self.starts, self.ends = self._u.order, self._u.starts, self._u.ends
        self._e: _Sorted | None = None

    def _sorted_e(self) -> _Sorted:
        if self._e is None:
            self._e = _Sorted(self.e)
        return self._e

    # -- correlation
    def spearman(self) -> float:
        """Pearson r of the average ranks (their mean is (n + 1)/2 exactly, ties or not)."""
        if self.n == 0:
            return math.nan
        centre = (self.n + 1) / 2.0
        x = self._u.sorted_ranks() - centre  # in u's sorted order
        y = self._sorted_e().ranks()[self.order] - centre  # e's ranks, in the same order
        den = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
        return float((x * y).sum()) / den if den > 0 else 0.0

    def spearman_with_ranks(self, e_ranks: np.ndarray) -> float:
        """Spearman ρ of u against another target whose average ranks ``e_ranks`` (input order) are
        given: a target shared by many maps is ranked once (``metrics.shared``)."""
        if self.n == 0:
            return math.nan
        centre = (self.n + 1) / 2.0
        x = self._u.sorted_ranks() - centre
        y = e_ranks[self.order] - centre
        den = math.sqrt(float((x * x).sum()) * float((y * y).sum()))
        return float((x * y).sum()) / den if den > 0 else 0.0

    # -- misclassification detection (z positive, u the score)
    def _positives_per_group(self) -> np.ndarray:
        z_sorted = self.z[self.order]
        if not self._u.ties:
            return z_sorted.astype(np.int64)
        return np.add.reduceat(z_sorted.astype(np.int64), self.starts) if self.n else np.zeros(0, np.int64)

    def auroc(self) -> float:
        """P(u_error > u_correct) + ½ P(tie) (Mann–Whitney); NaN without both classes."""
        pos = int(np.count_nonzero(self.z)) if self.n else 0
        neg = self.n - pos
        if pos == 0 or neg == 0:
            return math.nan
        if self._u.ties:
            rank_sum = float((self._positives_per_group() * ((self.starts + self.ends + 1) / 2.0)).sum())
        else:
            rank_sum = float(np.flatnonzero(self.z[self.order]).sum(dtype=np.float64)) + pos
        return (rank_sum - pos * (pos + 1) / 2.0) / (float(pos) * float(neg))

    def aupr(self) -> float:
        """Average precision of u for the errors (sklearn's ``average_precision_score``, ties as one
        threshold); NaN without errors. A constant map scores the error rate."""
        pos_g = self._positives_per_group()
        pos = int(pos_g.sum())
        if pos == 0:
            return math.nan
        cnt_desc = (self.ends - self.starts)[::-1]
        pos_desc = pos_g[::-1]
        tp = np.cumsum(pos_desc)
        seen = np.cumsum(cnt_desc)
        return float((pos_desc * (tp / seen)).sum()) / pos

    def risk_coverage(self, coverages) -> np.ndarray:
        """Selective prediction: for each coverage c, the share of misclassified pixels among the
        ⌊c · n + ½⌋ least uncertain ones (a tie group cut by the threshold counts in expectation)."""
        n = self.n
        keep = np.floor(np.asarray(coverages, dtype=np.float64) * n + 0.5).astype(np.int64)
        if n == 0:
            return np.full(keep.shape, math.nan)
        errors = self._positives_per_group().astype(np.float64)  # ascending u, one entry per tie group
        counts = (self.ends - self.starts).astype(np.float64)
        before = np.concatenate([[0.0], np.cumsum(errors)])
        group = np.clip(np.searchsorted(self.ends, keep, side="left"), 0, len(counts) - 1)
        inside = keep - self.starts[group]
        kept = before[group] + inside * errors[group] / counts[group]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(keep > 0, kept / np.maximum(keep, 1), math.nan)

    # -- sparsification
    def ause(self) -> float:
        """Area between the sparsification curve of u and the oracle's, for the soft error e.

        err_u(k) = mean e of the pixels left after removing the k most uncertain (tied pixels removed
        in expectation), err_o(k) the same removing the k largest errors; AUSE = mean over k = 0..N−1
        of err_u(k) − err_o(k), a Riemann sum of the area over the removed fraction [0, 1).
        ≥ 0; 0 when u orders the errors perfectly; in the units of e.
        """
        n = self.n
        if n == 0:
            return math.nan
        e = self.e.astype(np.float64)
        total = float(e.sum())
        remaining = np.arange(n, 0, -1, dtype=np.float64)  # N − k
        # oracle: remove the largest errors first
        removed_o = np.empty(n)
        removed_o[0] = 0.0
        np.cumsum(self._sorted_e().sorted[::-1][:-1], dtype=np.float64, out=removed_o[1:])
        # by uncertainty, most uncertain first; within a tie group, removal in expectation
        e_desc = e[self.order[::-1]]
        if not self._u.ties:
            removed_u = np.empty(n)
            removed_u[0] = 0.0
            np.cumsum(e_desc[:-1], out=removed_u[1:])
        else:
            starts_desc = (n - self.ends)[::-1]
            counts = (self.ends - self.starts)[::-1]
            group_sum = np.add.reduceat(e_desc, starts_desc)
            before = np.cumsum(group_sum) - group_sum
            gid = np.repeat(np.arange(starts_desc.shape[0]), counts)
            k = np.arange(n, dtype=np.float64)
            removed_u = before[gid] + (k - starts_desc[gid]) * (group_sum / counts)[gid]
        gap = np.maximum(total - removed_u, 0.0) - np.maximum(total - removed_o, 0.0)
        return float((gap / remaining).mean())


def subsample_index(n: int, max_pixels: int | None) -> np.ndarray | None:
    """Evenly spaced positions ⌊i · n / max_pixels⌋, i < max_pixels, when n exceeds the cap; else None."""
    if max_pixels is None or n <= max_pixels:
        return None
    return (np.arange(max_pixels, dtype=np.int64) * n) // max_pixels
