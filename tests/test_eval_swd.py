"""SWD: pyramid vs scipy.ndimage mirror convolution, per-piece references, end-to-end PGGAN algorithm."""

import jax
import numpy as np
import pytest
import scipy.ndimage

from jaxgan.eval import swd

KERNEL = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0  # PGGAN gaussian_filter
SMALL = swd.SWDConfig(nhoods_per_image=16, dir_repeats=2, dirs_per_repeat=20, num_images=0)


def _scipy_pyramid(images_nchw, num_levels):
    """PGGAN generate_laplacian_pyramid with the full 2-D kernel and scipy's mirror mode, in float64."""

    def down(x):
        return scipy.ndimage.convolve(x, KERNEL[None, None], mode="mirror")[:, :, ::2, ::2]

    def up(x):
        z = np.zeros(x.shape[:2] + (2 * x.shape[2], 2 * x.shape[3]), x.dtype)
        z[:, :, ::2, ::2] = x
        return scipy.ndimage.convolve(z, 4 * KERNEL[None, None], mode="mirror")

    pyramid = [np.float64(images_nchw)]
    for _ in range(1, num_levels):
        pyramid.append(down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - up(pyramid[-1])
    return pyramid


def _reference_swd(real_batches, fake_batches, resolutions, config, seed):
    """PGGAN's algorithm in plain float64 numpy: scipy pyramid, explicit patch loop, np.std normalisation,
    float64 directions and projections; the same RandomState calls in the same order."""
    rng = np.random.RandomState(seed)
    half = config.nhood_size // 2

    def descriptors(batches):
        per_level = [[] for _ in resolutions]
        for batch in batches:
            nchw = np.repeat(batch, 3, axis=3) if batch.shape[3] == 1 else batch
            for lod, level in enumerate(
                _scipy_pyramid(nchw.transpose(0, 3, 1, 2), len(resolutions))
            ):
                count = len(batch) * config.nhoods_per_image
                xs = rng.randint(half, level.shape[3] - half, size=count)
                ys = rng.randint(half, level.shape[2] - half, size=count)
                for m, (x, y) in enumerate(zip(xs, ys)):
                    img = level[m // config.nhoods_per_image]
                    per_level[lod].append(img[:, y - half : y + half + 1, x - half : x + half + 1])
        out = []
        for patches in per_level:
            d = np.stack(patches).astype(np.float64)
            d = (d - d.mean(axis=(0, 2, 3), keepdims=True)) / d.std(axis=(0, 2, 3), keepdims=True)
            out.append(d.reshape(len(d), -1))
        return out

    real, fake = descriptors(real_batches), descriptors(fake_batches)
    values = []
    for a, b in zip(real, fake):
        per_repeat = []
        for _ in range(config.dir_repeats):
            dirs = rng.randn(a.shape[1], config.dirs_per_repeat)
            dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
            per_repeat.append(
                np.mean(np.abs(np.sort(a @ dirs, axis=0) - np.sort(b @ dirs, axis=0)))
            )
        values.append(1e3 * np.mean(per_repeat))
    return values


def _images(seed, n, res=32, channels=3):
    rng = np.random.default_rng(seed)
    smooth = scipy.ndimage.gaussian_filter(
        rng.normal(size=(n, res, res, channels)), (0, 1.5, 1.5, 0)
    )
    return np.clip(128 + 600 * smooth + rng.normal(0, 8, smooth.shape), 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_pyramid_matches_scipy_mirror_convolution():
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 32, 32)).astype(np.float32)
    # Ours is float32 throughout: ~10 roundings of values <= 255 (1/2 ulp = 7.6e-6 each); measured
    # <= 4.2e-5 against this float64 reference.
    np.testing.assert_allclose(
        swd.pyr_down(x),
        scipy.ndimage.convolve(np.float64(x), KERNEL[None, None], mode="mirror")[:, :, ::2, ::2],
        rtol=1e-6,
        atol=1e-4,
    )
    for ours, ref in zip(swd.laplacian_pyramid(x, 3), _scipy_pyramid(x, 3)):
        assert ours.shape == ref.shape and ours.dtype == np.float32
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-4)


def test_resolutions_and_errors():
    assert swd.swd_resolutions(32) == [32, 16]
    assert swd.swd_resolutions(128) == [128, 64, 32, 16]
    assert swd.swd_resolutions(28) == [28]
    with pytest.raises(ValueError, match="halve exactly"):
        swd.swd_resolutions(33)
    with pytest.raises(ValueError, match=">= 16"):
        swd.swd_resolutions(8)


def test_normalize_descriptors_matches_direct_numpy():
    rng = np.random.default_rng(1)
    patches = rng.normal(size=(500, 3, 7, 7)) * [[[[3.0]], [[0.5]], [[8.0]]]] + [
        [[[10.0]], [[-2.0]], [[0.0]]]
    ]
    expected = (
        (patches - patches.mean(axis=(0, 2, 3), keepdims=True))
        / patches.std(axis=(0, 2, 3), keepdims=True)
    ).reshape(500, -1)
    # Statistics over all blocks together, whatever the split.
    blocks = swd.normalize_descriptors(np.split(patches.astype(np.float32), [64, 300]))
    assert [block.shape for block in blocks] == [(64, 147), (236, 147), (200, 147)]
    # float32 input and (x - mean) / std: ~3 roundings of |x| <= ~25 over std >= 0.5, ~4e-6.
    np.testing.assert_allclose(np.concatenate(blocks), expected, rtol=1e-4, atol=1e-5)
    # Blank images: the std, taken about the mean, is exactly 0 at every level, an error.
    acc = swd.SWDDescriptorAccumulator(32, 0, SMALL)
    acc.add(np.full((2, 32, 32, 3), 127, np.uint8))
    with pytest.raises(ValueError, match="constant"):
        acc.finalize()


def test_sample_patches_match_explicit_slices():
    level = np.random.default_rng(2).normal(size=(3, 3, 16, 16)).astype(np.float32)
    x, y = swd.draw_patch_centres(np.random.RandomState(7), 15, 16, 7)
    patches = swd.gather_patches(level, np.arange(15) // 5, x, y, 7)
    rng = np.random.RandomState(7)
    xs, ys = rng.randint(3, 13, size=15), rng.randint(3, 13, size=15)
    for m in range(15):
        np.testing.assert_array_equal(
            patches[m], level[m // 5, :, ys[m] - 3 : ys[m] + 4, xs[m] - 3 : xs[m] + 4]
        )


def test_sliced_wasserstein_of_identical_sets_is_zero_and_chunking_is_exact():
    a = np.random.default_rng(3).normal(size=(200, 147)).astype(np.float32)
    b = a + 0.5
    assert swd.sliced_wasserstein(a, a, 2, 30, np.random.RandomState(0)) == 0.0
    one_chunk = swd.sliced_wasserstein(a, b, 2, 30, np.random.RandomState(0), dirs_per_chunk=30)
    chunked = swd.sliced_wasserstein(a, b, 2, 30, np.random.RandomState(0), dirs_per_chunk=7)
    # float32 147-term projections (the matmul may block them by chunk width), sorted, summed in
    # float64: ~2^-24·√147 = 7e-7 per projection, averaged over 12,000 of them.
    assert chunked == pytest.approx(one_chunk, rel=1e-6) and chunked > 0


def test_sliced_wasserstein_of_a_shifted_set_is_the_mean_projected_shift():
    # b = a + v moves every projection on w by v·w and keeps the order, so every sorted difference
    # is |v·w|: the SWD is the mean of |v·w| over the drawn directions (about 0.066·|v| for D = 147).
    a = np.random.default_rng(4).normal(size=(300, 147)).astype(np.float32)
    shift = np.random.default_rng(5).normal(0, 0.1, size=147).astype(np.float32)
    blocks = [a[:100], a[100:]]  # the accumulator's form: row blocks
    result = swd.sliced_wasserstein(blocks, a + shift, 3, 40, np.random.RandomState(6))
    rng = np.random.RandomState(6)
    expected = []
    for _ in range(3):
        dirs = rng.randn(147, 40)
        dirs /= np.linalg.norm(dirs, axis=0)
        expected.append(np.mean(np.abs(np.float64(shift) @ dirs)))
    # The mean |v·w| is ~0.07; float32 rounding of a + v and of the projections, averaged over
    # 300 x 120 differences: measured 4e-8 relative.
    assert result == pytest.approx(np.mean(expected), rel=1e-6)
    assert swd.sliced_wasserstein(blocks, [a], 3, 40, np.random.RandomState(6)) == 0.0


@pytest.mark.parametrize("sort_threads", [1, 3])
def test_device_and_numpy_sort_paths_agree(monkeypatch, sort_threads):
    rng = np.random.default_rng(6)
    # Blocks of different splits and a set with ties: the rows are assembled before sorting.
    proj_a = [rng.normal(size=(n, 8)).astype(np.float32) for n in (100, 37)]
    proj_b = [np.round(rng.normal(0.3, 1, size=(n, 8)), 1).astype(np.float32) for n in (60, 77)]
    a, b = np.concatenate(proj_a).astype(np.float64), np.concatenate(proj_b).astype(np.float64)
    expected = np.abs(np.sort(a, axis=0) - np.sort(b, axis=0)).sum()
    monkeypatch.setattr(swd, "_sort_threads", lambda: sort_threads)
    sums = {}
    for backend in ["cpu", "gpu"]:  # numpy's sort in threads; jnp.sort on whatever device is here
        monkeypatch.setattr(jax, "default_backend", lambda: backend)
        sums[backend] = swd.sum_sorted_abs_differences(proj_a, proj_b)
    # The numpy path sums float32 differences (each within 1 ulp) in float64; the device path sums
    # each direction's 137 differences in float32: ~1e-6 relative.
    assert sums["cpu"] == pytest.approx(expected, rel=1e-6)
    assert sums["gpu"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("images_per_block", [swd.IMAGES_PER_BLOCK, 3])
def test_streamed_swd_matches_reference_algorithm(monkeypatch, images_per_block):
    # With 3 images per jitted call, the adds of 4, 5, 7 and 8 images span 2-3 calls, the last padded.
    monkeypatch.setattr(swd, "IMAGES_PER_BLOCK", images_per_block)
    real = _images(4, 12, res=64)
    fake = _images(5, 12, res=64)
    real_batches, fake_batches = [real[:5], real[5:]], [fake[:8], fake[8:]]
    acc = swd.SWDAccumulator(64, np.random.RandomState(9), SMALL)
    for batch in real_batches:
        acc.add_real(batch)
    for batch in fake_batches:
        acc.add_fake(batch)
    result = acc.finalize()
    expected = _reference_swd(real_batches, fake_batches, [64, 32, 16], SMALL, seed=9)
    assert list(result) == ["SWDx1e3_64", "SWDx1e3_32", "SWDx1e3_16", "SWDx1e3_avg"]
    # The same patches and directions (same draws); ours in float32. Sorted values move by at most
    # the largest input change (sorting is 1-Lipschitz), so the SWD (~0.1 here, x1e3: ~120) moves by
    # at most the largest projection error: a worst case of ~1e-5 from float32 pyramid, normalisation
    # and 147-term projections, but random roundings average out over the mean of 2 x 20 x 192
    # sorted differences. Measured 8e-8 relative; 1e-6 leaves a 10x margin and still catches a
    # wrong patch, direction or normalisation (percent-level changes).
    values = [result[f"SWDx1e3_{res}"] for res in [64, 32, 16]]
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert result["SWDx1e3_avg"] == pytest.approx(np.mean(expected), rel=1e-6)


def test_grayscale_is_tiled_to_rgb():
    gray_real, gray_fake = _images(6, 4, channels=1), _images(7, 4, channels=1)

    def run(real, fake):
        acc = swd.SWDAccumulator(32, 3, SMALL)
        acc.add_real(real)
        acc.add_fake(fake)
        return acc.finalize()

    tiled = run(np.repeat(gray_real, 3, axis=3), np.repeat(gray_fake, 3, axis=3))
    assert run(gray_real, gray_fake) == tiled


def test_one_set_against_itself_is_zero():
    # Same images and same patch draws (two accumulators seeded alike): identical descriptors, SWD 0.
    images = _images(8, 6)
    descriptors = []
    for _ in range(2):
        acc = swd.SWDDescriptorAccumulator(32, np.random.RandomState(1), SMALL)
        acc.add(images)
        descriptors.append(acc.finalize())
    result = swd.sliced_wasserstein_distances(*descriptors, [32, 16], 0, SMALL)
    assert result == {"SWDx1e3_32": 0.0, "SWDx1e3_16": 0.0, "SWDx1e3_avg": 0.0}


def test_swd_grows_with_noise_at_every_level():
    # sigma 0 is the sampling floor (same images, independent patch draws and directions).
    real = _images(8, 48)
    values = []
    for sigma in [0, 20, 50, 100]:
        fake = np.clip(
            real + np.random.default_rng(10).normal(0, sigma, real.shape), 0, 255
        ).astype(np.uint8)
        acc = swd.SWDAccumulator(32, 0, "shmelkov")
        acc.add_real(real)
        acc.add_fake(fake)
        values.append(acc.finalize())
    for key in ["SWDx1e3_32", "SWDx1e3_16", "SWDx1e3_avg"]:
        series = [v[key] for v in values]
        assert all(x < y for x, y in zip(series, series[1:])), (key, series)
    assert values[-1]["SWDx1e3_32"] > 1.8 * values[0]["SWDx1e3_32"]


def test_accumulator_errors():
    acc = swd.SWDAccumulator(32, 0, SMALL)
    with pytest.raises(ValueError, match="uint8"):
        acc.add_real(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[N, 32, 32, C\]"):
        acc.add_real(np.zeros((2, 64, 64, 3), np.uint8))
    acc.add_real(_images(11, 3))
    acc.add_fake(_images(12, 2))
    with pytest.raises(ValueError, match="3 real and 2 generated"):
        acc.finalize()
