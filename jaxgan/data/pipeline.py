"""Sources -> fixed-size uint8 images -> seeded, infinite, resumable global batches on the mesh.

Batch b of the stream is a deterministic function of (seed, b): example positions
[b·B, (b+1)·B) walk through one permutation of the dataset per epoch. A checkpoint stores the number
of examples consumed (the cursor), so a resumed run — on any number of hosts or devices — sees
exactly the batches it would have seen. Each process reads only its contiguous slice of every
global batch and the slices are assembled into one `jax.Array` sharded over the `data` axis
(`jax.make_array_from_process_local_data`).

Images stay uint8 until they are on the device; `to_float` (inside the jitted step) maps them to
[-1, 1] and applies the optional flip and dequantisation noise from the step's key.
"""

from __future__ import annotations

import collections
import concurrent.futures
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxgan.core import errors
from jaxgan.data import sources


def fit_image(image: np.ndarray, resolution: int, channels: int) -> np.ndarray:
    """uint8 [H, W, C] -> uint8 [resolution, resolution, channels]: centre square crop, Lanczos resize.

    Lanczos (PIL's ANTIALIAS) is what PGGAN's `dataset_tool.create_lsun` resizes with.
    """
    if image.shape[-1] == 4:  # RGBA: what shows through transparent pixels is white
        image = sources.composite_on_white(image)
    if image.shape[-1] != channels:
        if channels == 3 and image.shape[-1] == 1:
            image = np.repeat(image, 3, axis=-1)
        elif channels == 1 and image.shape[-1] == 3:
            image = np.asarray(Image.fromarray(image).convert("L"))[..., None]
        else:
            raise ValueError(
                f"Cannot turn a {image.shape[-1]}-channel image into {channels} channels."
            )
    h, w = image.shape[:2]
    if (h, w) == (resolution, resolution):
        return image
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[top : top + side, left : left + side]
    mode = "L" if channels == 1 else "RGB"
    pil = Image.fromarray(square[..., 0] if channels == 1 else square, mode)
    resized = np.asarray(pil.resize((resolution, resolution), Image.LANCZOS), dtype=np.uint8)
    return resized[..., None] if channels == 1 else resized


class Batches:
    """Infinite stream of `{'image': uint8 [S, B_local, R, R, C], 'label': int32 [S, B_local]}`.

    S = `steps` batches per call (n_critic critic steps each take a fresh batch); B_local is this
    process's share of `batch_size`. `cursor` counts global examples consumed and is what a
    checkpoint saves. Decoding of file-backed sources is prefetched on a thread pool.
    """

    def __init__(
        self,
        source: sources.Source,
        batch_size: int,
        resolution: int,
        channels: int,
        seed: int,
        cursor: int = 0,
        steps: int = 1,
        process_index: int | None = None,
        process_count: int | None = None,
        prefetch: int = 2,
    ):
        # Default: this process's share of a multi-host run (one process: the whole batch).
        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
        if batch_size % process_count:
            raise errors.ConfigError(
                f"batch_size={batch_size} is not divisible by the {process_count} processes."
            )
        if len(source) == 0:
            raise errors.DataError("The dataset is empty.")
        self.source, self.batch_size, self.steps = source, batch_size, steps
        self.resolution, self.channels, self.seed = resolution, channels, seed
        self.local_size = batch_size // process_count
        self.local_offset = process_index * self.local_size
        self.cursor = cursor
        in_memory = isinstance(source, sources.ArraySource)
        self._decode_pool = None if in_memory else concurrent.futures.ThreadPoolExecutor(8)
        self._prefetch_pool = None if in_memory else concurrent.futures.ThreadPoolExecutor(1)
        self._prefetch = prefetch
        self._pending: collections.deque = collections.deque()
        self._permutation_cache: dict[int, np.ndarray] = {}
        # Images already at the training shape need no per-image `_prepare` (it would return them
        # unchanged): what lets a prepared dataset feed tens of thousands of images a second.
        self._stored_as_fitted = (
            isinstance(source, sources.ArraySource)
            and source.images.shape[1:] == (resolution, resolution, channels)
            and type(self)._prepare is Batches._prepare
        )

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._permutation_cache:
            self._permutation_cache = {
                epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.source))
            }
        return self._permutation_cache[epoch]

    def indices(self, start: int, count: int) -> np.ndarray:
        """Dataset indices of global example positions [start, start + count)."""
        positions = np.arange(start, start + count)
        n = len(self.source)
        epochs, offsets = positions // n, positions % n
        out = np.empty(count, np.int64)
        for epoch in np.unique(epochs):  # a batch spans at most a few epochs
            where = epochs == epoch
            out[where] = self._permutation(int(epoch))[offsets[where]]
        return out

    def _load(self, cursor: int) -> dict[str, np.ndarray]:
        images, labels = [], []
        for s in range(self.steps):
            start = cursor + s * self.batch_size + self.local_offset
            if self._stored_as_fitted:  # one gather of ready rows (a prepared dataset, mnist5k)
                batch_images, batch_labels = self.source.get_batch(
                    self.indices(start, self.local_size)
                )
                images.append(np.asarray(batch_images))
                labels.append(batch_labels)
                continue
            batch_images, batch_labels = sources.fetch(
                self.source, self.indices(start, self.local_size), self._decode_pool
            )
            positions = range(start, start + self.local_size)
            mapper = self._decode_pool.map if self._decode_pool else map  # PIL frees the GIL
            images.append(np.stack(list(mapper(self._prepare, batch_images, positions))))
            labels.append(batch_labels)
        return {"image": np.stack(images), "label": np.stack(labels).astype(np.int32)}

    def _prepare(self, image: np.ndarray, position: int) -> np.ndarray:
        """One example at global `position` -> uint8 [resolution, resolution, channels]; a stream
        with its own transform (a random crop drawn from the position) overrides this."""
        del position  # centre crop and resize: nothing random
        return fit_image(image, self.resolution, self.channels)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        per_call = self.steps * self.batch_size
        if self._prefetch_pool is None:
            batch = self._load(self.cursor)
        else:
            while len(self._pending) < self._prefetch + 1:
                ahead = self.cursor + len(self._pending) * per_call
                self._pending.append(self._prefetch_pool.submit(self._load, ahead))
            batch = self._pending.popleft().result()
        self.cursor += per_call
        return batch

    def close(self):
        for pool in (self._prefetch_pool, self._decode_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)


def to_global(
    batch: dict[str, np.ndarray], sharding: jax.sharding.NamedSharding
) -> dict[str, jax.Array]:
    """Assembles every process's slice into global arrays sharded on the batch axis (axis 1)."""

    def make(x):
        global_shape = (x.shape[0], x.shape[1] * jax.process_count()) + x.shape[2:]
        return jax.make_array_from_process_local_data(sharding, x, global_shape)

    return jax.tree.map(make, batch)


def to_float(
    images: jax.Array, key: jax.Array, flip: bool = False, dequantize: bool = False
) -> jax.Array:
    """uint8 [N, H, W, C] -> JAX's default float (float32; float64 under x64) in [-1, 1], in the step.

    dequantize: gan_cifar_resnet's `2·(x/256 - 0.5) + U(0, 1/128)`, i.e. (x + u)/128 - 1;
    otherwise x/127.5 - 1. flip: mirror each image along W with probability ½ (PGGAN's mirror_augment).
    """
    flip_key, noise_key = jax.random.split(key)
    # The default float, not a fixed float32: the float64 equivalence tests run the step under x64.
    x = images.astype(jnp.result_type(float))
    if dequantize:
        x = (x + jax.random.uniform(noise_key, x.shape, x.dtype)) / 128.0 - 1.0
    else:
        x = x / 127.5 - 1.0
    if flip:
        mirrored = jax.random.bernoulli(flip_key, 0.5, (x.shape[0], 1, 1, 1))
        x = jnp.where(mirrored, x[:, :, ::-1, :], x)
    return x
