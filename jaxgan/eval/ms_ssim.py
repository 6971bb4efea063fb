"""MS-SSIM between image pairs, as PGGAN `metrics/ms_ssim.py::msssim`, which adapts
tensorflow/models `research/compression/msssim.py`.

Used as a diversity score: the mean MS-SSIM of random pairs of generated images (lower = more
diverse), next to the same number for random pairs of real images.
"""

from __future__ import annotations

import numpy as np

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003; they do not sum to 1


def gaussian_window_1d(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian `[size]`; its outer product with itself is PGGAN `_FSpecialGauss`.

    Even sizes are sampled at half-integer offsets, as MATLAB `fspecial` / `_FSpecialGauss` do.
    """
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _valid_filter(images: np.ndarray, window: np.ndarray) -> np.ndarray:
    """'valid' 2-D filtering of `[N, H, W, C]` with the separable window `outer(window, window)`.

    Equals PGGAN's `fftconvolve(img, window[1, s, s, 1], mode='valid')` (the window is symmetric, so
    convolution and correlation agree). Summing shifted slices per tap costs O(H W C size) and needs
    no padded copies, for any image size.
    """
    size = len(window)
    out_h, out_w = images.shape[1] - size + 1, images.shape[2] - size + 1
    rows = sum(w * images[:, t : t + out_h] for t, w in enumerate(window))
    return sum(w * rows[:, :, t : t + out_w] for t, w in enumerate(window))


def ssim_and_contrast(
    img1,
    img2,
    max_val: float = 255.0,
    filter_size: int = 11,
    filter_sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> tuple[np.ndarray, np.ndarray]:
    """Single-scale mean SSIM and contrast-structure term per image pair.

    Follows PGGAN `_SSIMForMultiScale`: the window shrinks to `size = min(filter_size, H, W)` with
    sigma scaled by `size / filter_size`, statistics over 'valid' positions, means over (H, W, C).

    Args:
      img1, img2: `[N, H, W, C]` images with values in [0, max_val] (any real dtype).

    Returns:
      `(ssim [N], cs [N])` float64, not clipped.
    """
    img1 = np.asarray(img1, dtype=np.float64)
    img2 = np.asarray(img2, dtype=np.float64)
    size = min(filter_size, img1.shape[1], img1.shape[2])
    window = gaussian_window_1d(size, size * filter_sigma / filter_size)
    mu1 = _valid_filter(img1, window)
    mu2 = _valid_filter(img2, window)
    sigma11 = _valid_filter(img1 * img1, window) - mu1 * mu1
    sigma22 = _valid_filter(img2 * img2, window) - mu2 * mu2
    sigma12 = _valid_filter(img1 * img2, window) - mu1 * mu2
    c1 = (k1 * max_val) ** 2
    c2 = (k2 * max_val) ** 2
    v1 = 2.0 * sigma12 + c2
    v2 = sigma11 + sigma22 + c2
    ssim = np.mean(
        (2.0 * mu1 * mu2 + c1) * v1 / ((mu1 * mu1 + mu2 * mu2 + c1) * v2), axis=(1, 2, 3)
    )
    cs = np.mean(v1 / v2, axis=(1, 2, 3))
    return ssim, cs


def _box_downsample(images: np.ndarray) -> np.ndarray:
    """2x2 average `[N, H, W, C] -> [N, H/2, W/2, C]` (PGGAN `_HoxDownsample`)."""
    return 0.25 * (
        images[:, 0::2, 0::2]
        + images[:, 1::2, 0::2]
        + images[:, 0::2, 1::2]
        + images[:, 1::2, 1::2]
    )


def ms_ssim(img1, img2, weights=MS_SSIM_WEIGHTS) -> np.ndarray:
    """MS-SSIM of each image pair: `[N, H, W, C] x [N, H, W, C] -> [N]`.

    PGGAN `msssim` with max_val 255, 11x11 Gaussian sigma 1.5 (shrunk for small scales), k1 0.01,
    k2 0.03, `len(weights)` scales with 2x2 box downsampling, SSIM and CS clipped at 0, and
    `prod(cs[:-1] ** w[:-1]) * ssim[-1] ** w[-1]`. PGGAN returns the mean over pairs; we return the
    per-pair values (take `.mean()` for its number). PGGAN's own protocol pairs
    `images[0::2]` with `images[1::2]`; see `ms_ssim_random_pairs` for random pairs.

    Args:
      img1, img2: uint8 `[N, H, W, C]`, H and W divisible by 2^(len(weights)-1) (16 for 5 scales).

    Returns:
      `[N]` float64 MS-SSIM values in [0, 1].
    """
    img1 = np.asarray(img1)
    img2 = np.asarray(img2)
    if img1.shape != img2.shape or img1.ndim != 4:
        raise ValueError(
            f"ms_ssim: expected two image batches [N, H, W, C] of one shape, got {img1.shape} and {img2.shape}."
        )
    if img1.dtype != np.uint8 or img2.dtype != np.uint8:
        raise ValueError(
            f"ms_ssim: expected uint8 images in [0, 255], got {img1.dtype} and {img2.dtype}. Quantise generator "
            "output first, e.g. np.clip(np.round(x * 127.5 + 127.5), 0, 255).astype(np.uint8)."
        )
    weights = np.asarray(weights, dtype=np.float64)
    factor = 2 ** (len(weights) - 1)
    if img1.shape[1] % factor or img1.shape[2] % factor:
        raise ValueError(
            f"ms_ssim: {len(weights)} scales halve the images {len(weights) - 1} times, so H and W must be "
            f"divisible by {factor}; got {img1.shape[1]}x{img1.shape[2]}. Crop or resize the images, or pass "
            "fewer weights."
        )
    im1 = img1.astype(np.float64)
    im2 = img2.astype(np.float64)
    ssims, css = [], []
    for level in range(len(weights)):
        if level:
            im1, im2 = _box_downsample(im1), _box_downsample(im2)
        ssim, cs = ssim_and_contrast(im1, im2)
        ssims.append(ssim)
        css.append(cs)
    ssims = np.clip(
        np.asarray(ssims), 0.0, None
    )  # clipped as in PGGAN, otherwise fractional powers give NaN
    css = np.clip(np.asarray(css), 0.0, None)
    return np.prod(css[:-1] ** weights[:-1, None], axis=0) * ssims[-1] ** weights[-1]


def ms_ssim_random_pairs(images, num_pairs: int, seed: int = 0, batch_size: int = 64) -> float:
    """Mean MS-SSIM over `num_pairs` random pairs of distinct images of one set.

    For generated images this is the diversity score (lower = more diverse); run it on real images
    with the same `num_pairs` for the baseline. PGGAN uses 10,000 pairs (20k images). Pairs (i, j),
    i != j, are drawn uniformly with replacement from `np.random.RandomState(seed)`.

    Args:
      images: uint8 `[N, H, W, C]`, N >= 2.
      num_pairs: number of pairs to average over.
      seed: seed of the pair draws.
      batch_size: pairs per `ms_ssim` call (bounds memory).

    Returns:
      The mean MS-SSIM as a Python float.
    """
    images = np.asarray(images)
    n = len(images)
    if n < 2 or num_pairs < 1:
        raise ValueError(
            f"ms_ssim_random_pairs: need N >= 2 images and num_pairs >= 1, got N={n}, num_pairs={num_pairs}."
        )
    rng = np.random.RandomState(seed)
    first = rng.randint(0, n, size=num_pairs)
    second = (first + rng.randint(1, n, size=num_pairs)) % n  # uniform over the other n - 1 images
    total = 0.0
    for start in range(0, num_pairs, batch_size):
        i, j = first[start : start + batch_size], second[start : start + batch_size]
        total += float(ms_ssim(images[i], images[j]).sum())
    return total / num_pairs
