"""Sliced Wasserstein distance between Laplacian-pyramid patches, exactly as PGGAN computes it.

Follows tkarras/progressive_growing_of_gans `metrics/sliced_wasserstein.py`; the TF-GAN SWD
normalises each patch by itself and is *not* comparable. Per level, from the finest band-pass down
to the 16x16 low-pass image:

1. Laplacian pyramid of the uint8 images in float32, 5x5 binomial filter, mirror boundary.
2. `nhoods_per_image` random 7x7xC patches per image (centres uniform in [3, S-3)).
3. Each set's patches normalised per colour channel by that set's own mean and std.
4. `dir_repeats` x `dirs_per_repeat` random unit directions; the sorted projections of the two sets
   are compared by mean |difference| (the 1-D Wasserstein-1 distance); reported x1e3.

Images are fed in minibatches: only the patches (not the pyramids) of all images are kept, which
is what the metric needs. Memory is about `4 * num_images * nhoods_per_image * 49 * C` bytes per
level and set (PGGAN preset, 16384 RGB images: 1.2 GB per level per set).

Where the work runs: the pyramid, the patch gathering, the normalisation and the projections are
jitted JAX in float32, on row blocks of `IMAGES_PER_BLOCK` images (fixed shapes: each function
compiles once per image size and block length; the descriptors stay as those blocks). The sorts of the projections depend on the
backend: XLA:CPU's sort is a generic comparator sort, far slower than numpy's vectorised one, so
on CPU numpy sorts the rows in a thread per core; on GPU/TPU `jnp.sort` sorts on the device. On
CPU the sorts and the projections' matmuls (the same FLOPs as PGGAN's) take most of the time.

Randomness comes from one `np.random.RandomState` passed in and is drawn with PGGAN's calls in
PGGAN's order (per minibatch and level: centre x, then centre y; per level and repeat: a
`randn(D, dirs)` direction matrix). PGGAN uses the global `np.random` and also draws directions for
a reals-vs-reals SWD between its real and fake passes, so its exact numbers are not reproduced draw
for draw; the estimator is the same.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
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

# Images per jitted pyramid-and-patches call: the evaluator's minibatch (metrics.py), so only an
# add()'s last, short block is padded, and the function compiles once per image size.
IMAGES_PER_BLOCK = 256

# 1-D factor of PGGAN's `gaussian_filter` (= cv2.pyrDown): [1,4,6,4,1]ᵀ[1,4,6,4,1] / 256.
_BINOMIAL_1D = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)


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


def _blur(images: jax.Array, step: int = 1) -> jax.Array:
    """5x5 binomial blur of float32 `[N, C, H, W]` with mirror boundaries, keeping rows/cols `::step`.

    Equals `scipy.ndimage.convolve(x, K[None, None], mode='mirror')[..., ::step, ::step]` with PGGAN's
    2-D kernel K: K is the outer product of [1,4,6,4,1]/16, and scipy's 'mirror' (d c b | a b c d) is
    numpy's 'reflect' padding.
    """
    h, w = images.shape[2], images.shape[3]
    x = jnp.pad(images, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    x = sum(k * x[:, :, t : t + h : step, :] for t, k in enumerate(_BINOMIAL_1D))
    return sum(k * x[:, :, :, t : t + w : step] for t, k in enumerate(_BINOMIAL_1D))


def pyr_down(images: jax.Array) -> jax.Array:
    """`[N, C, H, W] -> [N, C, H/2, W/2]`: blur, keep even rows/cols (PGGAN `pyr_down`, cv2.pyrDown)."""
    return _blur(images, step=2)


def _upsample_axis(x: jax.Array, axis: int) -> jax.Array:
    """Doubles `axis`: zero-insert, then blur with 2*[1,4,6,4,1]/16 and a mirror boundary.

    Written per output phase, which skips the zeros: even outputs are (x[i-1] + 6x[i] + x[i+1])/8,
    odd ones (x[i] + x[i+1])/2, where the mirrored zero-inserted signal gives x[-1] = x[1] and
    x[n] = x[n-1].
    """
    n = x.shape[axis]
    take = lambda start, stop: jax.lax.slice_in_dim(x, start, stop, axis=axis)
    before = jnp.concatenate([take(1, 2), take(0, n - 1)], axis=axis)  # x[i-1]
    after = jnp.concatenate([take(1, n), take(n - 1, n)], axis=axis)  # x[i+1]
    even = (before + 6.0 * x + after) * 0.125
    odd = (x + after) * 0.5
    interleaved = jnp.stack([even, odd], axis=axis + 1)
    return interleaved.reshape(x.shape[:axis] + (2 * n,) + x.shape[axis + 1 :])


def pyr_up(images: jax.Array) -> jax.Array:
    """`[N, C, H, W] -> [N, C, 2H, 2W]`: zero-insert, blur with 4*K (PGGAN `pyr_up`, cv2.pyrUp)."""
    return _upsample_axis(_upsample_axis(images, 2), 3)


def laplacian_pyramid(images: jax.Array, num_levels: int) -> list[jax.Array]:
    """Laplacian pyramid `[N, C, H, W]` -> `num_levels` float32 arrays, finest band-pass first.

    PGGAN `generate_laplacian_pyramid`: level i = G_i - pyr_up(G_{i+1}); the last level is the
    low-pass (Gaussian) image itself.
    """
    pyramid = [jnp.asarray(images, jnp.float32)]
    for _ in range(1, num_levels):
        pyramid.append(pyr_down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - pyr_up(pyramid[-1])
    return pyramid


def draw_patch_centres(
    rng: np.random.RandomState, count: int, resolution: int, nhood_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """`count` patch centres `(x, y)` of a square level, drawn as PGGAN `get_descriptors_for_minibatch` does.

    `rng.randint(s//2, S - s//2)` (upper bound exclusive), x then y: that call order is what makes
    the same seed give the same patches.
    """
    half = nhood_size // 2
    x = rng.randint(half, resolution - half, size=count)
    y = rng.randint(half, resolution - half, size=count)
    return x, y


def gather_patches(
    level: jax.Array, image: jax.Array, x: jax.Array, y: jax.Array, nhood_size: int
) -> jax.Array:
    """Patches `[P, C, s, s]` of `level` `[N, C, H, W]`: patch j is centred at `(x[j], y[j])` of image `image[j]`."""
    half = nhood_size // 2
    window = (1, level.shape[1], nhood_size, nhood_size)

    def one_patch(i, top, left):
        return jax.lax.dynamic_slice(level, (i, 0, top, left), window)[0]

    return jax.vmap(one_patch)(image, y - half, x - half)


@functools.partial(jax.jit, static_argnames="num_levels")
def _block_pyramid(images: jax.Array, num_levels: int) -> list[jax.Array]:
    """uint8 `[B, H, W, C]` -> `laplacian_pyramid` levels `[B, C, h, w]`."""
    return laplacian_pyramid(jnp.transpose(images, (0, 3, 1, 2)).astype(jnp.float32), num_levels)


# A jit of its own, not fused with `_block_pyramid`: XLA:CPU would fuse the last blur into the
# gather and recompute it for every patch pixel (several times slower for the pair).
@functools.partial(jax.jit, static_argnames=("nhood_size", "nhoods_per_image"))
def _block_patches(levels, centres, nhood_size: int, nhoods_per_image: int) -> list[jax.Array]:
    """Per level `[B, C, h, w]` and `(x, y)` `[B * nhoods]` -> per level patches `[B * nhoods, C, s, s]`.

    Patch j belongs to image j // nhoods_per_image, as in PGGAN.
    """
    image = jnp.arange(levels[0].shape[0] * nhoods_per_image) // nhoods_per_image
    return [
        gather_patches(level, image, x, y, nhood_size) for level, (x, y) in zip(levels, centres)
    ]


def _pad_rows(array: np.ndarray, length: int) -> np.ndarray:
    """Pads axis 0 to `length` by repeating the last row (a valid image and patch centre)."""
    padding = [(0, length - len(array))] + [(0, 0)] * (array.ndim - 1)
    return np.pad(array, padding, mode="edge")


@functools.partial(jax.jit, static_argnames="power")
def _row_channel_sums(patches: jax.Array, centre: jax.Array, power: int) -> jax.Array:
    """`[P, C, s, s] -> [P, C]`: sum over each patch's s*s values of `(x - centre[c]) ** power`."""
    # [P, C, s*s]: XLA:CPU vectorises a long minor axis better than two of 7 (see _standardize).
    values = patches.reshape(patches.shape[0], patches.shape[1], -1)
    return jnp.sum((values - centre[:, None]) ** power, axis=2)


def _channel_mean(blocks, centre: np.ndarray, power: int) -> np.ndarray:
    """Per-channel mean of `(x - centre) ** power` over all patches of `blocks` and positions, float64 `[C]`.

    Per-patch sums of s*s terms in float32, their total in float64: as accurate as a float64 sum.
    """
    centre = jnp.asarray(centre, jnp.float32)
    sums = [np.asarray(_row_channel_sums(block, centre, power), np.float64) for block in blocks]
    values_per_channel = sum(len(block) for block in blocks) * np.prod(blocks[0].shape[2:])
    return np.concatenate(sums).sum(axis=0) / values_per_channel


@functools.partial(jax.jit, donate_argnums=0)
def _standardize(patches: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
    """`[P, C, s, s]` -> `[P, C*s*s]` standardised with per-channel `mean` and `std`."""
    # As [P, C*s*s] rows with per-feature statistics: on XLA:CPU several times faster than
    # broadcasting [C] over [P, C, 7, 7].
    rows = patches.reshape(patches.shape[0], -1)
    values_per_channel = rows.shape[1] // patches.shape[1]
    return (rows - jnp.repeat(mean, values_per_channel)) / jnp.repeat(std, values_per_channel)


def normalize_descriptors(blocks) -> list[jax.Array]:
    """Per-channel standardisation of a set's patches (PGGAN `finalize_descriptors`).

    Args:
      blocks: the set's patches as a list of `[P_i, C, s, s]` blocks (together the `[M, C, s, s]` set).
        Float32 `jax.Array` blocks are donated (their buffers are reused for the result).

    Returns:
      The blocks as `[P_i, C*s*s]` float32, standardised by the per-channel mean and population std
      over all patches and positions of all blocks (PGGAN `axis=(0, 2, 3)`). The std is taken about
      the mean (two passes), which float32 data with a large mean (the low-pass level) needs.
    """
    blocks = [jnp.asarray(block, jnp.float32) for block in blocks]
    mean = _channel_mean(blocks, np.zeros(blocks[0].shape[1]), power=1)
    std = np.sqrt(_channel_mean(blocks, mean, power=2))
    for c in np.flatnonzero(std == 0):
        raise ValueError(
            f"SWD: colour channel {c} of a pyramid level is constant over all patches (std 0), so the PGGAN "
            "normalisation is undefined. Are the images blank or constant?"
        )
    mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
    return [_standardize(block, mean, std) for block in blocks]


def unit_directions(rng: np.random.RandomState, dims: int, count: int) -> np.ndarray:
    """`[dims, count]` float32 random unit columns, drawn as PGGAN `sliced_wasserstein` does."""
    dirs = rng.randn(dims, count)
    dirs /= np.sqrt(np.sum(np.square(dirs), axis=0, keepdims=True))
    return dirs.astype(np.float32)


# `[P, D] @ [D, K]` per block: on XLA:CPU, faster than producing the `[K, P]` transpose.
_project = jax.jit(jnp.matmul)


@jax.jit
def _sorted_abs_difference_sums_on_device(proj_a: jax.Array, proj_b: jax.Array) -> jax.Array:
    """`[M, K]` x2 -> `[K]`: per direction, sum of |sorted a - sorted b| (the accelerator path)."""
    return jnp.sum(jnp.abs(jnp.sort(proj_a, axis=0) - jnp.sort(proj_b, axis=0)), axis=0)


def _sort_threads() -> int:
    """Threads for the numpy sorts: one per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _sorted_abs_difference_sum(rows_a: np.ndarray, rows_b: np.ndarray) -> float:
    """Sum of |sort(a) - sort(b)| over the row pairs of two `[k, M]` arrays, sorting (and then
    overwriting) them in place; row by row, so the difference is taken while the rows are in cache."""
    total = 0.0
    for row_a, row_b in zip(rows_a, rows_b):
        row_a.sort()
        row_b.sort()
        difference = np.abs(np.subtract(row_a, row_b, out=row_a), out=row_a)
        total += float(difference.sum(dtype=np.float64))
    return total


def _direction_rows(proj_blocks) -> np.ndarray:
    """`[P_i, K]` projection blocks -> C-contiguous `[K, M]`: one row per direction, as np.sort wants.

    The `out=` keeps the rows contiguous; concatenating the transposes alone gives strided rows,
    which sort several times slower.
    """
    blocks = [np.asarray(block) for block in proj_blocks]
    rows = np.empty((blocks[0].shape[1], sum(len(block) for block in blocks)), blocks[0].dtype)
    return np.concatenate([block.T for block in blocks], axis=1, out=rows)


def sum_sorted_abs_differences(proj_a, proj_b) -> float:
    """Sum over directions k and ranks of `|sort(A[:, k]) - sort(B[:, k])|`.

    `proj_a`, `proj_b`: lists of `[P_i, K]` projection blocks, stacked along rows into `A`, `B`.
    XLA:CPU sorts with a generic comparator sort, far slower than numpy's vectorised sort on long
    rows, so on the CPU backend numpy sorts, in place, the directions split over a thread per core
    (np.sort releases the GIL, so threads help when cores are free). Accelerators sort on the
    device.
    """
    if jax.default_backend() != "cpu":
        a, b = jnp.concatenate(proj_a), jnp.concatenate(proj_b)
        return float(np.asarray(_sorted_abs_difference_sums_on_device(a, b), np.float64).sum())
    rows_a, rows_b = _direction_rows(proj_a), _direction_rows(proj_b)
    bounds = np.linspace(0, len(rows_a), min(_sort_threads(), len(rows_a)) + 1).astype(int)
    parts = [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]
    with concurrent.futures.ThreadPoolExecutor(len(parts)) as pool:
        sums = pool.map(lambda rows: _sorted_abs_difference_sum(rows_a[rows], rows_b[rows]), parts)
        return sum(sums)


def sliced_wasserstein(
    a,
    b,
    dir_repeats: int,
    dirs_per_repeat: int,
    rng: np.random.RandomState,
    dirs_per_chunk: int = 32,
) -> float:
    """Mean 1-D Wasserstein-1 distance of two `[M, D]` sets along random unit directions.

    PGGAN `sliced_wasserstein`: per repeat, `dirs = rng.randn(D, dirs_per_repeat)` with unit columns,
    projections sorted per direction, `mean(|sorted_a - sorted_b|)`, averaged over repeats. The
    directions are processed `dirs_per_chunk` at a time to bound memory (`16 * M * dirs_per_chunk`
    bytes: both sets' projections and, on CPU, their sorted copies); every direction's sum is its
    own, so chunking leaves the mean unchanged.

    Args:
      a, b: `[M, D]` arrays, or lists of `[P_i, D]` row blocks (`SWDDescriptorAccumulator.finalize`).
    """
    a, b = _as_blocks(a), _as_blocks(b)
    num_rows = sum(len(block) for block in a)
    sizes = {block.shape[1] for block in a + b}
    if num_rows != sum(len(block) for block in b) or len(sizes) != 1:
        raise ValueError(
            f"SWD: both sets need the same number of patches of one size, got {num_rows} and "
            f"{sum(len(block) for block in b)} patches of sizes {sorted(sizes)}; feed the same number of "
            "images for reals and fakes."
        )
    (dims,) = sizes
    results = []
    chunk_starts = range(dirs_per_chunk, dirs_per_repeat, dirs_per_chunk)
    for _ in range(dir_repeats):
        dirs = unit_directions(rng, dims, dirs_per_repeat)
        total = sum(
            sum_sorted_abs_differences(
                [_project(block, chunk) for block in a], [_project(block, chunk) for block in b]
            )
            for chunk in np.split(dirs, chunk_starts, axis=1)
        )
        results.append(total / (num_rows * dirs_per_repeat))
    return float(np.mean(results))


def _as_blocks(descriptors) -> list:
    """A `[M, D]` array as one block; a list of `[P_i, D]` blocks as it is."""
    if isinstance(descriptors, (list, tuple)):
        return list(descriptors)
    if descriptors.ndim != 2:
        raise ValueError(f"SWD: descriptors must be [M, D], got shape {descriptors.shape}.")
    return [descriptors]


def _checked_rgb(images, resolution: int) -> np.ndarray:
    """Checks uint8 `[N, H, W, C]` at `resolution` and returns it with grayscale tiled to RGB."""
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
    return images


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
        images = _checked_rgb(images, self.resolution)
        nhoods = self.config.nhoods_per_image
        # All of the minibatch's draws first, per level x then y: PGGAN's order.
        centres = [
            draw_patch_centres(self.rng, len(images) * nhoods, res, self.config.nhood_size)
            for res in self.resolutions
        ]
        # Fixed-shape jitted calls of IMAGES_PER_BLOCK images; a short block is padded, and the
        # padding's patches are dropped.
        for start in range(0, len(images), IMAGES_PER_BLOCK):
            block = images[start : start + IMAGES_PER_BLOCK]
            rows = slice(start * nhoods, (start + len(block)) * nhoods)
            pad = functools.partial(_pad_rows, length=IMAGES_PER_BLOCK * nhoods)
            patches = _block_patches(
                _block_pyramid(_pad_rows(block, IMAGES_PER_BLOCK), len(centres)),
                [(pad(x[rows]), pad(y[rows])) for x, y in centres],
                nhood_size=self.config.nhood_size,
                nhoods_per_image=nhoods,
            )
            for level_blocks, level_patches in zip(self._patches, patches):
                level_blocks.append(level_patches[: len(block) * nhoods])
        self.num_images += len(images)

    def finalize(self) -> list[list[jax.Array]]:
        """Returns the normalised descriptors per level: float32 `[P_i, C*s*s]` row blocks (one per
        jitted call) that together are the set's `[num_images * nhoods_per_image, C*s*s]` matrix."""
        if not self.num_images:
            raise ValueError("SWD: no images were added.")
        levels, self._patches = self._patches, None
        # Level by level, dropping each level's raw blocks as it is normalised, to bound memory.
        return [normalize_descriptors(levels.pop(0)) for _ in range(len(levels))]


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
