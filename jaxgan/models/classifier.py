"""Image classifiers as pure Flax functions: the evaluator's offline feature network, GAN-train/test.

A classifier maps images to `{"features": [N, D], "logits": [N, K]}`: `features` is the penultimate
layer (what a "domain FID", KID and precision/recall compare, as Inception's pool3 is for natural
images) and `logits` the class scores (accuracy, and the classifier's Inception Score).

Presets (`get(name, num_classes)` builds the module):
  mnist_cnn   a small CNN for 32x32 grayscale digits: 3 x [3x3 conv, ReLU, 2x2 max-pool]
              (16, 32, 64 channels; 32 -> 16 -> 8 -> 4), flatten (1,024), Dense 128 + ReLU (the
              features), Dense 10 (the logits); 155,786 parameters. Trained by
              `scripts/train_mnist_classifier.py` (recipe `mnist5k`) on the mnist5k train split and
              shipped as `jaxgan/assets/mnist_cnn.npz`: 98.00% on the mnist5k test split (1,000).
  resnet32    the pre-activation (v2) ResNet-32 of "How good is my GAN?" (gan_evaluation
              `classifier.py::CifarModel(resnet_size=32)` on `resnet_tf_models.py`): 3x3 conv
              16, three stages of 5 pre-activation blocks (16, 32, 64 channels, strides 1, 2, 2; the
              first block of every stage has a 1x1 projection shortcut), BN +
              ReLU, global average pool (the features, 64), Dense (the logits). BatchNorm keeps
              running statistics (decay 0.997, eps 1e-5), so its weights are a variables dict
              {"params", "batch_stats"}; 466,970 parameters (+ 2,272 BN statistics) for 10 classes.

How a classifier is trained (recipes, the step, augmentation) is `jaxgan/eval/classifier_training.py`.
Weights are "params": either the
`params` collection (models without state, e.g. mnist_cnn) or a variables dict {"params",
"batch_stats"} (resnet32); every function here takes both. They are stored as `.npz` of named
float32 arrays plus a format tag and a JSON info record (no pickle), written by `save_params` and
read back, shape-checked against the module, by `load_params`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import data
from jaxgan.core import npz_weights

FORMAT_TAG = "jaxgan/classifier/v1"


class MnistCNN(nn.Module):
    """Small CNN for grayscale digits (or, as emoji_cnn, RGB emoji). x: float32 [N, 32, 32, C] in
    [-1, 1].

    Returns {"features": [N, feature_dim] (post-ReLU), "logits": [N, num_classes]}.
    """

    widths: Sequence[int] = (16, 32, 64)
    feature_dim: int = 128
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        del train  # no dropout or BatchNorm: the same function in training and evaluation
        for i, width in enumerate(self.widths):
            x = nn.relu(nn.Conv(width, (3, 3), padding="SAME", name=f"Conv{i}")(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        features = nn.relu(nn.Dense(self.feature_dim, name="Features")(x))
        logits = nn.Dense(self.num_classes, name="Logits")(features)
        return {"features": features, "logits": logits}


# resnet_tf_models.py: `tf.variance_scaling_initializer()` convolutions without biases, BN decay
# 0.997 / eps 1e-5, `tf.layers.dense` (Glorot-uniform kernel, zero bias) for the logits.
_RESNET_CONV_INIT = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
_PAD_1 = ((1, 1), (1, 1))  # `conv2d_fixed_padding` of a 3x3 kernel, at stride 1 and 2 alike


class PreActBlock(nn.Module):
    """`building_block` of resnet_tf_models.py: BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3 + shortcut.

    The projection shortcut (1x1, stride) reads the first BN-ReLU's output, as the reference does.
    """

    filters: int
    stride: int
    projection: bool

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        norm = lambda name: nn.BatchNorm(
            use_running_average=not train, momentum=0.997, epsilon=1e-5, name=name
        )
        conv = lambda k, s, pad, name: nn.Conv(
            self.filters,
            (k, k),
            strides=(s, s),
            padding=pad,
            use_bias=False,
            kernel_init=_RESNET_CONV_INIT,
            name=name,
        )
        pre = nn.relu(norm("BN0")(x))
        shortcut = conv(1, self.stride, "VALID", "Projection")(pre) if self.projection else x
        y = conv(3, self.stride, _PAD_1, "Conv0")(pre)
        y = conv(3, 1, _PAD_1, "Conv1")(nn.relu(norm("BN1")(y)))
        return y + shortcut


class PreActResNet(nn.Module):
    """gan_evaluation's `CifarModel`: pre-activation ResNet-(6n+2) for 32x32 images.

    x: float32 [N, H, W, C] in [-1, 1]. Returns {"features": [N, 4 * width], "logits": [N, K]}.
    The reference's final 8x8 average pool is the global mean at 32x32; a global mean here lets
    64x64 inputs through too. `train=True` normalises with batch statistics and updates the
    running ones (apply with `mutable=["batch_stats"]`).
    """

    depth: int = 32
    width: int = 16
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
        if (self.depth - 2) % 6:
            raise ValueError(f"PreActResNet depth must be 6n + 2, got {self.depth}.")
        blocks = (self.depth - 2) // 6
        x = nn.Conv(
            self.width,
            (3, 3),
            padding=_PAD_1,
            use_bias=False,
            kernel_init=_RESNET_CONV_INIT,
            name="Input",
        )(x)
        for stage, stride in enumerate((1, 2, 2)):
            for block in range(blocks):
                x = PreActBlock(
                    self.width * 2**stage,
                    stride if block == 0 else 1,
                    projection=block == 0,  # `block_layer`: every stage's first block projects
                    name=f"Stage{stage}Block{block}",
                )(x, train)
        x = nn.BatchNorm(
            use_running_average=not train, momentum=0.997, epsilon=1e-5, name="FinalBN"
        )(x)
        features = jnp.mean(nn.relu(x), axis=(1, 2))
        logits = nn.Dense(
            self.num_classes, kernel_init=nn.initializers.glorot_uniform(), name="Logits"
        )(features)
        return {"features": features, "logits": logits}


PRESETS: dict[str, Callable[[int], nn.Module]] = {
    "mnist_cnn": lambda num_classes: MnistCNN(num_classes=num_classes),
    "resnet32": lambda num_classes: PreActResNet(depth=32, num_classes=num_classes),
}

# The input each preset was trained on: (height = width, channels).
INPUT_SHAPES: dict[str, tuple[int, int]] = {
    "mnist_cnn": (32, 1),
    "resnet32": (32, 3),
}


def get(name: str, num_classes: int = 10) -> nn.Module:
    if name not in PRESETS:
        raise ValueError(f"Unknown classifier {name!r}: expected one of {sorted(PRESETS)}.")
    return PRESETS[name](num_classes)


def as_variables(params) -> dict:
    """A `params` collection, or a variables dict {"params", ...}, as a variables dict."""
    return dict(params) if "params" in params else {"params": params}


def apply_uint8(model: nn.Module, params, images: jax.Array) -> dict[str, jax.Array]:
    """uint8 [N, H, W, C] -> {"features", "logits"}: the same x/127.5 - 1 as the GAN's reals.

    params: the `params` collection or a variables dict (evaluation mode: BN running statistics).
    """
    # to_float's key only drives its optional flip / dequantisation noise, both off here.
    return model.apply(as_variables(params), data.to_float(images, jax.random.key(0)))


def init_params(model: nn.Module, key: jax.Array, resolution: int, channels: int):
    """Flax's default initialisers; jitted (eager init compiles every op on its own: seconds).

    Returns the `params` collection for models without state, else the whole variables dict.
    """
    images = jnp.zeros((1, resolution, resolution, channels), jnp.float32)
    variables = jax.jit(model.init)(key, images)
    return variables["params"] if set(variables) == {"params"} else dict(variables)


# ----------------------------------------------------------------------------------------------
# Weights on disk.
# ----------------------------------------------------------------------------------------------


def flatten(params) -> dict[str, np.ndarray]:
    """Named float32 arrays: "Conv0/kernel" (a params collection), or "params/...",
    "batch_stats/..." (a variables dict)."""
    flat = npz_weights.flatten(jax.device_get(params))
    return {name: np.asarray(value, np.float32) for name, value in flat.items()}


def save_params(path: str | os.PathLike, params, info: Mapping[str, Any]) -> None:
    """Writes `params` as named float32 arrays ("Conv0/kernel", ...) plus the tag and `info` (JSON)."""
    npz_weights.save(path, flatten(params), FORMAT_TAG, info)


def expected_shapes(model: nn.Module, resolution: int, channels: int) -> dict[str, tuple]:
    """The flattened names and shapes `flatten(init_params(model, ...))` has (no compute)."""
    shapes = jax.eval_shape(lambda: init_params(model, jax.random.key(0), resolution, channels))
    return {k: tuple(v.shape) for k, v in npz_weights.flatten(shapes).items()}


def check_arrays(arrays: Mapping[str, np.ndarray], model: nn.Module, resolution, channels) -> list:
    """Names missing, unexpected or of the wrong shape for `model` (empty when they fit)."""
    missing, unexpected, wrong_shape = npz_weights.mismatches(
        arrays, expected_shapes(model, resolution, channels)
    )
    return sorted(missing + unexpected) + wrong_shape


def load_params(path: str | os.PathLike, model: nn.Module) -> tuple[Any, dict]:
    """Reads `save_params`' file for `model` -> (params, info); names and shapes must match."""
    arrays, info = npz_weights.load(path, FORMAT_TAG, "a jaxgan classifier file")
    resolution, channels = INPUT_SHAPES.get(info.get("preset"), (32, 1))
    channels = info.get("channels", channels)  # a preset trained on other input (emoji_cnn: RGB)
    wrong = check_arrays(arrays, model, resolution, channels)
    if wrong:
        raise ValueError(
            f"{path} does not match the {type(model).__name__} definition (mismatched: "
            f"{', '.join(wrong[:5])}). Re-create it with the script named in its info: "
            f"{info.get('command', 'scripts/train_mnist_classifier.py')}."
        )
    return npz_weights.unflatten(arrays), info
