"""Layers shared by every model family.

Convolutions are written once, as functions of an explicit kernel (HWIO), so that a kernel can be
initialised the way each reference does it (tflib's uniform He/Glorot, DCGAN's N(0, 0.02), PGGAN's
equalized learning rate) and so that the *way* XLA computes them can be chosen per backend:

  XLA:CPU computes the double backward of a strided `lax.conv_general_dilated` (what the gradient
  penalty needs) 2-4x slower than the same convolution written as patch extraction (strided slices)
  plus one matmul; for stride-1 convolutions `lax.conv_general_dilated` is the faster of the two.
  On GPU/TPU the native convolution always wins. `conv2d` therefore picks the patch form only for
  strided convolutions on CPU (`JAXGAN_CONV_IMPL=lax|patches` forces one; both agree to float
  rounding, see tests/test_layers.py). Measurements: `python -m jaxgan.bench --conv`.

Normalisation layers use batch statistics always, as the references do when they sample
(tflib's `Batchnorm(is_training=None)`, the PyTorch DCGAN example never switching to eval mode).
Under `jax.jit` with a batch sharded over the `data` mesh axis, those statistics are global over
the whole batch, so one step on 8 devices equals the same step on one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Array = jax.Array
Padding = str | int | tuple[tuple[int, int], tuple[int, int]]
Initializer = Callable[[Array, Sequence[int], Any], Array]

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


# ----------------------------------------------------------------------------------------------
# Convolution as a function of an explicit kernel.
# ----------------------------------------------------------------------------------------------


def explicit_padding(
    padding: Padding, in_hw: Sequence[int], kernel_hw: Sequence[int], stride: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Resolves 'SAME' (TensorFlow's rule: extra pixel at the end), 'VALID', an int, or pairs."""
    if isinstance(padding, str):
        if padding.upper() == "VALID":
            return ((0, 0), (0, 0))
        if padding.upper() != "SAME":
            raise ValueError(
                f"padding={padding!r}: expected 'SAME', 'VALID', an int or ((t,b),(l,r))."
            )
        pads = []
        for size, k in zip(in_hw, kernel_hw):
            out = -(-size // stride)
            total = max((out - 1) * stride + k - size, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)  # type: ignore[return-value]
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    return tuple(tuple(p) for p in padding)  # type: ignore[return-value]


def _conv_lax(x: Array, kernel: Array, stride: int, pads) -> Array:
    return lax.conv_general_dilated(
        x, kernel, (stride, stride), pads, dimension_numbers=_DIMENSION_NUMBERS
    )


def _conv_patches(x: Array, kernel: Array, stride: int, pads) -> Array:
    """The same convolution as patch extraction plus one matmul (fast double backward on CPU)."""
    kh, kw, cin, cout = kernel.shape
    x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    oh = (x.shape[1] - kh) // stride + 1
    ow = (x.shape[2] - kw) // stride + 1
    # Tap (i, j) of every output pixel; concatenated in (i, j, c) order = the HWIO reshape order.
    taps = [
        x[:, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride, :]
        for i in range(kh)
        for j in range(kw)
    ]
    return jnp.concatenate(taps, axis=-1) @ kernel.reshape(kh * kw * cin, cout)


def conv_impl(stride: int) -> str:
    """Which formulation `conv2d` uses: see the module docstring for the measurements."""
    forced = os.environ.get("JAXGAN_CONV_IMPL", "auto")
    if forced not in ("auto", "lax", "patches"):
        raise ValueError(f"JAXGAN_CONV_IMPL={forced!r}: expected auto, lax or patches.")
    if forced != "auto":
        return forced
    return "patches" if stride > 1 and jax.default_backend() == "cpu" else "lax"


def conv2d(x: Array, kernel: Array, stride: int = 1, padding: Padding = "SAME") -> Array:
    """Cross-correlation. x: [N, H, W, C_in]; kernel: [kh, kw, C_in, C_out] -> [N, H', W', C_out]."""
    pads = explicit_padding(padding, x.shape[1:3], kernel.shape[:2], stride)
    if conv_impl(stride) == "patches":
        return _conv_patches(x, kernel, stride, pads)
    return _conv_lax(x, kernel, stride, pads)


def conv2d_transpose(
    x: Array, kernel: Array, stride: int, padding: Padding, out_hw: Sequence[int]
) -> Array:
    """The adjoint of `conv2d` (what PyTorch's ConvTranspose2d and TF's conv2d_transpose compute).

    x: [N, h, w, C_out]; kernel: [kh, kw, C_in, C_out] laid out as the forward convolution's;
    returns [N, out_hw[0], out_hw[1], C_in]. Defining it as the exact linear transpose keeps one
    convolution implementation and its CPU fast path (the transpose of patch extraction is an
    overlap-add) for both directions.
    """
    out_shape = jax.ShapeDtypeStruct((x.shape[0], *out_hw, kernel.shape[2]), x.dtype)
    transpose = jax.linear_transpose(lambda y: conv2d(y, kernel, stride, padding), out_shape)
    return transpose(x)[0]


# ----------------------------------------------------------------------------------------------
# Initialisers of the reference implementations.
# ----------------------------------------------------------------------------------------------


def tflib_uniform(he: bool, stride: int = 1, transposed: bool = False) -> Initializer:
    """igul222/improved_wgan_training `tflib` init: U(-s√3, s√3), s = sqrt(c / (fan_in + fan_out)).

    c = 4 with `he_init`, else 2 (Glorot). Conv fans: in·k², out·k²/stride²; Deconv2D: in·k²/4, out·k².
    Dense (`Linear`) kernels [in, out]: Glorot uses c = 2 over in + out; He uses sqrt(2 / in).
    """

    def init(key, shape, dtype=jnp.float32):
        if len(shape) == 2:
            fan_in, fan_out = shape
            std = math.sqrt(2.0 / fan_in) if he else math.sqrt(2.0 / (fan_in + fan_out))
        else:
            kh, kw, cin, cout = shape
            if transposed:  # kernel laid out as the forward conv: cin = deconv output channels
                fan_in, fan_out = cout * kh * kw / 4.0, cin * kh * kw
            else:
                fan_in, fan_out = cin * kh * kw, cout * kh * kw / stride**2
            std = math.sqrt((4.0 if he else 2.0) / (fan_in + fan_out))
        bound = std * math.sqrt(3.0)
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def normal(std: float, mean: float = 0.0) -> Initializer:
    def init(key, shape, dtype=jnp.float32):
        return mean + std * jax.random.normal(key, shape, dtype)

    return init


def fan_in(shape: Sequence[int]) -> int:
    """Inputs per output unit of a dense [in, out] or conv [kh, kw, in, out] kernel."""
    return int(np.prod(shape[:-1]))


# ----------------------------------------------------------------------------------------------
# Modules.
# ----------------------------------------------------------------------------------------------


class Dense(nn.Module):
    """x @ (kernel · runtime_scale) + bias. `runtime_scale` is the equalized-lr He constant."""

    features: int
    use_bias: bool = True
    kernel_init: Initializer = tflib_uniform(he=False)
    runtime_scale: float = 1.0

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), jnp.float32)
        y = x @ (kernel * self.runtime_scale if self.runtime_scale != 1.0 else kernel)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return y


class Conv2D(nn.Module):
    """2-D convolution with an HWIO kernel; see `conv2d`."""

    features: int
    kernel_size: int
    stride: int = 1
    padding: Padding = "SAME"
    use_bias: bool = True
    kernel_init: Initializer | None = None  # None: tflib He-uniform with this layer's stride
    runtime_scale: float = 1.0

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k = self.kernel_size
        init = self.kernel_init or tflib_uniform(he=True, stride=self.stride)
        kernel = self.param("kernel", init, (k, k, x.shape[-1], self.features), jnp.float32)
        if self.runtime_scale != 1.0:
            kernel = kernel * self.runtime_scale
        y = conv2d(x, kernel, self.stride, self.padding)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return y


class ConvTranspose2D(nn.Module):
    """Fractionally-strided convolution: output spatial size = input size · stride."""

    features: int
    kernel_size: int
    stride: int = 2
    padding: Padding = "SAME"
    use_bias: bool = True
    kernel_init: Initializer | None = None  # None: tflib Deconv2D He-uniform

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k = self.kernel_size
        init = self.kernel_init or tflib_uniform(he=True, transposed=True)
        # Stored as the forward convolution's kernel: [k, k, out_features, in_features].
        kernel = self.param("kernel", init, (k, k, self.features, x.shape[-1]), jnp.float32)
        out_hw = (x.shape[1] * self.stride, x.shape[2] * self.stride)
        y = conv2d_transpose(x, kernel, self.stride, self.padding, out_hw)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return y


class BatchNorm(nn.Module):
    """Batch normalisation over (N, H, W) with batch statistics, optionally class-conditional.

    With `num_classes > 0` the scale and offset are per class ([num_classes, C], looked up by label)
    while the statistics stay shared by all classes: tflib `cond_batchnorm`, the "Cond BNorm" of
    Transferring GANs and the SNGAN generator.
    """

    num_classes: int = 0
    epsilon: float = 1e-5
    scale_init: Initializer = nn.initializers.ones

    @nn.compact
    def __call__(self, x: Array, labels: Array | None = None) -> Array:
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x, axis=axes)
        var = jnp.mean(jnp.square(x - mean), axis=axes)
        y = (x - mean) * lax.rsqrt(var + self.epsilon)
        c = x.shape[-1]
        if self.num_classes:
            if labels is None:
                raise ValueError("A class-conditional BatchNorm needs `labels` (int [N]).")
            scale = self.param("scale", self.scale_init, (self.num_classes, c), jnp.float32)[labels]
            offset = self.param(
                "offset", nn.initializers.zeros, (self.num_classes, c), jnp.float32
            )[labels]
            shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (c,)
            return y * scale.reshape(shape) + offset.reshape(shape)
        scale = self.param("scale", self.scale_init, (c,), jnp.float32)
        offset = self.param("offset", nn.initializers.zeros, (c,), jnp.float32)
        return y * scale + offset


class LayerNorm(nn.Module):
    """tflib `Layernorm([1,2,3])`: statistics per sample over (H, W, C), per-channel scale/offset.

    Per-sample, so it keeps the gradient penalty per-sample (the WGAN-GP 64×64 critic uses it).
    """

    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: Array) -> Array:
        axes = tuple(range(1, x.ndim))
        mean = jnp.mean(x, axis=axes, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
        y = (x - mean) * lax.rsqrt(var + self.epsilon)
        c = x.shape[-1]
        return y * self.param("scale", nn.initializers.ones, (c,)) + self.param(
            "offset", nn.initializers.zeros, (c,)
        )


# ----------------------------------------------------------------------------------------------
# Resampling.
# ----------------------------------------------------------------------------------------------


def upsample_nearest(x: Array, factor: int = 2) -> Array:
    """Nearest-neighbour ×factor (= tflib's concat-then-depth_to_space, PGGAN's upscale2d)."""
    n, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (n, h, factor, w, factor, c))
    return x.reshape(n, h * factor, w * factor, c)


def downsample_mean(x: Array, factor: int = 2) -> Array:
    """Box filter ×1/factor (tflib's mean pool, PGGAN's downscale2d)."""
    n, h, w, c = x.shape
    return x.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))
