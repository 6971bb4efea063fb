"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs").

Unbiased MMD² with the cubic polynomial kernel, averaged over random subsets, in float64.
"""

from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID kernel `k(x, y) = (x·y / d + 1)^3`: `[M, D] x [L, D] -> [M, L]`.

    Degree 3, gamma 1/d, coef0 1 as torch-fidelity `metric_kid.py::kernel_poly` defaults.
    """
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between two equally sized samples `[m, D]`, `[m, D]` (m >= 2).

    `[Σ_{i≠j} k(x_i,x_j) + Σ_{i≠j} k(y_i,y_j)] / (m(m-1)) - 2 Σ_{i,j} k(x_i,y_j) / m²`
    (torch-fidelity `metric_kid.py::mmd2`, mmd_est="unbiased"). May be slightly negative when the
    two distributions are close; that is valid, not a bug.
    """
    m = x.shape[0]
    k_xx = polynomial_kernel(x, x)
    k_yy = polynomial_kernel(y, y)
    k_xy = polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    real, fake, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID between real and generated features: mean and std of per-subset unbiased MMD².

    For each of `num_subsets` subsets, `subset_size` rows are drawn without replacement from each set
    (real first, then fake) with one `np.random.RandomState(seed)`, as torch-fidelity
    `kid_features_to_metric` does (its default seed is 2020, ours 0). KID is usually reported ×1e3.

    `subset_size` is clipped to `min(N_real, N_fake)` as StyleGAN2-ADA `compute_kid` does
    (torch-fidelity raises instead); record the effective size with the result when the sets are
    smaller than 1000.

    Args:
      real: `[N_real, D]` real features.
      fake: `[N_fake, D]` generated features.
      num_subsets: number of random subsets (100 in the references).
      subset_size: rows per subset from each set (1000 in the references).
      seed: seed of the subset draws.

    Returns:
      `(mean, std)` over subsets (population std, `np.std`), as Python floats.
    """
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"kernel_inception_distance: expected real [N_real, D] and fake [N_fake, D] with the same D, got "
            f"{real.shape} and {fake.shape}."
        )
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        raise ValueError(
            f"kernel_inception_distance: the unbiased MMD² needs at least 2 samples per set, got "
            f"N_real={len(real)}, N_fake={len(fake)}, subset_size={subset_size}."
        )
    rng = np.random.RandomState(seed)
    mmds = np.empty(num_subsets)
    for i in range(num_subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        mmds[i] = mmd2_unbiased(x, y)
    return float(np.mean(mmds)), float(np.std(mmds))
