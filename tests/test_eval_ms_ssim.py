"""MS-SSIM (PGGAN msssim): direct single-scale formula, closed-form offset case, monotonicity."""

import numpy as np
import pytest

from jaxgan.eval import ms_ssim

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])


def _fspecial_gauss(size, sigma):
    """MATLAB fspecial('gaussian'): 2-D grid, half-integer offsets for even sizes."""
    offset = 0.5 if size % 2 == 0 else 0.0
    coords = np.arange(-(size // 2), size // 2 + (size % 2)) + offset
    x, y = np.meshgrid(coords, coords, indexing="ij")
    g = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    return g / g.sum()


def _direct_ssim(img1, img2):
    """Single-scale SSIM/CS with an explicit loop over 'valid' window positions."""
    n, h, w, c = img1.shape
    size = min(11, h, w)
    win = _fspecial_gauss(size, size * 1.5 / 11)[None, :, :, None]
    ssim_map, cs_map = [], []
    for i in range(h - size + 1):
        for j in range(w - size + 1):
            a = img1[:, i : i + size, j : j + size].astype(np.float64)
            b = img2[:, i : i + size, j : j + size].astype(np.float64)
            mu_a, mu_b = (win * a).sum((1, 2)), (win * b).sum((1, 2))  # [N, C]
            var_a = (win * (a - mu_a[:, None, None]) ** 2).sum((1, 2))
            var_b = (win * (b - mu_b[:, None, None]) ** 2).sum((1, 2))
            cov = (win * (a - mu_a[:, None, None]) * (b - mu_b[:, None, None])).sum((1, 2))
            cs = (2 * cov + C2) / (var_a + var_b + C2)
            cs_map.append(cs)
            ssim_map.append((2 * mu_a * mu_b + C1) / (mu_a**2 + mu_b**2 + C1) * cs)
    return np.mean(ssim_map, axis=(0, 2)), np.mean(cs_map, axis=(0, 2))


@pytest.mark.parametrize(
    "shape", [(2, 14, 13, 3), (3, 8, 8, 1)]
)  # window 11 and shrunk even window 8
def test_single_scale_matches_direct_formula(shape):
    rng = np.random.default_rng(0)
    img1 = rng.integers(0, 256, shape, dtype=np.uint8)
    img2 = np.clip(img1 + rng.normal(0, 40, shape), 0, 255).astype(np.uint8)
    ssim, cs = ms_ssim.ssim_and_contrast(img1, img2)
    expected_ssim, expected_cs = _direct_ssim(img1, img2)
    np.testing.assert_allclose(ssim, expected_ssim, rtol=1e-9)
    np.testing.assert_allclose(cs, expected_cs, rtol=1e-9)
    assert np.all(ssim < 1)


def test_identical_pairs_give_one():
    images = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(ms_ssim.ms_ssim(images, images), 1.0, rtol=1e-12)


def test_constant_offset_closed_form():
    # Constant images a and a+d: every CS term is 1, the last-scale SSIM is the luminance term.
    a, d = 100.0, 30.0
    img1 = np.full((2, 32, 32, 3), a, dtype=np.uint8)
    img2 = np.full((2, 32, 32, 3), a + d, dtype=np.uint8)
    luminance = (2 * a * (a + d) + C1) / (a**2 + (a + d) ** 2 + C1)
    np.testing.assert_allclose(ms_ssim.ms_ssim(img1, img2), luminance ** WEIGHTS[-1], rtol=1e-10)


def test_decreases_with_noise():
    rng = np.random.default_rng(2)
    base = rng.integers(0, 256, (4, 32, 32, 3)).astype(np.float64)
    values = []
    for sigma in [2, 10, 30, 80]:
        noisy = np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8)
        values.append(ms_ssim.ms_ssim(base.astype(np.uint8), noisy).mean())
    assert all(x > y for x, y in zip(values, values[1:])), values
    assert values[0] < 1


def test_random_pairs_use_distinct_images():
    # With two images every distinct pair is (A, B) or (B, A), and MS-SSIM is symmetric.
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (2, 16, 16, 1), dtype=np.uint8)
    expected = ms_ssim.ms_ssim(images[:1], images[1:])[0]
    assert ms_ssim.ms_ssim_random_pairs(
        images, num_pairs=10, seed=0, batch_size=3
    ) == pytest.approx(expected, rel=1e-12)


def test_rejects_float_and_indivisible_sizes():
    with pytest.raises(ValueError, match="uint8"):
        ms_ssim.ms_ssim(np.zeros((1, 32, 32, 3)), np.zeros((1, 32, 32, 3)))
    with pytest.raises(ValueError, match="divisible by 16"):
        ms_ssim.ms_ssim(np.zeros((1, 24, 24, 3), np.uint8), np.zeros((1, 24, 24, 3), np.uint8))
