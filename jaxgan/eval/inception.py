"""The FID Inception-v3 ("2015-12-05" TF graph) in Flax Linen: network, weights, converter, extractor.

This is the network behind FID, KID, IS and precision/recall. It follows
pytorch-fid's `fid_inception_v3` (mseitzer/pytorch-fid `src/pytorch_fid/inception.py`) and
torch-fidelity's `FeatureExtractorInceptionV3`, which both port the TF graph:

  * BatchNorm eps 1e-3 with stored running statistics (inference only); convs have no bias.
  * The 3x3/s1 average pools in Mixed_5b-5d, 6b-6e and 7b exclude padded zeros (TF avg_pool).
  * Mixed_7c's pool branch is a MAX pool (a quirk of the TF graph, kept for comparability).
  * Outputs: `pool3` [N, 2048] (global mean after Mixed_7c), `logits_unbiased` = pool3 @ W
    [N, 1008] (what the original IS code uses) and `logits` = that + b.

Input pipeline (torch-fidelity / TTUR "legacy_tensorflow" semantics):
uint8 NHWC (1 or 3 channels) -> float32 -> TF1 `resize_bilinear(align_corners=False)` to 299x299
(no half-pixel offset; `jax.image.resize` is a different convention) -> (x - 128) / 128.
Every conv and matmul runs at `Precision.HIGHEST` so GPUs do not drop to TF32.

Weights: the PyTorch port `pt_inception-2015-12-05-6726825d.pth` is converted once into our own
`.npz` (named float32 arrays, no pickle). `find_weights()` does it on first use: it downloads the
`.pth` into the cache folder, checks its SHA-256, converts it and deletes it (`download_weights`;
`JAXGAN_NO_DOWNLOAD=1` turns that off, `JAXGAN_INCEPTION_URL` points it elsewhere). By hand:

    python -m jaxgan.eval.inception convert --pth=pt_inception-2015-12-05-6726825d.pth

Either reads the `.pth` without torch (a restricted unpickler) and writes the file `find_weights()`
looks for. The port is checked against pytorch-fid itself by `tests/test_eval_inception.py` using
seeded random weights (`random_torch_state_dict`) and `scripts/make_inception_fixture.py`.

Throughput with random weights: `python -m jaxgan.bench --features=inception_v3`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import os
import pathlib
import pickle
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.core import batched, npz_weights, paths, run_files

FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth"
)
FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
# torch.hub convention: the suffix of the file name is the start of its SHA-256. torch-fidelity
# hosts weights-inception-2015-12-05-6726825d.pth with the same suffix (a third-party note gives
# its full SHA-256 as 6726825d0af5f729...9129b2), so that file is accepted too.
FID_WEIGHTS_SHA256_PREFIX = "6726825d"
WEIGHTS_ENV_VAR = "JAXGAN_INCEPTION_WEIGHTS"
URL_ENV_VAR = "JAXGAN_INCEPTION_URL"  # where to download the .pth from instead (a mirror, file://)
NO_DOWNLOAD_ENV_VAR = "JAXGAN_NO_DOWNLOAD"  # set (not 0): never download, say how to by hand
DOWNLOAD_TIMEOUT_S = 60  # per socket operation, not for the whole ~100 MB
WEIGHTS_FILENAME = "inception_v3_fid.npz"
CONVERT_COMMAND = f"python -m jaxgan.eval.inception convert --pth={FID_WEIGHTS_FILENAME}"
# Stored in every converted file so a wrong .npz is rejected with a clear message.
FORMAT_TAG = "jaxgan/inception_v3_fid/2015-12-05/v1"

INPUT_SIZE = 299
NUM_CLASSES = 1008  # the TF graph's legacy 1008-way softmax (openai/improved-gan#29)
BN_EPSILON = 1e-3  # TF's value; Flax's default 1e-5 would be wrong
FEATURE_NAMES = ("pool3", "logits_unbiased", "logits")
_HIGHEST = jax.lax.Precision.HIGHEST


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------


def _tf1_resize_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices (lo, hi) and lerp weights of TF1 resize_bilinear(align_corners=False), one axis.

    float32 arithmetic as in TF1's CPU kernel (`resize_bilinear_op.cc`, LegacyScaler) and
    torch-fidelity's `resample_manually`: src = dst * (in / out), no half-pixel offset; hi is
    clamped to the last row/column.
    """
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.arange(out_size, dtype=np.float32) * scale
    lo = np.floor(src).astype(np.int32)
    hi = np.minimum(lo + 1, in_size - 1).astype(np.int32)
    frac = (src - lo.astype(np.float32)).astype(np.float32)
    return lo, hi, frac


def resize_bilinear_tf1(images: jax.Array | np.ndarray, size: tuple[int, int]) -> jax.Array:
    """TF1 `tf.image.resize_bilinear(images, size, align_corners=False)` as an explicit gather.

    images: [N, H, W, C], any real dtype (cast to float32). size: (out_h, out_w), static.
    Returns [N, out_h, out_w, C] float32. Works under jit (the taps are static numpy arrays).
    The lerp order (x first, then y) is TF1's `compute_lerp`, so CPU results are bit-exact with
    torch-fidelity's `interpolate_bilinear_2d_like_tensorflow1x(method='slow')`.
    """
    x = jnp.asarray(images).astype(jnp.float32)
    if x.ndim != 4:
        raise ValueError(f"resize_bilinear_tf1: images must be [N, H, W, C], got shape {x.shape}")
    out_h, out_w = (int(s) for s in size)
    y_lo, y_hi, dy = _tf1_resize_taps(x.shape[1], out_h)
    x_lo, x_hi, dx = _tf1_resize_taps(x.shape[2], out_w)
    top, bottom = jnp.take(x, y_lo, axis=1), jnp.take(x, y_hi, axis=1)
    dx = jnp.asarray(dx)[None, None, :, None]
    dy = jnp.asarray(dy)[None, :, None, None]
    top_left, top_right = jnp.take(top, x_lo, axis=2), jnp.take(top, x_hi, axis=2)
    bottom_left, bottom_right = jnp.take(bottom, x_lo, axis=2), jnp.take(bottom, x_hi, axis=2)
    top = top_left + (top_right - top_left) * dx
    bottom = bottom_left + (bottom_right - bottom_left) * dx
    return top + (bottom - top) * dy


def preprocess(images: jax.Array | np.ndarray) -> jax.Array:
    """uint8 [N, H, W, C] (C = 1 or 3) -> float32 [N, 299, 299, 3] in [-1, 0.9921875].

    Resize first, then scale, as the TF graph does: grayscale is resized
    once and broadcast to 3 channels, which equals tiling first.
    """
    batched.check_uint8_images(images, "preprocess")
    return scale_resized(resize_bilinear_tf1(images, (INPUT_SIZE, INPUT_SIZE)))


def scale_resized(resized: jax.Array | np.ndarray) -> jax.Array:
    """float32 [N, 299, 299, C] in [0, 255] (C = 1 or 3) -> [N, 299, 299, 3] in [-1, 1).

    All of `preprocess` but the resize: grayscale tiled to RGB, then (x - 128) / 128. A
    `host_resize` of `make_feature_extractor` hands its output to this.
    """
    x = jnp.asarray(resized, jnp.float32)
    x = jnp.broadcast_to(x, x.shape[:3] + (3,))
    return (x - 128.0) / 128.0


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


def _pads(padding: int | tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return ((ph, ph), (pw, pw))


class BasicConv(nn.Module):
    """Conv (no bias) -> BatchNorm (running stats, eps 1e-3) -> ReLU: torch-fidelity `BasicConv2d`."""

    features: int
    kernel_size: tuple[int, int]
    strides: int = 1
    padding: int | tuple[int, int] = 0  # symmetric, per torch's `padding=`; TF's SAME at stride 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Conv(
            self.features,
            self.kernel_size,
            strides=(self.strides, self.strides),
            padding=_pads(self.padding),
            use_bias=False,
            precision=_HIGHEST,
            name="conv",
        )(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, name="bn")(x)
        return nn.relu(x)


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
    # TF's avg_pool divides by the number of real (unpadded) inputs: count_include_pad=False.
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_s2(x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class InceptionA(nn.Module):
    """Mixed_5b/5c/5d (pytorch-fid `FIDInceptionA`)."""

    pool_features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = BasicConv(64, (1, 1), name="branch1x1")(x)
        b5 = BasicConv(48, (1, 1), name="branch5x5_1")(x)
        b5 = BasicConv(64, (5, 5), padding=2, name="branch5x5_2")(b5)
        b3 = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
        b3 = BasicConv(96, (3, 3), padding=1, name="branch3x3dbl_2")(b3)
        b3 = BasicConv(96, (3, 3), padding=1, name="branch3x3dbl_3")(b3)
        bp = BasicConv(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    """Mixed_6a: grid reduction 35 -> 17."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = BasicConv(384, (3, 3), strides=2, name="branch3x3")(x)
        bd = BasicConv(64, (1, 1), name="branch3x3dbl_1")(x)
        bd = BasicConv(96, (3, 3), padding=1, name="branch3x3dbl_2")(bd)
        bd = BasicConv(96, (3, 3), strides=2, name="branch3x3dbl_3")(bd)
        return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
    """Mixed_6b-6e (pytorch-fid `FIDInceptionC`): factorised 7x7 convs."""

    channels_7x7: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c7 = self.channels_7x7
        b1 = BasicConv(192, (1, 1), name="branch1x1")(x)
        b7 = BasicConv(c7, (1, 1), name="branch7x7_1")(x)
        b7 = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = BasicConv(c7, (1, 1), name="branch7x7dbl_1")(x)
        bd = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = BasicConv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = BasicConv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        bp = BasicConv(192, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    """Mixed_7a: grid reduction 17 -> 8."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b3 = BasicConv(192, (1, 1), name="branch3x3_1")(x)
        b3 = BasicConv(320, (3, 3), strides=2, name="branch3x3_2")(b3)
        b7 = BasicConv(192, (1, 1), name="branch7x7x3_1")(x)
        b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = BasicConv(192, (3, 3), strides=2, name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
    """Mixed_7b (`FIDInceptionE_1`, average pool) and Mixed_7c (`FIDInceptionE_2`, MAX pool)."""

    pool: str  # "avg" | "max"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b1 = BasicConv(320, (1, 1), name="branch1x1")(x)
        b3 = BasicConv(384, (1, 1), name="branch3x3_1")(x)
        b3 = jnp.concatenate(
            [
                BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3),
            ],
            axis=-1,
        )
        bd = BasicConv(448, (1, 1), name="branch3x3dbl_1")(x)
        bd = BasicConv(384, (3, 3), padding=1, name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate(
            [
                BasicConv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                BasicConv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd),
            ],
            axis=-1,
        )
        if self.pool == "avg":
            pooled = _avg_pool_3x3(x)
        elif self.pool == "max":
            # pytorch-fid FIDInceptionE_2: the TF graph max-pools here ("likely an error" upstream).
            pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
        else:
            raise ValueError(f"InceptionE.pool must be 'avg' or 'max', got {self.pool!r}")
        bp = BasicConv(192, (1, 1), name="branch_pool")(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class Logits(nn.Module):
    """The 1008-way softmax layer, returning its input product with and without the bias."""

    num_classes: int = NUM_CLASSES

    @nn.compact
    def __call__(self, pool3: jax.Array) -> tuple[jax.Array, jax.Array]:
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (pool3.shape[-1], self.num_classes)
        )
        bias = self.param("bias", nn.initializers.zeros, (self.num_classes,))
        unbiased = jnp.dot(pool3, kernel, precision=_HIGHEST)
        return unbiased, unbiased + bias


class FIDInceptionV3(nn.Module):
    """FID Inception-v3. Input [N, 299, 299, 3] float32 in [-1, 1) (see `preprocess`).

    Returns {"pool3": [N, 2048], "logits_unbiased": [N, 1008], "logits": [N, 1008]}.
    Submodule names are pytorch-fid's state_dict names, so the weight mapping is mechanical.
    Variables: {"params": conv kernels (HWIO), BN scale/bias, fc kernel [2048, 1008]/bias;
    "batch_stats": BN running mean/var}.
    """

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        x = BasicConv(32, (3, 3), strides=2, name="Conv2d_1a_3x3")(x)  # 149
        x = BasicConv(32, (3, 3), name="Conv2d_2a_3x3")(x)  # 147
        x = BasicConv(64, (3, 3), padding=1, name="Conv2d_2b_3x3")(x)
        x = _max_pool_3x3_s2(x)  # 73
        x = BasicConv(80, (1, 1), name="Conv2d_3b_1x1")(x)
        x = BasicConv(192, (3, 3), name="Conv2d_4a_3x3")(x)  # 71
        x = _max_pool_3x3_s2(x)  # 35
        x = InceptionA(32, name="Mixed_5b")(x)
        x = InceptionA(64, name="Mixed_5c")(x)
        x = InceptionA(64, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)  # 17
        x = InceptionC(128, name="Mixed_6b")(x)
        x = InceptionC(160, name="Mixed_6c")(x)
        x = InceptionC(160, name="Mixed_6d")(x)
        x = InceptionC(192, name="Mixed_6e")(x)
        x = InceptionD(name="Mixed_7a")(x)  # 8
        x = InceptionE("avg", name="Mixed_7b")(x)
        x = InceptionE("max", name="Mixed_7c")(x)
        pool3 = jnp.mean(x, axis=(1, 2))
        logits_unbiased, logits = Logits(name="fc")(pool3)
        return {"pool3": pool3, "logits_unbiased": logits_unbiased, "logits": logits}


def inception_features(variables: Mapping[str, Any], images: jax.Array) -> dict[str, jax.Array]:
    """uint8 images [N, H, W, C] -> {"pool3", "logits_unbiased", "logits"} float32 (jit-able)."""
    return FIDInceptionV3().apply(variables, preprocess(images))


# --------------------------------------------------------------------------------------------
# Variables: shapes, pytorch-fid name mapping, seeded random weights, our .npz format
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _variable_shapes() -> tuple[tuple[str, tuple[int, ...]], ...]:
    abstract = jax.eval_shape(
        lambda: FIDInceptionV3().init(
            jax.random.key(0), jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32)
        )
    )
    return tuple((path, tuple(leaf.shape)) for path, leaf in npz_weights.flatten(abstract).items())


def variable_shapes() -> dict[str, tuple[int, ...]]:
    """Flat {"params/Mixed_5b/branch1x1/conv/kernel": shape, ...} of `FIDInceptionV3` (traced, not run)."""
    return dict(_variable_shapes())


def _check_shapes(
    arrays: Mapping[str, np.ndarray], expected: Mapping[str, tuple[int, ...]], source: str
) -> None:
    """Raise ValueError naming missing, unexpected and misshapen tensors."""
    missing, unexpected, wrong_shape = npz_weights.mismatches(arrays, expected)
    wrong = [f"{k}: {tuple(arrays[k].shape)} != {expected[k]}" for k in wrong_shape]
    if missing or unexpected or wrong:

        def show(items: list[str]) -> str:
            return ", ".join(items[:5]) + (f" ... ({len(items)} in all)" if len(items) > 5 else "")

        problems = [
            f"{what} {show(items)}"
            for what, items in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("wrong shapes", wrong),
            )
            if items
        ]
        raise ValueError(
            f"{source} does not hold the FID Inception-v3 weights: {'; '.join(problems)}. "
            f"Convert pytorch-fid's {FID_WEIGHTS_FILENAME} with `{CONVERT_COMMAND}`."
        )


# (last module name, torch leaf) -> (collection, our leaf, layout change torch -> ours)
_TORCH_TO_OURS: dict[tuple[str, str], tuple[str, str, Callable[[np.ndarray], np.ndarray]]] = {
    ("conv", "weight"): ("params", "kernel", lambda w: w.transpose(2, 3, 1, 0)),  # OIHW -> HWIO
    ("bn", "weight"): ("params", "scale", lambda w: w),
    ("bn", "bias"): ("params", "bias", lambda w: w),
    ("bn", "running_mean"): ("batch_stats", "mean", lambda w: w),
    ("bn", "running_var"): ("batch_stats", "var", lambda w: w),
    ("fc", "weight"): ("params", "kernel", lambda w: w.T),  # [out, in] -> [in, out]
    ("fc", "bias"): ("params", "bias", lambda w: w),
}
_OURS_TO_TORCH = {
    (module, col, leaf): torch_leaf
    for (module, torch_leaf), (col, leaf, _) in _TORCH_TO_OURS.items()
}


def params_from_torch_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """pytorch-fid `fid_inception_v3().state_dict()` as numpy arrays -> our Flax variables.

    Names map mechanically: `Mixed_5b.branch1x1.conv.weight` -> params/Mixed_5b/branch1x1/conv/kernel
    (OIHW -> HWIO), `.bn.weight/.bn.bias` -> params .../bn/scale, bias, `.bn.running_mean/var` ->
    batch_stats .../bn/mean, var, `fc.weight` -> params/fc/kernel (transposed). BN's
    `num_batches_tracked` is dropped. Missing, unknown or misshapen tensors raise ValueError
    (in pytorch-fid's names and layouts). Returns {"params": ..., "batch_stats": ...} of float32
    numpy arrays.
    """
    arrays = {
        k: np.asarray(v) for k, v in state_dict.items() if not k.endswith(".num_batches_tracked")
    }
    _check_shapes(arrays, torch_state_dict_shapes(), "state_dict")
    flat = {}
    for name, array in arrays.items():
        module_path, _, leaf = name.rpartition(".")
        collection, our_leaf, layout = _TORCH_TO_OURS[(module_path.rpartition(".")[2], leaf)]
        path = f"{collection}/{module_path.replace('.', '/')}/{our_leaf}"
        flat[path] = np.ascontiguousarray(layout(array.astype(np.float32)))
    return npz_weights.unflatten(flat)


def torch_state_dict_shapes() -> dict[str, tuple[int, ...]]:
    """pytorch-fid state_dict names and shapes (without `num_batches_tracked`), sorted by name."""
    shapes = {}
    for path, shape in variable_shapes().items():
        collection, *modules, leaf = path.split("/")
        torch_leaf = _OURS_TO_TORCH[(modules[-1], collection, leaf)]
        if len(shape) == 4:
            shape = (shape[3], shape[2], shape[0], shape[1])  # HWIO -> OIHW
        elif len(shape) == 2:
            shape = shape[::-1]
        shapes[".".join(modules) + "." + torch_leaf] = shape
    return dict(sorted(shapes.items()))


def random_torch_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random pytorch-fid state_dict (float32 numpy), a pure function of `seed`.

    Tensors are drawn from one `np.random.RandomState(seed)` in sorted-name order, with scales
    that keep activations O(1) through all 94 conv layers: He-normal conv weights
    (std sqrt(2 / fan_in)), BN gamma ~ U(0.8, 1.2), beta ~ N(0, 0.1), running mean ~ N(0, 0.1),
    running var ~ U(0.5, 1.5), fc weight ~ N(0, 1/2048), fc bias ~ N(0, 0.1). The test and
    `scripts/make_inception_fixture.py` both call this, so the ~95 MB of weights are never stored.
    """
    rng = np.random.RandomState(seed)
    state_dict = {}
    for name, shape in torch_state_dict_shapes().items():
        kind = name.rsplit(".", 2)[-2:]
        if kind[1] == "weight" and len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif kind == ["fc", "weight"]:
            value = rng.standard_normal(shape) / np.sqrt(shape[1])
        elif kind[1] == "weight":
            value = rng.uniform(0.8, 1.2, shape)
        elif kind[1] in ("bias", "running_mean"):
            value = rng.standard_normal(shape) * 0.1
        elif kind[1] == "running_var":
            value = rng.uniform(0.5, 1.5, shape)
        else:
            raise AssertionError(name)
        state_dict[name] = value.astype(np.float32)
    return state_dict


def random_params(seed: int = 0) -> dict[str, Any]:
    """Random-init variables of the right shapes (for benchmarks and tests; not meaningful features)."""
    return params_from_torch_state_dict(random_torch_state_dict(seed))


def save_params(
    variables: Mapping[str, Any], path: str | os.PathLike, source_sha256: str = ""
) -> pathlib.Path:
    """Write variables as our `.npz` (named float32 arrays + format tag); atomic replace."""
    flat = {k: np.asarray(v, dtype=np.float32) for k, v in npz_weights.flatten(variables).items()}
    _check_shapes(flat, variable_shapes(), "variables")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    npz_weights.save(path, flat, FORMAT_TAG, records={"source_sha256": source_sha256})
    return path


def weights_source_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of the `.pth` the converted weights at `path` were made from (`convert_pth` records
    it): the weights' identity across machines. That of `path` itself where none is recorded
    (variables written by `save_params` directly, e.g. random weights)."""
    with np.load(path, allow_pickle=False) as stored:
        recorded = str(stored["__source_sha256__"]) if "__source_sha256__" in stored.files else ""
    return recorded or sha256_of_file(path)


def load_params(path: str | os.PathLike) -> dict[str, Any]:
    """Read our `.npz` -> {"params": ..., "batch_stats": ...} float32 numpy arrays (no pickle)."""
    path = pathlib.Path(path)
    flat, _ = npz_weights.load(
        path,
        FORMAT_TAG,
        "a jaxgan FID Inception weights file",
        f" Create one with `{CONVERT_COMMAND}`.",
    )
    _check_shapes(flat, variable_shapes(), str(path))
    return npz_weights.unflatten(flat)


# --------------------------------------------------------------------------------------------
# Finding the weights (fast where they are there; downloaded once where they are not)
# --------------------------------------------------------------------------------------------


class InceptionWeightsNotFoundError(FileNotFoundError):
    """The converted FID Inception weights are not where we looked, and could not be downloaded."""


def default_weights_path() -> pathlib.Path:
    """$XDG_CACHE_HOME/jaxgan/inception_v3_fid.npz, else ~/.cache/jaxgan/inception_v3_fid.npz."""
    return pathlib.Path(paths.cache_dir()) / WEIGHTS_FILENAME


def weights_url() -> str:
    """Where `download_weights` fetches the `.pth`: $JAXGAN_INCEPTION_URL, else FID_WEIGHTS_URL."""
    return os.environ.get(URL_ENV_VAR) or FID_WEIGHTS_URL


def downloads_disabled() -> bool:
    """$JAXGAN_NO_DOWNLOAD is set to anything but "" or "0": machines without network, CI."""
    return os.environ.get(NO_DOWNLOAD_ENV_VAR, "").strip() not in ("", "0")


def _missing_weights_message(looked: Sequence[str], why: str = "") -> str:
    why = f"{why}\n" if why else ""
    return (
        f"FID Inception-v3 weights not found; looked at: {'; '.join(looked)}.\n{why}"
        "Download the PyTorch FID weights and convert them once (no torch needed):\n"
        f"  wget {FID_WEIGHTS_URL}\n"
        f"  {CONVERT_COMMAND}\n"
        f"This writes {default_weights_path()} (add --out=PATH to write elsewhere, then pass that "
        f"path or set {WEIGHTS_ENV_VAR}=PATH)."
    )


def find_weights(explicit_path: str | os.PathLike | None = None) -> pathlib.Path:
    """Path of the converted weights: `explicit_path`, else $JAXGAN_INCEPTION_WEIGHTS, else the cache.

    A path that was given (argument or env var) but does not exist is an error rather than
    silently falling back to another file. Where the cache has none, they are downloaded and
    converted into it once (`download_weights`), unless $JAXGAN_NO_DOWNLOAD is set. Raises
    InceptionWeightsNotFoundError naming the download URL and the conversion command. Where
    the weights are there, only stats files: returns in milliseconds.
    """
    if explicit_path is not None:
        candidates = [(pathlib.Path(explicit_path), "explicit path")]
    elif os.environ.get(WEIGHTS_ENV_VAR):
        candidates = [(pathlib.Path(os.environ[WEIGHTS_ENV_VAR]), f"${WEIGHTS_ENV_VAR}")]
    else:
        candidates = [(default_weights_path(), "cache")]
    for path, _ in candidates:
        if path.is_file():
            return path
    looked = [f"{p} ({why})" for p, why in candidates]
    if candidates[0][1] != "cache":  # a path that was asked for is not replaced by a download
        raise InceptionWeightsNotFoundError(_missing_weights_message(looked))
    if downloads_disabled():
        why = f"${NO_DOWNLOAD_ENV_VAR} is set, so they were not downloaded."
        raise InceptionWeightsNotFoundError(_missing_weights_message(looked, why))
    return download_weights()


def download_weights(
    out_path: str | os.PathLike | None = None,
    url: str | None = None,
    expected_prefix: str | None = None,
) -> pathlib.Path:
    """Downloads pytorch-fid's `.pth` and converts it into our `.npz`; returns the `.npz` path.

    url: default `weights_url()`. out_path: default `default_weights_path()`; the `.pth` goes to a
    temporary file beside it, is checked (its SHA-256 must start with `expected_prefix`, default
    FID_WEIGHTS_SHA256_PREFIX), converted (`convert_pth`) and deleted. Any failure (no network,
    a wrong file) raises InceptionWeightsNotFoundError naming the URL and the manual route.
    """
    url = url or weights_url()
    out = pathlib.Path(out_path or default_weights_path())

    def failed(why: str) -> InceptionWeightsNotFoundError:
        return InceptionWeightsNotFoundError(_missing_weights_message([f"{out} (cache)"], why))

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".download-", suffix=".pth", dir=out.parent)
        os.close(fd)
    except OSError as e:
        raise failed(f"They cannot be downloaded into {out.parent}: {e}.") from None
    try:
        print(f"Downloading the FID Inception-v3 weights (once) from {url}", file=sys.stderr)
        try:
            _fetch(url, tmp)
        except (OSError, ValueError) as e:  # URLError and timeouts are OSErrors; a bad URL: Value
            raise failed(f"Downloading them from {url} failed: {_reason(e)}.") from None
        try:
            convert_pth(tmp, out, expected_prefix=expected_prefix)
        except (OSError, ValueError, pickle.UnpicklingError) as e:
            raise failed(f"The file downloaded from {url} is not the FID weights: {e}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
    print(f"Converted them into {out}", file=sys.stderr)
    return out


def _reason(error: Exception) -> str:
    """A download error in words ("[Errno -2] Name or service not known", "HTTP Error 404: ...")."""
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        return str(error.reason)
    return str(error)


def _fetch(url: str, path: str) -> None:
    """Copies `url` to `path` in 1 MiB blocks, with a progress bar where the size is known."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(path, "wb") as f:
        size = int(response.headers.get("Content-Length") or 0)
        bar = run_files.progress_bar(size, unit="B", desc="inception weights") if size else None
        if bar is not None:
            bar.unit_scale, bar.unit_divisor = True, 1024  # MiB, not a count of bytes
        received = 0
        try:
            for block in iter(lambda: response.read(1 << 20), b""):
                f.write(block)
                received += len(block)
                if bar is not None:
                    bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
    if size and received != size:
        raise OSError(f"the connection closed after {received:,} of {size:,} bytes")


# --------------------------------------------------------------------------------------------
# Reading a torch .pth without torch
# --------------------------------------------------------------------------------------------

# torch.save's typed-storage classes -> numpy dtypes (pickled as globals `torch.FloatStorage`, ...).
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch/serialization.py MAGIC_NUMBER
_LEGACY_PROTOCOL_VERSION = 1001


class _StorageType:
    def __init__(self, name: str):
        self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage referenced by the pickle; `data` is filled in from the archive."""

    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.data: np.ndarray | None = None


class _LazyTensor:
    def __init__(self, storage: _Storage, offset: int, size: Sequence[int], stride: Sequence[int]):
        self.storage, self.offset, self.size, self.stride = (
            storage,
            int(offset),
            tuple(size),
            tuple(stride),
        )

    def materialize(self) -> np.ndarray:
        data = self.storage.data
        assert data is not None
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if self.offset < 0 or last >= data.size or any(s < 0 for s in self.stride):
            raise ValueError(
                f"corrupt .pth: tensor of size {self.size}, stride {self.stride}, offset "
                f"{self.offset} does not fit its storage of {data.size} elements"
            )
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=[s * data.itemsize for s in self.stride]
        )
        return np.array(view)


def _rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None
):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles torch.save output, allowing only containers, tensors and storages.

    Anything else (a module, a function, an arbitrary class) is refused, so reading a
    downloaded file cannot run code.
    """

    _ALLOWED = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file, source: str, storages: dict[str, _Storage]):
        super().__init__(file)
        self.source, self.storages = source, storages

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"{self.source}: refusing to unpickle {module}.{name}; only a state_dict of tensors "
            "(float/int storages, OrderedDict) can be read. Re-save it with "
            "torch.save(model.state_dict(), path)."
        )

    def persistent_load(self, pid):
        # ("storage", storage_type, key, location, numel[, view_metadata (legacy format)])
        if not (isinstance(pid, tuple) and pid and pid[0] in ("storage", b"storage")):
            raise pickle.UnpicklingError(f"{self.source}: unsupported persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError(f"{self.source}: storage views are not supported")
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(
                f"{self.source}: unsupported storage type {storage_type!r}"
            )
        key = key.decode() if isinstance(key, bytes) else str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(key, storage_type.dtype, int(numel))
        return self.storages[key]


def _resolve(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.materialize()
    if isinstance(obj, Mapping):
        return OrderedDict((k, _resolve(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def _read_zip_pth(path: pathlib.Path) -> Any:
    """torch >= 1.6 format: <prefix>/data.pkl + <prefix>/data/<key> raw storages."""
    with zipfile.ZipFile(path) as archive:
        pkl_names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl_names) != 1:
            raise ValueError(
                f"{path}: not a torch.save archive (found {pkl_names or 'no'} data.pkl)"
            )
        prefix = pkl_names[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in archive.namelist():
            byteorder = archive.read(prefix + "byteorder").decode().strip()
        storages: dict[str, _Storage] = {}
        with archive.open(pkl_names[0]) as f:
            obj = _RestrictedUnpickler(f, str(path), storages).load()
        for storage in storages.values():
            dtype = storage.dtype.newbyteorder("<" if byteorder == "little" else ">")
            raw = archive.read(f"{prefix}data/{storage.key}")
            storage.data = np.frombuffer(raw, dtype=dtype, count=storage.numel).astype(
                storage.dtype
            )
    return obj


def _read_legacy_pth(path: pathlib.Path) -> Any:
    """torch < 1.6 format: pickles (magic, version, sys_info, object, storage keys), then for each
    storage key in that order an int64 element count and the raw bytes."""
    storages: dict[str, _Storage] = {}
    with open(path, "rb") as f:

        def load() -> Any:
            return _RestrictedUnpickler(f, str(path), storages).load()

        try:
            magic = load()
        except Exception as e:  # noqa: BLE001 - any parse failure means "not this format"
            raise ValueError(f"{path}: not a torch.save file ({type(e).__name__}: {e})") from None
        if magic != _LEGACY_MAGIC_NUMBER:
            raise ValueError(f"{path}: not a torch.save file (bad magic number)")
        if load() != _LEGACY_PROTOCOL_VERSION:
            raise ValueError(f"{path}: unsupported legacy torch.save protocol version")
        sys_info = load()
        endian = "<" if sys_info.get("little_endian", True) else ">"
        obj = load()
        keys = load()
        for key in keys:
            storage = storages[str(key)]
            numel = int(np.frombuffer(f.read(8), dtype=endian + "i8")[0])
            if numel != storage.numel:
                raise ValueError(
                    f"{path}: storage {key} has {numel} elements, expected {storage.numel}"
                )
            raw = f.read(numel * storage.dtype.itemsize)
            if len(raw) != numel * storage.dtype.itemsize:
                raise ValueError(f"{path}: truncated file (storage {key})")
            storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder(endian)).astype(
                storage.dtype
            )
    return obj


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a `torch.save`d state_dict (zip or legacy format) into numpy arrays, without torch.

    Only tensors and plain containers are unpickled (see `_RestrictedUnpickler`); strides and
    storage offsets are honoured, so views and transposed tensors read correctly.
    """
    path = pathlib.Path(path)
    obj = _read_zip_pth(path) if zipfile.is_zipfile(path) else _read_legacy_pth(path)
    state_dict = _resolve(obj)
    if not isinstance(state_dict, Mapping):
        raise ValueError(
            f"{path}: expected a state_dict (a mapping of names to tensors), got {type(state_dict).__name__}"
        )
    return OrderedDict(state_dict)


# --------------------------------------------------------------------------------------------
# Converter: .pth -> our .npz
# --------------------------------------------------------------------------------------------


def sha256_of_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: str | os.PathLike, expected_prefix: str = FID_WEIGHTS_SHA256_PREFIX) -> str:
    """Return the file's SHA-256; raise ValueError if it does not start with `expected_prefix`."""
    digest = sha256_of_file(path)
    if not digest.startswith(expected_prefix.lower()):
        raise ValueError(
            f"{path}: SHA-256 {digest} does not start with {expected_prefix}, so it is not "
            f"{FID_WEIGHTS_FILENAME} (download it again from {FID_WEIGHTS_URL}). FID values from "
            "other weights are not comparable; pass --allow_hash_mismatch only if you know the "
            "file holds the same tensors (e.g. re-saved by another torch version)."
        )
    return digest


def convert_pth(
    pth_path: str | os.PathLike,
    out_path: str | os.PathLike | None = None,
    allow_hash_mismatch: bool = False,
    expected_prefix: str | None = None,
) -> pathlib.Path:
    """pytorch-fid `.pth` -> our `.npz` (default: `default_weights_path()`). Returns the written path.

    expected_prefix: what the `.pth`'s SHA-256 must start with (default FID_WEIGHTS_SHA256_PREFIX).
    """
    try:
        digest = check_sha256(pth_path, expected_prefix or FID_WEIGHTS_SHA256_PREFIX)
    except ValueError as e:
        if not allow_hash_mismatch:
            raise
        print(f"warning: {e}", file=sys.stderr)
        digest = sha256_of_file(pth_path)
    variables = params_from_torch_state_dict(read_torch_state_dict(pth_path))
    return save_params(variables, out_path or default_weights_path(), source_sha256=digest)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jaxgan.eval.inception", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser(
        "convert", help="convert pytorch-fid's .pth into our .npz (torch not needed)"
    )
    convert.add_argument(
        "--pth", required=True, help=f"path to {FID_WEIGHTS_FILENAME} ({FID_WEIGHTS_URL})"
    )
    convert.add_argument(
        "--out", default=None, help=f"output .npz (default {default_weights_path()})"
    )
    convert.add_argument(
        "--allow_hash_mismatch",
        action="store_true",
        help="convert even if the SHA-256 is not 6726825d...",
    )
    args = parser.parse_args(argv)
    try:
        out = convert_pth(args.pth, args.out, args.allow_hash_mismatch)
    except (OSError, ValueError, pickle.UnpicklingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------------------------
# Feature extraction
# --------------------------------------------------------------------------------------------

# Two jits: the resize depends on the input size, the network only on the batch size, so a
# new image size costs a cheap recompile of the resize, not of Inception. Both follow the
# shardings of their inputs, so the same functions run on one device or a whole mesh.
_preprocess_jit = jax.jit(preprocess)
_scale_resized_jit = jax.jit(scale_resized)
_network_jit = jax.jit(lambda variables, x: FIDInceptionV3().apply(variables, x))


def _checked_host_resize(
    host_resize: Callable[[np.ndarray], np.ndarray],
) -> Callable[[np.ndarray], np.ndarray]:
    """`host_resize` with its output checked: float32 [B, 299, 299, C], C = 1 or 3, values 0-255."""

    def resize(batch: np.ndarray) -> np.ndarray:
        resized = np.asarray(host_resize(batch), np.float32)
        expected = (len(batch), INPUT_SIZE, INPUT_SIZE)
        if resized.ndim != 4 or resized.shape[:3] != expected or resized.shape[-1] not in (1, 3):
            raise ValueError(
                f"host_resize mapped a batch {batch.shape} to {resized.shape}; it must return "
                f"float32 [{len(batch)}, {INPUT_SIZE}, {INPUT_SIZE}, 3] with values in [0, 255]."
            )
        return resized

    return resize


def make_feature_extractor(
    variables: Mapping[str, Any],
    batch_size: int = 50,
    *,
    dtype: Any = np.float32,
    progress: bool = False,
    host_resize: Callable[[np.ndarray], np.ndarray] | None = None,
    mesh: jax.sharding.Mesh | None = None,
) -> Callable[..., dict[str, np.ndarray]]:
    """Returns `extract(images, total=None) -> {"pool3": [N, 2048], "logits_unbiased", "logits"}`.

    images: uint8 [N, H, W, C] (C = 1 or 3), or an iterable of such arrays (all the same H, W, C;
    any chunk sizes; pass `total` for the progress bar). Outputs are numpy arrays of `dtype`
    (float32 or float64), in input order. Batches of `batch_size` rounded up to a multiple of the
    devices are sharded over `mesh` (default: all devices, `parallel.make_mesh()`), the weights
    replicated; see `core/batched.make_sharded_map` (also safe inside a caller's `jax.set_mesh`).

    host_resize: None for the TF1 bilinear resize of `preprocess`, on the devices. Otherwise a
    host function from each uint8 batch [B, H, W, C] to float32 [B, 299, 299, 3] in [0, 255]
    (e.g. clean-fid's PIL bicubic); the network then only scales it (`scale_resized`).
    """
    if host_resize is None:
        apply = lambda v, x: _network_jit(v, _preprocess_jit(x))
    else:
        apply = lambda v, x: _network_jit(v, _scale_resized_jit(x))
    return batched.make_sharded_map(
        apply,
        variables,
        batch_size,
        FEATURE_NAMES,
        mesh=mesh,
        host_prepare=None if host_resize is None else _checked_host_resize(host_resize),
        dtype=dtype,
        progress="inception features" if progress else None,
    )


if __name__ == "__main__":
    sys.exit(main())
