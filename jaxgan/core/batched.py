"""Map a jitted network over many images in fixed-shape batches sharded over the mesh.

One compile serves any number of images: batches have a fixed size (a multiple of the devices, the
last one zero-padded and the padding dropped), each sharded along its first axis while the weights
are replicated. The evaluator's feature networks, the classifiers and the experiments all map
through `make_sharded_map`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxgan.core import parallel


def check_uint8_images(images: Any, where: str) -> None:
    """Shape/dtype check shared by the traced and host-side entry points."""
    shape, dtype = tuple(images.shape), np.dtype(images.dtype)
    if len(shape) != 4 or shape[-1] not in (1, 3):
        raise ValueError(
            f"{where}: images must be [N, H, W, C] with C in (1, 3), got shape {shape}"
        )
    if dtype != np.uint8:
        raise TypeError(
            f"{where}: images must be uint8 in [0, 255], got {dtype}. Quantize generator output "
            "first, e.g. np.clip(np.floor(x * 127.5 + 128), 0, 255).astype(np.uint8) for x in "
            "[-1, 1] (StyleGAN2-ADA's rounding), so fake and real images are preprocessed alike."
        )


def round_up_to_devices(batch_size: int, mesh: jax.sharding.Mesh) -> int:
    """`batch_size` rounded up to a multiple of the mesh's devices, so every device gets an equal shard."""
    devices = mesh.devices.size
    return -(-batch_size // devices) * devices


def fixed_batches(
    images: np.ndarray | Iterable[np.ndarray], batch_size: int, where: str = "feature extractor"
) -> Iterable[tuple[np.ndarray, int]]:
    """Re-chunk an array or a stream of arrays into [batch_size, ...] batches, zero-padding the last.

    Yields (batch, number of real images in it).
    """
    chunks = [images] if isinstance(images, np.ndarray) else images
    buffer: list[np.ndarray] = []
    buffered = 0
    image_shape = None
    for chunk in chunks:
        chunk = np.asarray(chunk)
        check_uint8_images(chunk, where)
        if image_shape is None:
            image_shape = chunk.shape[1:]
        elif chunk.shape[1:] != image_shape:
            raise ValueError(
                f"{where}: all images must share one [H, W, C]; got {chunk.shape[1:]} after "
                f"{image_shape}. Resize them first, or extract each size separately."
            )
        while len(chunk):
            take = chunk[: batch_size - buffered]
            chunk = chunk[len(take) :]
            buffer.append(take)
            buffered += len(take)
            if buffered == batch_size:
                yield np.concatenate(buffer), batch_size
                buffer, buffered = [], 0
    if buffered:
        pad = np.zeros((batch_size - buffered,) + buffer[0].shape[1:], np.uint8)
        yield np.concatenate(buffer + [pad]), buffered


def make_sharded_map(
    apply: Callable[[Any, jax.Array], Mapping[str, jax.Array]],
    variables: Any,
    batch_size: int,
    output_names: Sequence[str],
    *,
    mesh: jax.sharding.Mesh | None = None,
    host_prepare: Callable[[np.ndarray], np.ndarray] | None = None,
    dtype: Any = np.float32,
    progress: str | None = None,
    where: str = "feature extractor",
) -> Callable[..., dict[str, np.ndarray]]:
    """`run(images, total=None) -> {name: [N, ...] numpy of dtype}`: a network over fixed-shape batches.

    images: uint8 [N, H, W, C], or an iterable of such chunks (any sizes; `total` sizes the
    progress bar). Each batch has `round_up_to_devices(batch_size, mesh)` images (the last one
    zero-padded, the padding dropped), so one compile serves any N. A batch is sharded along its
    first axis over `mesh` (default `parallel.make_mesh()`: every device) and `variables` are
    replicated, so each device runs an equal slice; outputs come back in input order.
    apply: a jitted `(variables, batch) -> {name: [B, ...]}`. host_prepare: numpy batch -> numpy
    batch, run on the host before the copy to the devices (e.g. a resize). progress: the
    description of a progress bar, or None for none. Safe inside a caller's `jax.set_mesh(...)`.
    """
    if batch_size < 1:
        raise ValueError(f"{where}: batch_size must be >= 1, got {batch_size}")
    mesh = mesh or parallel.make_mesh()
    batch_size = round_up_to_devices(batch_size, mesh)
    batch_sharding = parallel.sharded_on(mesh, 0)
    device_variables = jax.device_put(variables, parallel.replicated(mesh))
    prepare = host_prepare or (lambda batch: batch)

    def run(
        images: np.ndarray | Iterable[np.ndarray], total: int | None = None
    ) -> dict[str, np.ndarray]:
        if isinstance(images, (np.ndarray, jax.Array)):
            images = np.asarray(images)
            total = len(images)
        bar = None
        if progress:
            bar = tqdm(total=total, desc=progress, unit="img")
        outputs: dict[str, list[np.ndarray]] = {name: [] for name in output_names}

        def collect(pending: tuple[Mapping[str, jax.Array], int]) -> None:
            result, count = pending
            for name in output_names:
                # The whole batch to the host, then the slice: slicing a sharded array on the
                # devices would be one more dispatched op per output.
                outputs[name].append(np.asarray(result[name], dtype=dtype)[:count])
            if bar is not None:
                bar.update(count)

        pending = None
        try:
            # A caller's mesh context would otherwise re-shard or replicate the work; the explicit
            # shardings of the inputs decide where it runs. The caller's context is restored on exit.
            with jax.set_mesh(None):
                for batch, count in fixed_batches(images, batch_size, where):
                    # Dispatch this batch before pulling the previous one back: host/device overlap.
                    x = jax.device_put(prepare(batch), batch_sharding)
                    result = apply(device_variables, x)
                    if pending is not None:
                        collect(pending)
                    pending = (result, count)
                if pending is not None:
                    collect(pending)
        finally:
            if bar is not None:
                bar.close()
        if pending is None:
            raise ValueError(f"{where}: no images given")
        return {name: np.concatenate(parts) for name, parts in outputs.items()}

    return run
