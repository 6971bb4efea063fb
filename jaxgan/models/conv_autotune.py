"""Which stride-1 convolution formulation is faster on the host CPU: timed once per shape, kept.

XLA:CPU's native `lax.conv_general_dilated` and the same convolution as patches @ kernel
(`layers._conv_patches`) trade places with the shape and the CPU: on one CPU the ResNet step
favoured patches at width 128 and `lax` at width 32 (docs/performance.md). A rule read off
one machine is a guess on the next, so `choose` times both formulations'
forward and backward (the gradients w.r.t. input and kernel: the work a training step and the
gradient penalty's double backward repeat) on the shape in question, the first time the shape is
traced on a CPU, and records the faster one in a JSON file keyed by the CPU (vendor, family, model,
instruction flags), the JAX version, the shapes, padding and dtype. Later runs read the file.

The measurement runs eagerly in the middle of tracing (`jax.ensure_compile_time_eval`), once per
new shape, so a whole ResNet's first trace takes noticeably longer. Processes of a
multi-host run must compile the same program, so they do not tune (`conv_impl` keeps the rule).
Cache: `$JAXGAN_AUTOTUNE_CACHE`, default `conv_autotune.json` in `core.paths.cache_dir()`
($XDG_CACHE_HOME/jaxgan, else ~/.cache/jaxgan); delete it to measure again. A file that cannot be
read is measured over, with a warning.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from jaxgan.core import paths

REPEATS = 3  # timed calls per formulation, after one that compiles; the fastest counts
AUTOTUNE_CACHE = "Convolution autotune cache"


def cache_path() -> str:
    default = os.path.join(paths.cache_dir(), "conv_autotune.json")
    return os.environ.get("JAXGAN_AUTOTUNE_CACHE", default)


@functools.cache
def cpu_signature() -> str:
    """What decides which formulation XLA:CPU runs faster: the CPU, its instruction set, and JAX."""
    # XLA_FLAGS choose kernels (`core.cpu_backend`: Eigen's or YNNPACK's convolutions), and with
    # them which formulation is faster.
    xla_flags = " ".join(sorted(os.environ.get("XLA_FLAGS", "").split()))
    return f"{paths.cpu_identity()}|jax {jax.__version__}" + (
        f"|XLA_FLAGS {xla_flags}" if xla_flags else ""
    )


def seconds_for_gradients(conv: Callable, x_shape, kernel_shape, dtype) -> float:
    """Fastest of `REPEATS` calls of jit(grad of sum(conv(x, k)²) w.r.t. x and k), compiled first."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(x_shape), dtype)
    kernel = jnp.asarray(rng.standard_normal(kernel_shape) * 0.1, dtype)
    grads = jax.jit(jax.grad(lambda x, k: jnp.sum(jnp.square(conv(x, k))), argnums=(0, 1)))
    return fastest_call(grads, (x, kernel), REPEATS)


def fastest_call(fn: Callable, args: tuple, repeats: int) -> float:
    """Seconds of the fastest of `repeats` calls `fn(*args)`, each waited for, after one untimed
    call (compilation)."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def choose(candidates: dict[str, Callable], x_shape, kernel_shape, pads, dtype) -> str:
    """The name of the faster of `candidates` ({name: conv(x, kernel)}) for these shapes here,
    from the cache or measured now (and then cached)."""
    key = "|".join(
        [cpu_signature(), f"x{list(x_shape)}", f"k{list(kernel_shape)}", f"p{pads}", str(dtype)]
    )
    path = cache_path()
    table = paths.read_table(path, AUTOTUNE_CACHE)
    if table.get(key) in candidates:
        return table[key]
    with jax.ensure_compile_time_eval():  # run now, even while a jitted step is being traced
        seconds = {
            name: seconds_for_gradients(conv, x_shape, kernel_shape, dtype)
            for name, conv in candidates.items()
        }
    best = min(seconds, key=seconds.get)
    logging.info(
        "Convolution x%s k%s: %s (%s); cached in %s.",
        list(x_shape),
        list(kernel_shape),
        best,
        ", ".join(f"{name} {1e3 * s:.1f} ms" for name, s in seconds.items()),
        path,
    )
    table = paths.read_table(path, AUTOTUNE_CACHE)  # another process may have added entries
    table[key] = best
    paths.write_table(path, table)
    return best
