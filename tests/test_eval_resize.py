"""clean_resize (clean-fid's "clean" mode) against an independent float64 model of PIL's bicubic.

The reference below re-derives Pillow's `src/libImaging/Resample.c` from its definition rather than
calling PIL: `bicubic_filter` (Keys cubic, a = -0.5, support 2) and `precompute_coeffs` (filter
stretched by max(1, in/out) when downscaling, i.e. antialiasing; pixel centres
`center = (i + 0.5) * in/out`; taps `x` in [int(center - support + 0.5),
int(center + support + 0.5)) clipped to the image, each weighted
`filter((x + 0.5 - center) / filterscale)`, weights normalised per output pixel), applied
separably (Resample.c's `ImagingResampleInner` runs the horizontal pass, then the vertical one;
in float64 the order does not matter).
"""

import numpy as np
import pytest

from jaxgan.eval import resize

FLOAT32_UNIT_ROUNDOFF = 2.0**-24  # |fl(x) - x| <= u |x| for round-to-nearest float32


def keys_cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel, PIL's `bicubic_filter`."""
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def pil_bicubic_weights(in_size: int, out_size: int) -> np.ndarray:
    """float64 [out_size, in_size] matrix of PIL's bicubic taps along one axis."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)  # downscaling widens the kernel (antialias)
    support = 2.0 * filterscale
    weights = np.zeros((out_size, in_size))
    for i in range(out_size):
        center = (i + 0.5) * scale
        first = max(int(center - support + 0.5), 0)  # C's (int) cast truncates, as Python's int()
        last = min(int(center + support + 0.5), in_size)
        taps = np.arange(first, last)
        row = keys_cubic((taps + 0.5 - center) / filterscale)
        weights[i, first:last] = row / row.sum()
    return weights


def separable_resize(images: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """[N, H, W, C] -> float64 [N, out_h, out_w, C]; rows: [out_h, H], cols: [out_w, W]."""
    x = np.einsum("ow,nhwc->nhoc", cols, images.astype(np.float64))
    return np.einsum("oh,nhwc->nowc", rows, x)


def reference_clean_resize(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, H, W, C] -> float64 [N, size, size, C]: float64 throughout, clipped, unrounded."""
    rows = pil_bicubic_weights(images.shape[1], size)
    cols = pil_bicubic_weights(images.shape[2], size)
    return np.clip(separable_resize(images, rows, cols), 0.0, 255.0)


def float32_tolerance(in_h: int, in_w: int, size: int) -> float:
    """Bound on |PIL mode "F" - exact| for uint8 input, derived from Resample.c's arithmetic.

    In `ImagingResample{Horizontal,Vertical}_32bpc` the weights and the accumulator `ss` are
    double, but each pass stores its result in a float32 image (mode "F"). So there are two
    float32 roundings: the horizontal result h (|h| <= 255 * L1_cols, L1 = max row sum of
    |weights|) is off by <= u |h|, which the vertical pass carries with gain <= L1_rows; the final
    store adds <= u * 255 * L1_cols * L1_rows. Total <= 2 u * 255 * L1_cols * L1_rows (the double
    sums' own error is ~1e-13, and the clip to [0, 255] cannot enlarge a difference). With
    L1 <= 1.25 (upsampling) this is 4.75e-5.
    The bound is symmetric in the two passes, so it holds whichever pass a Pillow build runs first
    (the installed 13.0.0 runs vertical first when that makes the smaller intermediate image: a
    float32 emulation of that order matches it bit for bit on the 512x384 case).
    """
    l1_rows = np.abs(pil_bicubic_weights(in_h, size)).sum(axis=1).max()
    l1_cols = np.abs(pil_bicubic_weights(in_w, size)).sum(axis=1).max()
    return 2 * FLOAT32_UNIT_ROUNDOFF * 255.0 * l1_rows * l1_cols


def random_images(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize(
    "shape",
    [
        (2, 32, 32, 3),  # CIFAR-10 upsampled to 299
        (1, 24, 40, 3),  # non-square upsampling: H and W must not be swapped (PIL sizes are (w, h))
        (1, 512, 384, 3),  # downsampling both axes: the antialiased (widened) kernel
    ],
)
def test_clean_resize_matches_float64_pil_bicubic_reference(shape):
    images = random_images(shape)
    got = resize.clean_resize(images, 299)
    want = reference_clean_resize(images, 299)
    tolerance = float32_tolerance(shape[1], shape[2], 299)
    max_diff = np.abs(got.astype(np.float64) - want).max()
    assert max_diff <= tolerance, (
        f"max |clean_resize - reference| = {max_diff:.3g} > {tolerance:.3g}"
    )
    # Not quantised: clean-fid feeds fractional values to the network.
    assert np.any(got != np.round(got))


def test_reference_is_not_another_resize():
    # Guards the reference itself: the likeliest wrong reference, bicubic without the antialiasing
    # stretch, is ~1e6 times the float32 tolerance away, so the comparison above can fail.
    images = random_images((1, 512, 384, 3), seed=1)
    sharp_cols = keys_cubic(
        np.arange(384)[None, :] + 0.5 - (np.arange(299)[:, None] + 0.5) * 384 / 299
    )  # no antialias: support stays 2 when downscaling
    sharp_cols /= sharp_cols.sum(axis=1, keepdims=True)
    rows = pil_bicubic_weights(512, 299)
    sharp = np.clip(separable_resize(images, rows, sharp_cols), 0.0, 255.0)
    got = resize.clean_resize(images, 299)
    assert np.abs(got - sharp).max() > 1.0


@pytest.mark.parametrize("value", [0, 1, 137, 255])
def test_constant_image_stays_constant(value):
    images = np.full((1, 32, 32, 3), value, np.uint8)
    got = resize.clean_resize(images, 299)
    # Weights are normalised per output pixel, so only float32 rounding can move the value.
    np.testing.assert_allclose(got, value, rtol=0, atol=float32_tolerance(32, 32, 299))


def test_grayscale_equals_tiled_rgb():
    # clean-fid tiles first (Image.convert("RGB")); we resize once and tile: identical because the
    # filter acts on each channel separately.
    gray = random_images((2, 28, 28, 1), seed=2)
    np.testing.assert_array_equal(
        resize.clean_resize(gray, 299), resize.clean_resize(np.repeat(gray, 3, axis=-1), 299)
    )


def test_output_dtype_shape_and_clipped_range():
    # A 0/255 checkerboard makes bicubic overshoot both ends, so the clip must engage.
    checkerboard = (np.indices((16, 16)).sum(axis=0) % 2 * 255).astype(np.uint8)
    images = np.repeat(checkerboard[None, :, :, None], 3, axis=-1)
    got = resize.clean_resize(images, 299)
    assert got.dtype == np.float32
    assert got.shape == (1, 299, 299, 3)
    assert got.min() == 0.0 and got.max() == 255.0
    weights = pil_bicubic_weights(16, 299)
    unclipped = separable_resize(images, weights, weights)
    assert unclipped.min() < -1.0 and unclipped.max() > 256.0


def test_threads_do_not_change_the_result():
    images = random_images((3, 32, 32, 3), seed=3)
    np.testing.assert_array_equal(
        resize.clean_resize(images, 299, num_threads=1),
        resize.clean_resize(images, 299, num_threads=2),
    )


def test_other_output_size_and_empty_batch():
    images = random_images((1, 32, 32, 3), seed=4)
    got = resize.clean_resize(images, 64)
    assert got.shape == (1, 64, 64, 3)
    assert np.abs(got - reference_clean_resize(images, 64)).max() <= float32_tolerance(32, 32, 64)
    assert resize.clean_resize(np.zeros((0, 32, 32, 3), np.uint8)).shape == (0, 299, 299, 3)


def test_rejects_float_and_bad_shapes():
    with pytest.raises(TypeError, match="uint8"):
        resize.clean_resize(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="C in"):
        resize.clean_resize(np.zeros((1, 32, 32, 4), np.uint8))
    with pytest.raises(ValueError, match=r"\[N, H, W, C\]"):
        resize.clean_resize(np.zeros((32, 32, 3), np.uint8))
