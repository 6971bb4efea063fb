"""Mixed precision: the networks of a train step compute in `config.compute_dtype`, nothing else does.

`in_compute_dtype(module.apply, dtype)` is the one seam. It casts the float32 parameters and the
floating inputs to `dtype` when a network is applied and casts every floating output (scores,
logits, images, updated spectral-norm vectors) back to float32, so:

* parameters and optimizer state stay float32: the gradient of a cast is the cast of the gradient,
  so `jax.grad` w.r.t. the float32 parameters returns float32 gradients for Adam;
* losses, penalties and metrics see float32 scores and images;
* the gradient penalty's input gradient is float32 too: the interpolate is cast inside the critic
  function it differentiates, so its norm (`penalties._input_gradient_norm`) is taken in float32;
* only the `params` collection is cast: state a network updates (spectral norm's u) stays float32.

What bfloat16 cannot hold is kept in float32 inside the layers, which widen their input, compute
and cast the result back: normalisation statistics (BatchNorm, LayerNorm, instance norm, pixel
norm, minibatch stddev, NICE-GAN's ILN: `layers.in_float32`), spectral norm's power iteration, and
every parameter broadcast over activations, a bias, scale or offset (`layers.scale_and_shift`), so
that its gradient, a sum over the batch and the pixels, is added in float32.

`float32` (the default) returns `apply` itself: runs that do not ask for bfloat16 are bit-for-bit
what they were. Sampling for evaluation and sample grids stay float32 whatever the config says:
they are a small share of a run's time, and metrics should not depend on the training precision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgan.core import errors

# float16 is not offered: its 5-bit exponent overflows on unscaled GAN losses and penalties
# (it needs loss scaling); bfloat16 has float32's exponent range.
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(config: ml_collections.ConfigDict) -> Any:
    """The dtype `config.compute_dtype` names; a ConfigError for any other value."""
    name = config.compute_dtype
    if name not in COMPUTE_DTYPES:
        raise errors.ConfigError(
            f"config.compute_dtype={name!r} is not a compute dtype; accepted values: "
            f"{', '.join(COMPUTE_DTYPES)} (parameters and optimizer state stay float32 either way)."
        )
    return COMPUTE_DTYPES[name]


def cast_floating(tree, dtype) -> Any:
    """`tree` with every floating-point array leaf cast to `dtype`; integer arrays (labels),
    PRNG keys, Python numbers and other leaves as they are."""

    def cast(x):
        if isinstance(x, (jax.Array, np.ndarray)) and jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(dtype)
        return x

    return jax.tree.map(cast, tree)


def in_compute_dtype(apply: Callable, dtype) -> Callable:
    """A Flax `apply(variables, *args, **kwargs)` that computes in `dtype` (see the module docstring).

    Keyword arguments are cast too: a float32 fade weight or noise strength multiplied into a
    bfloat16 activation would promote it back to float32.
    """
    if dtype == jnp.float32:
        return apply

    def apply_in_dtype(variables, *args, **kwargs):
        variables = {**variables, "params": cast_floating(variables["params"], dtype)}
        args, kwargs = cast_floating((args, kwargs), dtype)
        return cast_floating(apply(variables, *args, **kwargs), jnp.float32)

    return apply_in_dtype
