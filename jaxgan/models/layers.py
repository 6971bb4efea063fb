"""Layers shared by every model family.

Convolutions are written once, as functions of an explicit kernel (HWIO), so that a kernel can be
initialised the way each reference does it (tflib's uniform He/Glorot, DCGAN's N(0, 0.02), PGGAN's
equalized learning rate) and so that the *way* XLA computes them can be chosen per backend:

  XLA:CPU computes the double backward of a strided `lax.conv_general_dilated` (what the gradient
  penalty needs) several times slower than the same convolution written as patch extraction
  (strided slices) plus one matmul; for stride-1 convolutions `lax.conv_general_dilated` is the
  faster of the two.
  On GPU/TPU the native convolution always wins. `conv2d` therefore picks the patch form for
  strided convolutions on CPU, and `conv2d_transpose` there keeps XLA's forward but writes its
  gradients as patch products. For stride-1 convolutions on CPU which form wins depends on the
  shape and the CPU, so it is measured once per shape and cached (`conv_autotune`); a layer
  with few output channels (an image, a score) is `col2im` (one matmul into every tap's output
  columns, added at their shifts), the patch form's matmul having that few columns.
  `JAXGAN_CONV_IMPL=lax|patches|taps|col2im` forces one everywhere (`taps`: one matmul per
  kernel tap, summed, no patch matrix; not a candidate of the autotune), `rule` keeps `lax` for
  stride 1 without measuring; the forms agree to float rounding through the double backward
  (tests/test_layers.py). `python -m jaxgan.bench --conv`.

  A convolution behind a nearest ×2 upsampling or in front of a 2×2 mean (tflib's UpsampleConv
  and ConvMeanPool, PGGAN's up and down layers) is computed as the one linear map the pair is
  (`Conv2D(resample=...)`): neither the upsampled input nor the output the mean averages away
  is computed, 2.25× fewer multiply-adds for a 3×3 kernel (docs/performance.md).

Under bfloat16 activations (`config.compute_dtype`, `jaxgan/core/precision.py`) two kinds of arithmetic
run in at least float32 and are cast back to the activations' dtype: normalisation statistics
(`in_float32`: with 8 significant bits, x - mean cancels to a few levels and a variance of many
terms loses most of its digits) and every parameter broadcast over activations, a bias, scale or
offset (`scale_and_shift`: its gradient is a sum over the batch and the pixels, and XLA:CPU adds
a bfloat16 sum in bfloat16, which stalls once the total is 2^8 times the terms). With float32
activations both are the plain float32 arithmetic they always were.

Normalisation layers use batch statistics always, as the references do when they sample
(tflib's `Batchnorm(is_training=None)`, the PyTorch DCGAN example never switching to eval mode).
Under `jax.jit` with a batch sharded over the `data` mesh axis, those statistics are global over
the whole batch, so one step on 8 devices equals the same step on one.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxgan.models import conv_autotune

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


def _taps(x: Array, kh: int, kw: int, stride: int, pads) -> tuple[list[Array], tuple[int, int]]:
    """The padded input seen by each kernel tap (i, j), in HWIO order: [N, oh, ow, C] each."""
    x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    oh = (x.shape[1] - kh) // stride + 1
    ow = (x.shape[2] - kw) // stride + 1
    taps = [x[:, _grid(i, oh, stride), _grid(j, ow, stride)] for i in range(kh) for j in range(kw)]
    return taps, (oh, ow)


def _grid(start: int, size: int, stride: int) -> slice:
    """The `size` positions of an output row (or column) on the input, from tap offset `start`."""
    return slice(start, start + stride * (size - 1) + 1, stride)


def _patch_matrix(x: Array, kh: int, kw: int, stride: int, pads) -> tuple[Array, tuple[int, int]]:
    """Every output pixel's receptive field as a row [N·oh·ow, kh·kw·C], in HWIO reshape order."""
    taps, (oh, ow) = _taps(x, kh, kw, stride, pads)
    # Flattened rows: with [N, oh, ow] left as three dimensions, the kernel gradient contracts over
    # all three, which XLA:CPU ran several times slower than the same product as one 2-D matmul.
    return jnp.concatenate(taps, axis=-1).reshape(-1, kh * kw * x.shape[3]), (oh, ow)


def _conv_patches(x: Array, kernel: Array, stride: int, pads) -> Array:
    """The same convolution as patch extraction plus one matmul (fast double backward on CPU)."""
    kh, kw, cin, cout = kernel.shape
    patches, (oh, ow) = _patch_matrix(x, kh, kw, stride, pads)
    return (patches @ kernel.reshape(kh * kw * cin, cout)).reshape(x.shape[0], oh, ow, cout)


def _conv_taps(x: Array, kernel: Array, stride: int, pads) -> Array:
    """The same convolution as one matmul per kernel tap, summed: [N·oh·ow, C_in] @ [C_in, C_out]
    kh·kw times. No patch matrix (kh·kw times the input) is built: on one wide layer its penalty
    double backward beat both other forms on CPU, whole steps did not (docs/performance.md)."""
    kh, kw, cin, cout = kernel.shape
    taps, (oh, ow) = _taps(x, kh, kw, stride, pads)
    products = [tap.reshape(-1, cin) @ kernel[k // kw, k % kw] for k, tap in enumerate(taps)]
    return functools.reduce(jnp.add, products).reshape(x.shape[0], oh, ow, cout)


def _conv_col2im(x: Array, kernel: Array, stride: int, pads) -> Array:
    """The same convolution as one matmul into every tap's output columns, [N·H·W, C_in] @
    [C_in, kh·kw·C_out], each tap's columns then added at its shift (col2im). For few output
    channels (an image's 1-3): the matmul is well shaped where the patch matrix's is not (a
    [N·oh·ow, kh·kw·C_in] matrix times 1-3 columns), and no patch matrix is built. Reverse mode
    only (a custom VJP), as `conv2d_transpose` on CPU."""
    x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    return _col2im_valid(x, kernel, stride)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _col2im_valid(x: Array, kernel: Array, stride: int) -> Array:
    n, h, w, cin = x.shape
    kh, kw, _, cout = kernel.shape
    oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    columns = x.reshape(-1, cin) @ kernel.transpose(2, 0, 1, 3).reshape(cin, kh * kw * cout)
    columns = columns.reshape(n, h, w, kh, kw, cout)
    shifted = [
        columns[:, _grid(i, oh, stride), _grid(j, ow, stride), i, j]
        for i in range(kh)
        for j in range(kw)
    ]
    # XLA fuses this sum into whatever reads it: where the cotangent is a cheap function of the
    # output (a squared loss), the gradient's patch matrix below recomputes it kh·kw times;
    # behind a costly activation (tanh) it is computed once. A sum XLA must materialise (a
    # matrix-vector product over the stacked taps) cost more than half the CycleGAN step's gain.
    return functools.reduce(jnp.add, shifted)


def _col2im_fwd(x, kernel, stride):
    return _col2im_valid(x, kernel, stride), (x, kernel)


def _col2im_bwd(stride, residuals, cotangent):
    """Autodiff would transpose each tap's slice into a padded copy of the whole column tensor;
    instead: the columns' cotangent is the output cotangent's patch matrix (tap (i, j) reads it
    shifted back by (i, j), on the stride's grid), and both gradients are one matmul with it."""
    x, kernel = residuals
    _, h, w, cin = x.shape
    kh, kw, _, cout = kernel.shape
    oh, ow = cotangent.shape[1:3]
    # Spread onto the input's grid (stride - 1 zeros between pixels), kh - 1 zeros before: tap
    # (kh-1-i, kw-1-j) of this, at (p, q), is the cotangent of column (p, q, i, j).
    spread = lax.pad(
        cotangent,
        jnp.zeros((), cotangent.dtype),
        (
            (0, 0, 0),
            (kh - 1, h - (oh - 1) * stride - 1, stride - 1),
            (kw - 1, w - (ow - 1) * stride - 1, stride - 1),
            (0, 0, 0),
        ),
    )
    d_columns, _ = _patch_matrix(spread, kh, kw, 1, ((0, 0), (0, 0)))  # taps (kh-1-i, kw-1-j)
    flipped = kernel[::-1, ::-1]
    d_x = d_columns @ flipped.transpose(0, 1, 3, 2).reshape(kh * kw * cout, cin)
    d_flipped = (x.reshape(-1, cin).T @ d_columns).reshape(cin, kh, kw, cout)
    return d_x.reshape(x.shape), d_flipped.transpose(1, 2, 0, 3)[::-1, ::-1]


_col2im_valid.defvjp(_col2im_fwd, _col2im_bwd)


CONV_FORMULATIONS = {
    "lax": _conv_lax,
    "patches": _conv_patches,
    "taps": _conv_taps,
    "col2im": _conv_col2im,
}


def conv_impl(stride: int) -> str:
    """The formulation `conv2d` uses for strided convolutions (and `conv2d_transpose` for its
    gradients): patches on CPU, XLA's own elsewhere; `JAXGAN_CONV_IMPL=lax|patches|taps` forces one
    (for every convolution, stride 1 included)."""
    forced = os.environ.get("JAXGAN_CONV_IMPL", "auto")
    if forced not in ("auto", "rule", *CONV_FORMULATIONS):
        raise ValueError(
            f"JAXGAN_CONV_IMPL={forced!r}: expected auto, rule, {', '.join(CONV_FORMULATIONS)}."
        )
    if forced in CONV_FORMULATIONS:
        return forced
    return "patches" if stride > 1 and jax.default_backend() == "cpu" else "lax"


AUTOTUNE_MIN_BATCH = 8
AUTOTUNE_CANDIDATES = ("lax", "patches")
# Output channels of a narrow layer (an image's, a critic's score), which `col2im` computes.
NARROW_OUTPUT = 4


def is_narrow(kernel_shape: Sequence[int]) -> bool:
    """A layer with few output channels and a kernel wider than 1×1 (1×1: col2im is patches)."""
    kh, kw, _, c_out = kernel_shape
    return c_out <= NARROW_OUTPUT and kh * kw > 1


def stride1_conv_impl(x: Array, kernel: Array, pads) -> str:
    """A stride-1 convolution's formulation. On CPU with `JAXGAN_CONV_IMPL=auto` (the default):
    `col2im` for a narrow layer (`is_narrow`), else the faster one for this shape on the host CPU,
    timed once (`conv_autotune`); `rule` gives the fixed rule's `lax`, as do accelerators (whose
    native convolution always wins) and, narrow layers aside, multi-host runs and batches under
    `AUTOTUNE_MIN_BATCH`.

    Narrow layers are not timed: the patch form's matmul has 1-4 columns there (tens of times
    slower than `lax`), and between `lax` and `col2im` the autotune's timing, whose cotangent is
    made from the output, charges col2im for recomputing its output kh·kw times, which the
    networks' narrow layers (behind a tanh, or a score on a small map) do not pay
    (docs/performance.md)."""
    forced = os.environ.get("JAXGAN_CONV_IMPL", "auto")
    if forced != "auto" or jax.default_backend() != "cpu":
        return conv_impl(1)
    if is_narrow(kernel.shape):
        return "col2im"
    if jax.process_count() > 1 or x.shape[0] < AUTOTUNE_MIN_BATCH:
        return conv_impl(1)  # not timed: hosts must agree; an initialisation's dummy batch

    # Not taps: timed on first-order gradients it wins layers whose double backward it slows
    # (the PGGAN and ResNet critics' steps got slower with it; docs/performance.md).
    candidates = {
        name: functools.partial(CONV_FORMULATIONS[name], stride=1, pads=pads)
        for name in AUTOTUNE_CANDIDATES
    }
    return conv_autotune.choose(candidates, x.shape, kernel.shape, pads, x.dtype)


def conv2d(x: Array, kernel: Array, stride: int = 1, padding: Padding = "SAME") -> Array:
    """Cross-correlation. x: [N, H, W, C_in]; kernel: [kh, kw, C_in, C_out] -> [N, H', W', C_out]."""
    pads = explicit_padding(padding, x.shape[1:3], kernel.shape[:2], stride)
    impl = conv_impl(stride) if stride > 1 else stride1_conv_impl(x, kernel, pads)
    return CONV_FORMULATIONS[impl](x, kernel, stride, pads)


def conv2d_mean_pool(x: Array, kernel: Array) -> Array:
    """`downsample_mean(conv2d(x, kernel))` (tflib's ConvMeanPool): one stride-2 convolution whose
    kernel is the 2×2 box filter of `kernel`, one tap larger (`_conv_mean_pool_fused`), or on CPU
    for narrow inputs the two steps (`mean_pool_impl`). x: [N, H, W, C_in] with H and W even."""
    if x.shape[1] % 2 or x.shape[2] % 2:
        raise ValueError(f"conv2d_mean_pool: a {x.shape[1:3]} map cannot be halved by a 2×2 mean.")
    return MEAN_POOL_FORMS[mean_pool_impl(x, kernel)](x, kernel)


def _conv_mean_pool_fused(x: Array, kernel: Array) -> Array:
    """PGGAN's fused `conv2d_downscale2d`: both maps are linear, so they compose into one. It
    computes a quarter of the outputs with (k+1)²/k² of the taps each: 2.25× fewer
    multiply-adds for a 3×3 kernel, gradients included."""
    # Output (p, q) averages the SAME outputs (2p + a, 2q + b), so tap (s, t) of the window at
    # (2p, 2q) (the SAME padding, which the larger kernel's stride-2 windows need as well)
    # carries kernel[s - a, t - b] for each of the four (a, b).
    wide = at_least_float32(kernel)  # the taps summed in float32, then the kernel's dtype
    shifted = [
        jnp.pad(wide, ((a, 1 - a), (b, 1 - b), (0, 0), (0, 0))) for a in (0, 1) for b in (0, 1)
    ]
    box = (functools.reduce(jnp.add, shifted) * 0.25).astype(kernel.dtype)
    pads = explicit_padding("SAME", x.shape[1:3], kernel.shape[:2], 1)
    return CONV_FORMULATIONS[conv_impl(2)](x, box, 2, pads)


def _conv_then_mean_pool(x: Array, kernel: Array) -> Array:
    return downsample_mean(conv2d(x, kernel))


MEAN_POOL_FORMS = {"fused": _conv_mean_pool_fused, "separate": _conv_then_mean_pool}


# Input channels from which a convolution and 2×2 mean is fused on CPU (`mean_pool_impl`).
MEAN_POOL_FUSED_MIN_CHANNELS = 64


def mean_pool_impl(x: Array, kernel: Array) -> str:
    """`fused` on accelerators (their native strided convolution needs no patches) and on CPU from
    `MEAN_POOL_FUSED_MIN_CHANNELS` input channels, else `separate`; `JAXGAN_CONV_IMPL=lax|patches|...`
    forces `fused` (with that formulation). On CPU the fused form's fewer multiply-adds come as a
    strided patch convolution: at 128 channels it made the ResNets' steps 1.3-1.4× faster, with
    the gradient penalty and without; at 16 SNGAN's step ~8 % slower (docs/performance.md).
    Not the autotune: timed alone, one layer's first-order gradients chose `separate` at 128
    channels, and that step was 1.25× slower."""
    forced = os.environ.get("JAXGAN_CONV_IMPL", "auto") not in ("auto", "rule")
    if forced or jax.default_backend() != "cpu":
        return "fused"
    return "fused" if x.shape[-1] >= MEAN_POOL_FUSED_MIN_CHANNELS else "separate"


def conv2d_upsampled(x: Array, kernel: Array) -> Array:
    """`conv2d(upsample_nearest(x), kernel)` (tflib's UpsampleConv) without the upsampled map:
    each of the four output phases (2p + a, 2q + b) reads the input around (p, q) through a
    smaller kernel, the taps that land on one input pixel summed (PGGAN's fused
    `upscale2d_conv2d` is the same kernel as one transposed convolution). Four 2×2 convolutions at
    the input's size instead of one 3×3 at twice it: 2.25× fewer multiply-adds."""
    pads = explicit_padding("SAME", [2 * size for size in x.shape[1:3]], kernel.shape[:2], 1)
    wide = at_least_float32(kernel)  # the taps summed in float32, then the kernel's dtype

    def merge_taps(k: Array, axis: int, a: int) -> tuple[Array, tuple[int, int]]:
        """Along `axis`, phase a's kernel (the taps that read one input pixel summed) and the
        padding of its convolution. Tap u of output 2p + a reads input p + (a + u - lo) // 2."""
        offsets = [(a + u - pads[axis][0]) // 2 for u in range(k.shape[axis])]
        merged = [  # the offsets only grow, so each one's taps are a run
            lax.slice_in_dim(
                k, offsets.index(d), len(offsets) - offsets[::-1].index(d), axis=axis
            ).sum(axis=axis)
            for d in range(offsets[0], offsets[-1] + 1)
        ]
        return jnp.stack(merged, axis=axis), (-offsets[0], offsets[-1])

    rows = []
    for a in (0, 1):
        rows_kernel, pads_h = merge_taps(wide, 0, a)
        columns = []
        for b in (0, 1):
            small, pads_w = merge_taps(rows_kernel, 1, b)
            columns.append(conv2d(x, small.astype(kernel.dtype), 1, (pads_h, pads_w)))
        rows.append(jnp.stack(columns, axis=3))  # [N, H, W, b, C]
    n, h, w, _, c = rows[0].shape
    return jnp.stack(rows, axis=2).reshape(n, 2 * h, 2 * w, c)  # [N, H, a, W, b, C]


RESAMPLED_CONV = {"up": conv2d_upsampled, "down": conv2d_mean_pool}


def conv2d_transpose(
    x: Array, kernel: Array, stride: int, padding: Padding, out_hw: Sequence[int]
) -> Array:
    """The adjoint of `conv2d` (what PyTorch's ConvTranspose2d and TF's conv2d_transpose compute).

    x: [N, h, w, C_out]; kernel: [kh, kw, C_in, C_out] laid out as the forward convolution's;
    returns [N, out_hw[0], out_hw[1], C_in]. Where `conv2d` uses patches, the forward stays XLA's
    and only the backward is written as patches (`_conv_transpose_patch_backward`).
    """
    pads = explicit_padding(padding, out_hw, kernel.shape[:2], stride)
    if conv_impl(stride) != "lax":  # patches (or taps, forced): XLA's gradients are the slow part
        return _conv_transpose_patch_backward(x, kernel, stride, pads, tuple(out_hw))
    return _conv_transpose_lax(x, kernel, stride, pads, out_hw)


def _conv_transpose_lax(y: Array, kernel: Array, stride: int, pads, out_hw) -> Array:
    """The exact linear transpose of the `lax` convolution: XLA's native transposed convolution."""
    out_shape = jax.ShapeDtypeStruct((y.shape[0], *out_hw, kernel.shape[2]), y.dtype)
    transpose = jax.linear_transpose(lambda x: _conv_lax(x, kernel, stride, pads), out_shape)
    return transpose(y)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_transpose_patch_backward(y: Array, kernel: Array, stride: int, pads, out_hw) -> Array:
    """XLA's transposed convolution forward, with its gradients written as patch products (CPU).

    XLA:CPU's native transposed convolution has the fastest forward (faster than patches or the
    transpose of `_conv_patches`), but its autodiff gradients are several times slower than patch
    products (the DCGAN generator's layers; docs/performance.md). Being linear in y and
    in the kernel, the gradients are: d/dy = `conv2d` of the cotangent, d/dkernel = the weight
    gradient of `conv2d` at the cotangent; both are one matmul on the cotangent's patches.
    Reverse mode only (a custom VJP): `jax.jvp` through a CPU generator is not supported.
    """
    return _conv_transpose_lax(y, kernel, stride, pads, out_hw)


def _patch_backward_fwd(y, kernel, stride, pads, out_hw):
    return _conv_transpose_lax(y, kernel, stride, pads, out_hw), (y, kernel)


def _patch_backward_bwd(stride, pads, out_hw, residuals, cotangent):
    del out_hw
    y, kernel = residuals
    kh, kw, c_in, c_out = kernel.shape
    patches, _ = _patch_matrix(cotangent, kh, kw, stride, pads)
    d_y = (patches @ kernel.reshape(kh * kw * c_in, c_out)).reshape(y.shape)
    d_kernel = (patches.T @ y.reshape(-1, c_out)).reshape(kernel.shape)
    return d_y, d_kernel


_conv_transpose_patch_backward.defvjp(_patch_backward_fwd, _patch_backward_bwd)


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
# Statistics in float32 under bfloat16 activations.
# ----------------------------------------------------------------------------------------------


def at_least_float32(x: Array) -> Array:
    """x as float32 if it is narrower (bfloat16); float32 and float64 as they are."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def in_float32(normalize: Callable[..., Array]) -> Callable[..., Array]:
    """`normalize(x, ...)` computed on `at_least_float32(x)`, its result cast back to x's dtype."""

    @functools.wraps(normalize)
    def normalize_in_float32(x: Array, *args, **kwargs) -> Array:
        return normalize(at_least_float32(x), *args, **kwargs).astype(x.dtype)

    return normalize_in_float32


@in_float32
def scale_and_shift(x: Array, scale: Array | None = None, offset: Array | None = None) -> Array:
    """x · scale + offset (either may be None), with scale and offset broadcast to x in float32."""
    if scale is not None:
        x = x * scale
    return x if offset is None else x + offset


# ----------------------------------------------------------------------------------------------
# Modules.
# ----------------------------------------------------------------------------------------------


class Dense(nn.Module):
    """x @ (kernel · runtime_scale) + bias. `runtime_scale` is the equalized-lr He constant;
    `spectral_norm` divides the kernel by its largest singular value (`spectral_normalize`)."""

    features: int
    use_bias: bool = True
    kernel_init: Initializer = tflib_uniform(he=False)
    runtime_scale: float = 1.0
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), jnp.float32)
        if self.spectral_norm:
            kernel = spectral_normalize(self, kernel)
        y = x @ (kernel * self.runtime_scale if self.runtime_scale != 1.0 else kernel)
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
            y = scale_and_shift(y, offset=bias)
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
    spectral_norm: bool = False
    bias_init: Initializer = nn.initializers.zeros  # PyTorch's default needs the fan-in: nicegan
    # 'up': nearest ×2 before it (tflib's UpsampleConv), 'down': a 2×2 mean after it (ConvMeanPool),
    # each computed as one map: `conv2d_upsampled`, `conv2d_mean_pool`. Stride 1, 'SAME' only.
    resample: str | None = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k = self.kernel_size
        init = self.kernel_init or tflib_uniform(he=True, stride=self.stride)
        kernel = self.param("kernel", init, (k, k, x.shape[-1], self.features), jnp.float32)
        if self.spectral_norm:
            kernel = spectral_normalize(self, kernel)
        if self.runtime_scale != 1.0:
            kernel = kernel * self.runtime_scale
        if self.resample is None:
            y = conv2d(x, kernel, self.stride, self.padding)
        elif self.resample in RESAMPLED_CONV and (self.stride, self.padding) == (1, "SAME"):
            y = RESAMPLED_CONV[self.resample](x, kernel)
        else:
            raise ValueError(
                f"Conv2D {self.name}: resample={self.resample!r} with stride {self.stride} and "
                f"padding {self.padding!r}; expected 'up' or 'down' with stride 1 and 'SAME'."
            )
        if self.use_bias:
            bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
            y = scale_and_shift(y, offset=bias)
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
            bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
            y = scale_and_shift(y, offset=bias)
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

    def statistics(self, x: Array) -> tuple[Array, Array]:
        """The batch's per-channel (mean, variance) over (N, H, W). A method of its own so that a
        caller may read or replace them (`nn.intercept_methods`): `jaxgan.experiments.dcgan_features` freezes
        them to make a critic's features one image's alone."""
        x = at_least_float32(x)
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x, axis=axes)
        return mean, jnp.mean(jnp.square(x - mean), axis=axes)

    @nn.compact
    def __call__(self, x: Array, labels: Array | None = None) -> Array:
        mean, var = self.statistics(x)
        y = ((at_least_float32(x) - mean) * lax.rsqrt(var + self.epsilon)).astype(x.dtype)
        c = x.shape[-1]
        if self.num_classes:
            if labels is None:
                raise ValueError("A class-conditional BatchNorm needs `labels` (int [N]).")
            # Looked up in float32 too: the lookup's gradient adds the samples of each class.
            table = lambda name, init: at_least_float32(
                self.param(name, init, (self.num_classes, c), jnp.float32)
            )[labels]
            shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (c,)
            scale = table("scale", self.scale_init).reshape(shape)
            offset = table("offset", nn.initializers.zeros).reshape(shape)
            return scale_and_shift(y, scale, offset)
        scale = self.param("scale", self.scale_init, (c,), jnp.float32)
        offset = self.param("offset", nn.initializers.zeros, (c,), jnp.float32)
        return scale_and_shift(y, scale, offset)


def batchnorm_statistics(frozen: dict | None = None, recorded: dict | None = None):
    """An `nn.intercept_methods` interceptor of every `BatchNorm.statistics` call.

    With `frozen` ({module path: (mean, var)}) each BatchNorm normalises with its entry instead of
    its batch's: an image's output is then its own, not its batch's (a critic's features, a latent
    walk's frames). Otherwise each layer's batch statistics are written to `recorded`: run a
    reference batch through the model once to fill it. Inside `jax.jit` both must be traced with
    the interceptor active; an already-compiled function ignores it.
    """

    def interceptor(next_fun, args, kwargs, context):
        module = context.module
        if context.method_name != "statistics" or not isinstance(module, BatchNorm):
            return next_fun(*args, **kwargs)
        path = "/".join(module.path)
        if frozen is not None:
            return frozen[path]
        recorded[path] = next_fun(*args, **kwargs)
        return recorded[path]

    return interceptor


class LayerNorm(nn.Module):
    """tflib `Layernorm([1,2,3])`: statistics per sample over (H, W, C), per-channel scale/offset.

    Per-sample, so it keeps the gradient penalty per-sample (the WGAN-GP 64×64 critic uses it).
    """

    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x: Array) -> Array:
        y = standardize(x, tuple(range(1, x.ndim)), self.epsilon)
        c = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (c,))
        return scale_and_shift(y, scale, self.param("offset", nn.initializers.zeros, (c,)))


@in_float32
def standardize(x: Array, axes: tuple[int, ...], epsilon: float) -> Array:
    """(x - mean) · rsqrt(var + epsilon), mean and biased variance over `axes` of each sample."""
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
    return (x - mean) * lax.rsqrt(var + epsilon)


def instance_norm(x: Array, epsilon: float = 1e-5) -> Array:
    """Instance normalisation without scale or offset: each sample's channels over (H, W).

    x: [N, H, W, C]. PyTorch's `InstanceNorm2d(affine=False, track_running_stats=False)`, the
    CycleGAN default (networks.py `get_norm_layer('instance')`): biased variance, eps 1e-5, the
    same in train and test mode. Per-sample, so sharding the batch never changes it.
    """
    return standardize(x, (1, 2), epsilon)


def reflection_pad(x: Array, pad: int) -> Array:
    """PyTorch's `ReflectionPad2d(pad)` on [N, H, W, C]: mirrors H and W without repeating the edge
    pixel (numpy's 'reflect', not 'symmetric'); needs pad < H and pad < W."""
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


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


# ----------------------------------------------------------------------------------------------
# Progressive GAN (Karras et al. 2018, tkarras/progressive_growing_of_gans `networks.py`):
# equalized learning rate, pixelwise feature normalisation, minibatch standard deviation.
# Resampling is `upsample_nearest` (`upscale2d`) and `downsample_mean` (`downscale2d`) above.
# ----------------------------------------------------------------------------------------------

HE_GAIN = math.sqrt(2.0)


def equalized_lr(fan_in: int, gain: float = HE_GAIN, enabled: bool = True) -> dict[str, Any]:
    """`kernel_init` and `runtime_scale` for `Dense`/`Conv2D`: equalized learning rate as a transform.

    networks.py `get_weight`: std = gain / sqrt(fan_in) (He). With `enabled` (use_wscale) the stored
    kernel is N(0, 1) and is multiplied by std at every call, so Adam's per-weight step acts on the
    same dynamic range for every layer (paper §4.1); otherwise the kernel is stored as N(0, std²).
    Biases stay zero-initialised and unscaled (`apply_bias`). fan_in = k·k·C_in (conv), C_in (dense).
    """
    std = gain / math.sqrt(fan_in)
    if enabled:
        return {"kernel_init": normal(1.0), "runtime_scale": std}
    return {"kernel_init": normal(std), "runtime_scale": 1.0}


@in_float32
def pixel_norm(x: Array, epsilon: float = 1e-8) -> Array:
    """x · rsqrt(mean_c(x²) + ε): every pixel's feature vector to unit mean square (paper §4.2).

    x: [..., C] (channels last); networks.py `pixel_norm` normalises axis 1 of NCHW, the same axis.
    """
    return x * lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + epsilon)


def minibatch_stddev(x: Array, group_size: int = 4) -> Array:
    """Appends one feature map: the mean over (H, W, C) of the stddev over a group (paper §3).

    x: [N, H, W, C] -> [N, H, W, C + 1]. networks.py `minibatch_stddev_layer`: G = min(group_size,
    N) and the batch is viewed as [G, M, ...], so sample n belongs to group n % M (strided, not
    consecutive samples); population variance over the group, sqrt(var + 1e-8), averaged to one
    scalar per group, broadcast to that group's samples. group_size >= N is the Theano original
    (`MinibatchStatConcatLayer(Tstdeps, 'all')`, one statistic over the whole minibatch).

    Global or per device: under `jax.jit` with the batch sharded over the `data` mesh axis, N is the
    *global* batch and the groups {m, m+M, m+2M, ...} span devices, whereas the reference's multi-GPU
    graph forms groups within each GPU's share. The two coincide on one device (the Theano code
    that produced the paper's numbers ran on one GPU) and differ on several; `minibatch_stddev_per_device` computes the reference's
    per-device version with `shard_map`.
    """
    n, h, w, c = x.shape
    g = min(group_size, n)
    if n % g:
        raise ValueError(
            f"minibatch_stddev: the batch of {n} is not divisible by the group size {g}; use a "
            f"batch size that is a multiple of {g} (or config.model.mbstd_group_size=0 to disable)."
        )
    # Statistics in at least float32 (networks.py casts to float32); float64 stays float64.
    y = at_least_float32(x).reshape(g, n // g, h, w, c)
    y = y - jnp.mean(y, axis=0, keepdims=True)
    y = jnp.sqrt(jnp.mean(jnp.square(y), axis=0) + 1e-8)  # [M, H, W, C]
    y = jnp.mean(y, axis=(1, 2, 3)).astype(x.dtype)  # [M]
    y = jnp.tile(y, g)  # sample n -> group n % M
    return jnp.concatenate([x, jnp.broadcast_to(y[:, None, None, None], (n, h, w, 1))], axis=-1)


def minibatch_discrimination(features: Array, kernel: Array, bias: Array) -> Array:
    """Appends K features that say how close each sample is to the others (Salimans et al. 2016 §3.2).

    features: [N, A] (more axes are flattened); kernel: [A, K, D]; bias: [K] -> [N, A + K]. The
    PGGAN Theano code's `MinibatchLayer`: M = features·kernel [N, K, D]; for each kernel k,
    o[i, k] = Σ_{j ≠ i} exp(-Σ_d |M[i, k, d] - M[j, k, d]|) + bias[k] (an L1 distance, summed over
    the rest of the batch: the reference adds 1e6 to the distance of a sample to itself, so it
    counts 0), concatenated to the features.
    """
    x = at_least_float32(features.reshape(features.shape[0], -1))
    m = jnp.einsum("na,akd->nkd", x, at_least_float32(kernel))
    distance = jnp.sum(jnp.abs(m[:, None] - m[None, :]), axis=-1)  # [N, N, K]
    others = ~jnp.eye(x.shape[0], dtype=bool)[:, :, None]
    closeness = jnp.sum(jnp.where(others, jnp.exp(-distance), 0.0), axis=1) + bias
    return jnp.concatenate([x, closeness], axis=-1).astype(features.dtype)


def minibatch_stddev_per_device(
    x: Array, mesh: jax.sharding.Mesh, group_size: int = 4, axis_name: str = "data"
) -> Array:
    """`minibatch_stddev` over each device's share of a batch sharded on `axis_name` (shard_map).

    The reference's per-GPU grouping (train.py splits the minibatch over GPUs before D). Each
    device's share must be divisible by the group size.
    """
    spec = jax.sharding.PartitionSpec(axis_name)
    fn = lambda shard: minibatch_stddev(shard, group_size)
    return jax.shard_map(fn, mesh=mesh, in_specs=spec, out_specs=spec)(x)


# ----------------------------------------------------------------------------------------------
# Spectral normalisation (Miyato et al. 2018; pfnet-research/sngan_projection `SNConvolution2D`,
# `max_singular_value`): W / σ(W), σ from one power iteration on a persistent vector u.
# ----------------------------------------------------------------------------------------------

SPECTRAL_COLLECTION = "spectral_norm"


def _l2_normalize(v: Array, epsilon: float = 1e-12) -> Array:
    return v / (jnp.sqrt(jnp.sum(jnp.square(v))) + epsilon)


def spectral_normalize(module: nn.Module, kernel: Array, name: str = "kernel") -> Array:
    """`kernel / σ(kernel)` inside `module`'s `__call__`, with σ the largest singular value.

    The kernel is viewed as the matrix [C_out, everything else] (dense [in, out] and conv HWIO
    alike). u [C_out] lives in the `spectral_norm` collection; each call runs one power iteration
    from it: v = normalize(u W), u' = normalize(v Wᵀ), σ = u' W vᵀ, with u and v held constant, so
    the gradient flows through W only (the reference `max_singular_value`). u' is stored only
    when the caller made the collection mutable, which the train step does once per critic
    update, on the reals: never inside the gradient penalty's inner gradient or the generator step.
    """
    # The power iteration in float32 (u is stored float32); W / σ in the kernel's dtype.
    matrix = at_least_float32(kernel).reshape(-1, kernel.shape[-1]).T  # [C_out, fan_in]
    u_var = module.variable(
        SPECTRAL_COLLECTION,
        f"{name}_u",
        lambda: _l2_normalize(jax.random.normal(module.make_rng("params"), (matrix.shape[0],))),
    )
    u = u_var.value
    v = jax.lax.stop_gradient(_l2_normalize(u @ matrix))
    u = jax.lax.stop_gradient(_l2_normalize(matrix @ v))
    sigma = u @ matrix @ v
    if module.is_mutable_collection(SPECTRAL_COLLECTION) and not module.is_initializing():
        u_var.value = u
    return (at_least_float32(kernel) / sigma).astype(kernel.dtype)


class Embed(nn.Module):
    """A class embedding [num_classes, features] looked up by label (projection discriminator)."""

    num_classes: int
    features: int
    embedding_init: Initializer = nn.initializers.normal(1.0)
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, labels: Array) -> Array:
        table = self.param(
            "embedding", self.embedding_init, (self.num_classes, self.features), jnp.float32
        )
        if self.spectral_norm:
            table = spectral_normalize(self, table, "embedding")
        return table[labels]


def condition_latents(
    z: Array, labels: Array | None, num_classes: int, conditioning: str
) -> tuple[Array, int]:
    """How a class-conditional generator sees its label; returns (z, classes for its BatchNorms).

    'batchnorm': z unchanged, per-class BN scale/offset ("Cond BNorm" of Transferring GANs, the
    conditional BN of AC-GAN/SNGAN generators). 'concat': the one-hot label joins z and the BNs are
    unconditional ("Cond Concat"); the first dense layer then adds a learned per-class vector.
    """
    if not num_classes:
        return z, 0
    if labels is None:
        raise ValueError("A class-conditional generator needs `labels` (int [N]).")
    if conditioning == "batchnorm":
        return z, num_classes
    if conditioning == "concat":
        return jnp.concatenate([z, jax.nn.one_hot(labels, num_classes, dtype=z.dtype)], -1), 0
    raise ValueError(f"conditioning={conditioning!r}: expected 'batchnorm' or 'concat'.")
