"""Improved precision and recall (Kynkäänniemi et al. 2019).

Each sample gets a ball whose radius is the distance to its k-th nearest neighbour in its own set.
Precision = fraction of generated samples inside at least one real ball; recall = fraction of real
samples inside at least one generated ball. Distances are computed in blocks, so a 50k x 50k
problem needs only `block_size²` floats at a time.
"""

from __future__ import annotations

import numpy as np


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances `[M, D] x [L, D] -> [M, L]`, float64, via |a|² + |b|² - 2 a·b."""
    sq = np.sum(a * a, axis=1)[:, None] + np.sum(b * b, axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0.0))  # round-off can make the expansion slightly negative


def _blocks(n: int, block_size: int):
    return [slice(start, min(start + block_size, n)) for start in range(0, n, block_size)]


def knn_radii(features: np.ndarray, k: int, block_size: int) -> np.ndarray:
    """Distance of each row of `[N, D]` to its k-th nearest other row: `[N]`.

    The self-distance (0) is the smallest in each row, so this is the (k+1)-th smallest distance,
    like `kthvalue(k + 1)` in StyleGAN2-ADA `compute_pr` and torch-fidelity `metric_prc.py`.
    """
    n = len(features)
    radii = np.empty(n)
    for rows in _blocks(n, block_size):
        # The k+1 smallest of each column block; the k+1 smallest overall are among them.
        candidates = []
        for cols in _blocks(n, block_size):
            dist = pairwise_distances(features[rows], features[cols])
            kk = min(k + 1, dist.shape[1])
            candidates.append(np.partition(dist, kk - 1, axis=1)[:, :kk])
        radii[rows] = np.partition(np.concatenate(candidates, axis=1), k, axis=1)[:, k]
    return radii


def _fraction_inside_balls(
    probes: np.ndarray, centres: np.ndarray, radii: np.ndarray, block_size: int
) -> float:
    """Fraction of `probes [P, D]` within `radii [C]` (inclusive) of at least one of `centres [C, D]`."""
    inside = np.zeros(len(probes), dtype=bool)
    for rows in _blocks(len(probes), block_size):
        for cols in _blocks(len(centres), block_size):
            dist = pairwise_distances(probes[rows], centres[cols])
            inside[rows] |= np.any(dist <= radii[cols][None, :], axis=1)
    return float(inside.mean())


def precision_recall(
    real_features, fake_features, k: int = 3, block_size: int = 4096
) -> dict[str, float]:
    """Improved precision and recall of generated features against real features.

    **Argument order is (real, fake)**, the same as our FID/KID functions. torch-fidelity uses
    (generated, real) and once had precision and recall swapped (torch-fidelity #58); pass keywords
    when in doubt. Follows StyleGAN2-ADA `metrics/precision_recall.py::compute_pr`
    (precision: manifold = real, probes = fake; recall: manifold = fake, probes = real; `<=` test),
    in float64 instead of its float16 distances.

    Args:
      real_features: `[N_real, D]` real features (VGG16 fc2 in the paper, or Inception pool3; say which).
      fake_features: `[N_fake, D]` generated features.
      k: neighbourhood size (3 in the paper and the references).
      block_size: rows and columns per distance block; memory is about `8 * block_size²` bytes
        (4096 -> 128 MiB).

    Returns:
      `{"precision": float, "recall": float}`.
    """
    real = np.asarray(real_features, dtype=np.float64)
    fake = np.asarray(fake_features, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"precision_recall: expected real [N_real, D] and fake [N_fake, D] with the same D, got "
            f"{real.shape} and {fake.shape}."
        )
    if k < 1 or min(len(real), len(fake)) <= k:
        raise ValueError(
            f"precision_recall: k={k} nearest neighbours need more than k samples per set and k >= 1, got "
            f"N_real={len(real)}, N_fake={len(fake)}."
        )
    if block_size < 1:
        raise ValueError(f"precision_recall: block_size must be >= 1, got {block_size}.")
    real_radii = knn_radii(real, k, block_size)
    fake_radii = knn_radii(fake, k, block_size)
    return {
        "precision": _fraction_inside_balls(fake, real, real_radii, block_size),
        "recall": _fraction_inside_balls(real, fake, fake_radii, block_size),
    }
