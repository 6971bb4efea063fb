"""Inception Score from classifier logits (Salimans et al. 2016)."""

from __future__ import annotations

import numpy as np


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax `[N, K] -> [N, K]`, stable (max subtracted)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def inception_score(logits, splits: int = 10, seed: int | None = 0) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))) per split; mean and std over splits.

    Follows torch-fidelity `metric_isc.py::isc_features_to_metric`: float64 log-softmax, the samples
    permuted with `np.random.RandomState(seed)` before splitting (class-ordered inputs otherwise give
    a low IS), split boundaries at `i * N // splits`. The protocol of the original
    openai/improved-gan code is 1008-way logits *without* the output bias (openai/improved-gan #29).

    Args:
      logits: `[N, K]` classifier logits (e.g. Inception `logits_unbiased`, K = 1008).
      splits: number of splits (10 in the references).
      seed: seed of the shuffle; `None` keeps the given order (contiguous splits, as openai and
        StyleGAN2-ADA do for i.i.d. generated samples).

    Returns:
      `(mean, std)` of the per-split scores, population std (`np.std`), as Python floats.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"inception_score: expected logits [N, K], got shape {logits.shape}.")
    n = logits.shape[0]
    if splits < 1 or n < splits:
        raise ValueError(f"inception_score: need 1 <= splits <= N, got splits={splits}, N={n}.")
    if seed is not None:
        logits = logits[np.random.RandomState(seed).permutation(n)]
    log_p = _log_softmax(logits)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits : (i + 1) * n // splits]
        log_marginal = np.log(np.exp(part).mean(axis=0))
        kl = np.sum(np.exp(part) * (part - log_marginal), axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
