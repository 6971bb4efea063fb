"""Sliced Wasserstein distance between Laplacian-pyramid patches, exactly as PGGAN computes it.

Follows tkarras/progressive_growing_of_gans `metrics/sliced_wasserstein.py` (specs/metrics.md §6,
pggan_wgan_transfer_dcgan.md §1.7); the TF-GAN SWD normalises each patch by itself and is *not*
comparable. Per level, from the finest band-pass down to the 16x16 low-pass image:

1. Laplacian pyramid of the uint8 images in float32, 5x5 binomial filter, mirror boundary.
2. `nhoods_per_image` random 7x7xC patches per image (centres uniform in [3, S-3)).
3. Each set's patches normalised per colour channel by that set's own mean and std.
4. `dir_repeats` x `dirs_per_repeat` random unit directions; the sorted projections of the two sets
   are compared by mean |difference| (the 1-D Wasserstein-1 distance); reported x1e3.

Images are fed in minibatches: only the patches (not the pyramids) of all images are kept, which
is what the metric needs. Memory is about `4 * num_images * nhoods_per_image * 49 * C` bytes per
level and set (PGGAN preset, 16384 RGB images: 1.2 GB per level per set).

Randomness comes from one `np.random.RandomState` passed in and is drawn with PGGAN's calls in
PGGAN's order (per minibatch and level: centre x, then centre y; per level and repeat: a
`randn(D, dirs)` direction matrix). PGGAN uses the global `np.random` and also draws directions for
a reals-vs-reals SWD between its real and fake passes, so its exact numbers are not reproduced draw
for draw; the estimator is the same.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class SWDConfig:
    """SWD parameters. `num_images` is the per-set image count the preset's numbers are quoted at."""

    nhoods_per_image: int
    dir_repeats: int
    dirs_per_repeat: int
    num_images: int
    nhood_size: int = 7
    min_resolution: int = 16


SWD_PRESETS = {
    # PGGAN `metrics/sliced_wasserstein.py::API` and config.py (16384 images, real_passes=2).
    "pggan": SWDConfig(nhoods_per_image=128, dir_repeats=4, dirs_per_repeat=128, num_images=16384),
    # kshmelkov/gan_evaluation `evaluation/swd.py` (8192 images); also the Theano PGGAN defaults.
    "shmelkov": SWDConfig(nhoods_per_image=64, dir_repeats=1, dirs_per_repeat=147, num_images=8192),
}

# 1-D factor of PGGAN's `gaussian_filter` (= cv2.pyrDown): [1,4,6,4,1]ᵀ[1,4,6,4,1] / 256.
_BINOMIAL_1D = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _get_config(preset) -> SWDConfig:
    if isinstance(preset, SWDConfig):
        return preset
    if preset not in SWD_PRESETS:
        raise ValueError(
            f"SWD preset {preset!r} unknown; use one of {sorted(SWD_PRESETS)} or an SWDConfig."
        )
    return SWD_PRESETS[preset]


def _get_rng(rng) -> np.random.RandomState:
    if isinstance(rng, np.random.RandomState):
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.RandomState(int(rng))
    raise TypeError(
        f"SWD rng: expected an np.random.RandomState or an int seed, got {type(rng).__name__} "
        "(RandomState keeps the draws identical to PGGAN's np.random stream)."
    )


def swd_resolutions(resolution: int, min_resolution: int = 16) -> list[int]:
    """Pyramid level resolutions, finest first: `[res, res/2, ...]` while `>= min_resolution`.

    PGGAN `API.__init__`; e.g. 32 -> [32, 16], 128 -> [128, 64, 32, 16].
    """
    resolutions = []
    res = resolution
    while res >= min_resolution:
        resolutions.append(res)
        res //= 2
    if not resolutions or resolution != resolutions[-1] * 2 ** (len(resolutions) - 1):
        raise ValueError(
            f"SWD: image resolution {resolution} must be >= {min_resolution} and halve exactly down to the last "
            f"level >= {min_resolution} (levels would be {resolutions}). Crop or resize the images."
        )
    return resolutions


def _blur(images: np.ndarray, step: int = 1) -> np.ndarray:
    """5x5 binomial blur of `[N, C, H, W]` with mirror boundaries, keeping rows/cols `::step`.

    Equals `scipy.ndimage.convolve(x, K[None, None], mode='mirror')[..., ::step, ::step]` with PGGAN's
    2-D kernel K: K is the outer product of [1,4,6,4,1]/16, and scipy's 'mirror' (d c b | a b c d) is
    numpy's 'reflect' padding. Computed in float64, like scipy, then returned as float32.
    """
    x = np.pad(images.astype(np.float64), ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    h, w = images.shape[2], images.shape[3]
    x = sum(k * x[:, :, t : t + h : step, :] for t, k in enumerate(_BINOMIAL_1D))
    x = sum(k * x[:, :, :, t : t + w : step] for t, k in enumerate(_BINOMIAL_1D))
    return x.astype(np.float32)


def pyr_down(images: np.ndarray) -> np.ndarray:
    """`[N, C, H, W] -> [N, C, H/2, W/2]`: blur, keep even rows/cols (PGGAN `pyr_down`, cv2.pyrDown)."""
    return _blur(images, step=2)


def pyr_up(images: np.ndarray) -> np.ndarray:
    """`[N, C, H, W] -> [N, C, 2H, 2W]`: zero-insert, blur with 4*K (PGGAN `pyr_up`, cv2.pyrUp)."""
    n, c, h, w = images.shape
    up = np.zeros((n, c, 2 * h, 2 * w), np.float32)
    up[:, :, ::2, ::2] = 4.0 * images  # the x4 makes up for the 3/4 zeros
    return _blur(up)


def laplacian_pyramid(images: np.ndarray, num_levels: int) -> list[np.ndarray]:
    """Laplacian pyramid `[N, C, H, W]` -> `num_levels` float32 arrays, finest band-pass first.

    PGGAN `generate_laplacian_pyramid`: level i = G_i - pyr_up(G_{i+1}); the last level is the
    low-pass (Gaussian) image itself.
    """
    pyramid = [np.asarray(images, dtype=np.float32)]
    for _ in range(1, num_levels):
        pyramid.append(pyr_down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - pyr_up(pyramid[-1])
    return pyramid


def sample_patches(
    level: np.ndarray, nhood_size: int, nhoods_per_image: int, rng: np.random.RandomState
) -> np.ndarray:
    """Random patches `[N, C, H, W] -> [N * nhoods_per_image, C, s, s]` (PGGAN `get_descriptors_for_minibatch`).

    Patch j belongs to image j // nhoods_per_image; centres x then y are drawn with
    `rng.randint(s//2, S - s//2)` (upper bound exclusive), in that order, as in PGGAN.
    """
    n, _, h, w = level.shape
    half = nhood_size // 2
    count = n * nhoods_per_image
    x = rng.randint(half, w - half, size=count)
    y = rng.randint(half, h - half, size=count)
    image = np.arange(count) // nhoods_per_image
    windows = np.lib.stride_tricks.sliding_window_view(level, (nhood_size, nhood_size), axis=(2, 3))
    return windows[
        image, :, y - half, x - half
    ]  # [count, C, s, s]: window at top-left (y-half, x-half)


def normalize_descriptors(patches: np.ndarray, rows_per_chunk: int = 1 << 16) -> np.ndarray:
    """Per-channel standardisation `[M, C, s, s] -> [M, C*s*s]` float32 (PGGAN `finalize_descriptors`).

    Mean and population std per colour channel over all patches and positions (PGGAN
    `axis=(0, 2, 3)`); each set is normalised with its own statistics. Works in place on the float32
    `patches`, with float64 sums taken over row chunks so no full-size float64 copy is made.
    """
    num_rows = patches.shape[0]
    for c in range(patches.shape[1]):
        channel = patches[:, c]
        mean = channel.mean(dtype=np.float64)
        channel -= np.float32(mean)
        sum_sq = sum(
            float(np.square(channel[i : i + rows_per_chunk]).sum(dtype=np.float64))
            for i in range(0, num_rows, rows_per_chunk)
        )
        std = np.sqrt(sum_sq / channel.size)
        if std == 0:
            raise ValueError(
                f"SWD: colour channel {c} of a pyramid level is constant over all patches (std 0), so the PGGAN "
                "normalisation is undefined. Are the images blank or constant?"
            )
        channel /= np.float32(std)
    return patches.reshape(num_rows, -1)


def sliced_wasserstein(
    a: np.ndarray,
    b: np.ndarray,
    dir_repeats: int,
    dirs_per_repeat: int,
    rng: np.random.RandomState,
    dirs_per_chunk: int = 32,
) -> float:
    """Mean 1-D Wasserstein-1 distance of `[M, D]` and `[M, D]` along random unit directions.

    PGGAN `sliced_wasserstein`: per repeat, `dirs = rng.randn(D, dirs_per_repeat)` with unit columns,
    projections sorted per direction, `mean(|sorted_a - sorted_b|)`, averaged over repeats. The
    directions are processed `dirs_per_chunk` at a time to bound memory; equal chunk weights keep the
    mean identical.
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"SWD: both sets need the same number of patches, got {a.shape} and {b.shape}; feed the same number "
            "of images for reals and fakes."
        )
    results = []
    for _ in range(dir_repeats):
        dirs = rng.randn(a.shape[1], dirs_per_repeat)
        dirs /= np.sqrt(np.sum(np.square(dirs), axis=0, keepdims=True))
        dirs = dirs.astype(np.float32)
        total = 0.0
        for start in range(0, dirs_per_repeat, dirs_per_chunk):
            chunk = dirs[:, start : start + dirs_per_chunk]
            proj_a = np.sort(chunk.T @ a.T, axis=1)  # [dirs, M], sorted per direction
            proj_b = np.sort(chunk.T @ b.T, axis=1)
            total += float(np.abs(proj_a - proj_b).sum(dtype=np.float64))
        results.append(total / (a.shape[0] * dirs_per_repeat))
    return float(np.mean(results))


def _as_nchw_rgb(images, resolution: int) -> np.ndarray:
    """Checks uint8 `[N, H, W, C]` at `resolution` and returns `[N, C', H, W]`, grayscale tiled to RGB."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != resolution or images.shape[2] != resolution:
        raise ValueError(
            f"SWD: expected uint8 images [N, {resolution}, {resolution}, C], got shape {images.shape}."
        )
    if images.dtype != np.uint8:
        raise ValueError(
            f"SWD: expected uint8 images in [0, 255], got {images.dtype}. Quantise generator output first, e.g. "
            "np.clip(np.round(x * 127.5 + 127.5), 0, 255).astype(np.uint8), as PGGAN does."
        )
    if images.shape[3] == 1:
        images = np.repeat(images, 3, axis=3)  # PGGAN stores grayscale datasets as RGB
    return images.transpose(0, 3, 1, 2)


class SWDDescriptorAccumulator:
    """Streams minibatches of one image set into normalised per-level patch descriptors.

    Usage: `add(images)` per minibatch, then `finalize()` once. The result can be reused against
    several generated sets (e.g. real descriptors for every checkpoint), as PGGAN reuses `desc_real`.

    Args:
      resolution: image height = width.
      rng: `np.random.RandomState` (or int seed) drawing the patch centres.
      preset: "pggan", "shmelkov" or an `SWDConfig`.
    """

    def __init__(self, resolution: int, rng, preset="pggan"):
        self.config = _get_config(preset)
        self.resolutions = swd_resolutions(resolution, self.config.min_resolution)
        self.resolution = resolution
        self.rng = _get_rng(rng)
        self.num_images = 0
        self._patches = [[] for _ in self.resolutions]

    def add(self, images) -> None:
        """Adds a minibatch of uint8 `[B, H, W, C]` images (C = 1 is tiled to RGB; other C are kept)."""
        if self._patches is None:
            raise RuntimeError("SWD: add() after finalize(); start a new accumulator.")
        images = _as_nchw_rgb(images, self.resolution)
        for level, patches in zip(laplacian_pyramid(images, len(self.resolutions)), self._patches):
            patches.append(
                sample_patches(
                    level, self.config.nhood_size, self.config.nhoods_per_image, self.rng
                )
            )
        self.num_images += len(images)

    def finalize(self) -> list[np.ndarray]:
        """Returns the normalised descriptors, one float32 `[num_images * nhoods_per_image, C*s*s]` per level."""
        if not self.num_images:
            raise ValueError("SWD: no images were added.")
        descriptors = []
        for i in range(len(self._patches)):
            patches = np.concatenate(self._patches[i], axis=0)
            self._patches[i] = None  # free the chunks before the next level
            descriptors.append(normalize_descriptors(patches))
        self._patches = None
        return descriptors


def sliced_wasserstein_distances(
    real_descriptors, fake_descriptors, resolutions, rng, preset="pggan"
) -> dict[str, float]:
    """Per-level SWD x1e3 and their average, from `SWDDescriptorAccumulator.finalize()` outputs.

    Returns:
      `{"SWDx1e3_<res>": ..., ..., "SWDx1e3_avg": ...}`, finest level first (PGGAN metric names).
    """
    config = _get_config(preset)
    rng = _get_rng(rng)
    values = [
        1e3 * sliced_wasserstein(real, fake, config.dir_repeats, config.dirs_per_repeat, rng)
        for real, fake in zip(real_descriptors, fake_descriptors)
    ]
    result = {f"SWDx1e3_{res}": value for res, value in zip(resolutions, values)}
    result["SWDx1e3_avg"] = float(np.mean(values))
    return result


class SWDAccumulator:
    """SWD between a real and a generated image set, fed in minibatches.

    One RNG serves both sets and the directions, so the numbers depend on the seed and the order of
    the `add_*` calls (feed all reals, then all fakes, as PGGAN does). Feed the same number of images
    to each set (PGGAN: `preset.num_images`, 16384 for "pggan", 8192 for "shmelkov"). For the
    real-vs-real floor (PGGAN `real_passes=2`), feed a second, disjoint set of reals as the fakes.

    Args:
      resolution: image height = width; levels are `swd_resolutions(resolution)`.
      rng: `np.random.RandomState` or int seed.
      preset: "pggan", "shmelkov" or an `SWDConfig`.
    """

    def __init__(self, resolution: int, rng, preset="pggan"):
        self.rng = _get_rng(rng)
        self.preset = preset
        self.real = SWDDescriptorAccumulator(resolution, self.rng, preset)
        self.fake = SWDDescriptorAccumulator(resolution, self.rng, preset)
        self.resolutions = self.real.resolutions

    def add_real(self, images) -> None:
        """Adds a minibatch of real uint8 `[B, H, W, C]` images."""
        self.real.add(images)

    def add_fake(self, images) -> None:
        """Adds a minibatch of generated uint8 `[B, H, W, C]` images."""
        self.fake.add(images)

    def finalize(self) -> dict[str, float]:
        """`{"SWDx1e3_<res>": ..., "SWDx1e3_avg": ...}`, finest level first."""
        if self.real.num_images != self.fake.num_images:
            raise ValueError(
                f"SWD: fed {self.real.num_images} real and {self.fake.num_images} generated images; the sorted "
                "projections need equal counts. Feed the same number of images to both sets."
            )
        return sliced_wasserstein_distances(
            self.real.finalize(), self.fake.finalize(), self.resolutions, self.rng, self.preset
        )
