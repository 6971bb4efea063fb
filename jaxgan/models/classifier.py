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
              `classifier.py::CifarModel(resnet_size=32)` on `resnet_tf_models.py`, specs/metrics.md
              §8.1): 3x3 conv 16, three stages of 5 pre-activation blocks (16, 32, 64 channels,
              strides 1, 2, 2; the first block of every stage has a 1x1 projection shortcut), BN +
              ReLU, global average pool (the features, 64), Dense (the logits). BatchNorm keeps
              running statistics (decay 0.997, eps 1e-5), so its weights are a variables dict
              {"params", "batch_stats"}; 466,970 parameters (+ 2,272 BN statistics) for 10 classes.

Recipes (`RECIPES[name]`, how a classifier is trained; GAN-train, the real baseline, the diversity
and augmentation experiments all use one, `train_classifier(images, labels, recipe, ...)`):
  mnist5k     mnist_cnn, AdamW(1e-3, weight decay 1e-4) with cosine decay, batch 64, 1,250 steps
              (20 epochs of the 4,000 train digits), random +-2 px translations: the shipped file's.
  cifar10     resnet32, SGD momentum 0.9, batch 128, lr 0.1 -> x0.1 after step 32,031 -> x0.01
              after 48,046 (gan_evaluation's epochs 82 and 123 of 50,000 images at batch 128),
              64,000 steps, L2 2e-4 * sum(v^2)/2 over all variables (BN's too, as its
              `loss_filter_fn`), random flip + pad-4 random crop, dequantised inputs
              (x + U(0, 1))/128 - 1 while training (evaluation: x/127.5 - 1; the reference's is
              x/128 - 1).

Training is `make_train_step(model, tx, augment, weight_decay, dequantize)`: one pure, jit-able step
of softmax cross-entropy (`losses.classification`); augmentation is a function of a key and a uint8
batch (`random_translate` is pad-and-crop, `random_flip` a mirror). Weights are "params": either the
`params` collection (models without state, e.g. mnist_cnn) or a variables dict {"params",
"batch_stats"} (resnet32); every function here takes both. They are stored as `.npz` of named
float32 arrays plus a format tag and a JSON info record (no pickle), written by `save_params` and
read back, shape-checked against the module, by `load_params`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from jaxgan import data, losses

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


def _as_variables(params) -> dict:
    """A `params` collection, or a variables dict {"params", ...}, as a variables dict."""
    return dict(params) if "params" in params else {"params": params}


def apply_uint8(model: nn.Module, params, images: jax.Array) -> dict[str, jax.Array]:
    """uint8 [N, H, W, C] -> {"features", "logits"}: the same x/127.5 - 1 as the GAN's reals.

    params: the `params` collection or a variables dict (evaluation mode: BN running statistics).
    """
    # to_float's key only drives its optional flip / dequantisation noise, both off here.
    return model.apply(_as_variables(params), data.to_float(images, jax.random.key(0)))


def init_params(model: nn.Module, key: jax.Array, resolution: int, channels: int):
    """Flax's default initialisers; jitted (eager init compiles every op on its own: seconds).

    Returns the `params` collection for models without state, else the whole variables dict.
    """
    images = jnp.zeros((1, resolution, resolution, channels), jnp.float32)
    variables = jax.jit(model.init)(key, images)
    return variables["params"] if set(variables) == {"params"} else dict(variables)


# ----------------------------------------------------------------------------------------------
# Training.
# ----------------------------------------------------------------------------------------------


def random_translate(key: jax.Array, images: jax.Array, pad: int) -> jax.Array:
    """Pad-and-crop: each uint8 image [N, H, W, C] shifted by up to `pad` px, zeros shifted in.

    For MNIST (a black background) this is a translation; it is also the "pad 4, random crop 32"
    of the CIFAR ResNet recipe (specs/metrics.md §8.1).
    """
    n, h, w, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    offsets = jax.random.randint(key, (n, 2), 0, 2 * pad + 1)
    crop = lambda image, o: jax.lax.dynamic_slice(image, (o[0], o[1], 0), (h, w, image.shape[-1]))
    return jax.vmap(crop)(padded, offsets)


def random_flip(key: jax.Array, images: jax.Array) -> jax.Array:
    """Each image [N, H, W, C] mirrored along W with probability 1/2 (`random_flip_left_right`)."""
    mirrored = jax.random.bernoulli(key, 0.5, (images.shape[0], 1, 1, 1))
    return jnp.where(mirrored, images[:, :, ::-1, :], images)


def l2_penalty(params) -> jax.Array:
    """sum over all arrays of sum(v^2) / 2: TF's `tf.nn.l2_loss`, summed as resnet_model_fn does."""
    return 0.5 * sum(jnp.sum(jnp.square(p)) for p in jax.tree.leaves(params))


def make_train_step(
    model: nn.Module,
    tx: optax.GradientTransformation,
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    weight_decay: float = 0.0,
    dequantize: bool = False,
):
    """`train_step(params, opt_state, images, labels, key) -> (params, opt_state, metrics)`.

    params: the `params` collection, or a variables dict whose other collections (BN statistics)
    are updated by the step; `tx` optimises `params` alone (init it with `trainable(params)`).
    images: uint8 [B, H, W, C]; labels: int32 [B]. Pure (wrap it in `jax.jit`); metrics are the
    batch's `loss` (mean softmax cross-entropy, without the L2 term) and `accuracy`, before the
    update. weight_decay: the coefficient of `l2_penalty` added to the loss (0: no term at all).
    dequantize: inputs (x + U(0, 1))/128 - 1 (gan_evaluation's training loader), else x/127.5 - 1.
    """

    def loss_fn(trainable_params, state, images, labels, noise_key):
        x = data.to_float(images, noise_key, dequantize=dequantize)
        variables = {"params": trainable_params, **state}
        if state:
            outputs, state = model.apply(variables, x, train=True, mutable=list(state))
        else:
            outputs = model.apply(variables, x, train=True)
        cross_entropy = losses.classification(outputs["logits"], labels)
        total = cross_entropy
        if weight_decay:
            total = total + weight_decay * l2_penalty(trainable_params)
        return total, (cross_entropy, outputs["logits"], state)

    def train_step(params, opt_state, images, labels, key):
        variables = _as_variables(params)
        state = {k: v for k, v in variables.items() if k != "params"}
        # The key drives the augmentation unchanged (so mnist_cnn's shipped training is what it
        # was); dequantisation noise takes a key split off it.
        noise_key = jax.random.key(0)
        if dequantize:
            key, noise_key = jax.random.split(key)
        if augment is not None:
            images = augment(key, images)
        grads, (loss, logits, state) = jax.grad(loss_fn, has_aux=True)(
            variables["params"], state, images, labels, noise_key
        )
        updates, opt_state = tx.update(grads, opt_state, variables["params"])
        new_params = optax.apply_updates(variables["params"], updates)
        accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == labels)
        new = {"params": new_params, **state} if "params" in params else new_params
        return new, opt_state, {"loss": loss, "accuracy": accuracy}

    return train_step


def trainable(params):
    """The `params` collection of either form of weights (what the optimiser updates)."""
    return _as_variables(params)["params"]


def make_predictor(
    model: nn.Module, params, batch_size: int = 500, *, mesh: jax.sharding.Mesh | None = None
):
    """`predict(images) -> {"features": [N, D], "logits": [N, K]}` float32 numpy, in input order.

    images: uint8 [N, H, W, C], or an iterable of such chunks. Batches have one fixed shape,
    `batch_size` rounded up to a multiple of the devices (the last one zero-padded, the padding
    dropped), so one compile serves any N; each is sharded over `mesh` (default: all devices),
    the weights replicated (`inception.make_sharded_map`, the evaluator's one batch loop).
    """
    from jaxgan.eval.inception import make_sharded_map

    apply = jax.jit(lambda p, x: apply_uint8(model, p, x))  # params as an argument, not constants
    return make_sharded_map(
        apply, params, batch_size, ("features", "logits"), mesh=mesh, where="classifier"
    )


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of logits [N, K] against integer labels [N]."""
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(labels)))


# ----------------------------------------------------------------------------------------------
# Recipes: how a classifier is trained, written once for GAN-train, baselines and the script.
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A classifier's training recipe (see the module docstring for the two presets).

    schedule: 'cosine' (optax cosine decay to 0 over the steps) or 'piecewise' (TF's
    `piecewise_constant`: lr * scales[i] once the step count exceeds boundaries[i]; the boundaries
    scale with the number of steps when a run overrides it). optimizer: 'adamw' (decoupled
    weight decay) or 'momentum' (SGD; weight decay is the L2 term of `l2_penalty` in the loss).
    """

    model: str
    steps: int
    batch_size: int
    optimizer: str
    learning_rate: float
    weight_decay: float
    schedule: str
    boundaries: tuple[int, ...] = ()
    scales: tuple[float, ...] = ()
    momentum: float = 0.9
    translate: int = 0  # pad-and-crop by up to this many pixels
    flip: bool = False
    dequantize: bool = False

    def asdict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


RECIPES: dict[str, Recipe] = {
    # scripts/train_mnist_classifier.py --epochs=20: 20 * 4,000 // 64 = 1,250 steps.
    "mnist5k": Recipe(
        model="mnist_cnn",
        steps=1250,
        batch_size=64,
        optimizer="adamw",
        learning_rate=1e-3,
        weight_decay=1e-4,
        schedule="cosine",
        translate=2,
    ),
    # gan_evaluation classifier.py (cifar10_config, cifar_model_fn), specs/metrics.md §8.1:
    # int(50000 / 128 * 82) = 32031 and int(50000 / 128 * 123) = 48046; max_iterations 64000.
    "cifar10": Recipe(
        model="resnet32",
        steps=64_000,
        batch_size=128,
        optimizer="momentum",
        learning_rate=0.1,
        weight_decay=2e-4,
        schedule="piecewise",
        boundaries=(32_031, 48_046),
        scales=(0.1, 0.1),
        translate=4,
        flip=True,
        dequantize=True,
    ),
}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"Unknown classifier recipe {name!r}: expected one of {sorted(RECIPES)}.")
    return RECIPES[name]


def recipe_for(dataset: str, channels: int) -> str:
    """The recipe a dataset's classifier metrics use: mnist5k for grayscale, else cifar10."""
    kind = dataset.split(":")[0]
    if kind == "mnist5k" or channels == 1:
        return "mnist5k"
    return "cifar10"


def learning_rate_schedule(recipe: Recipe, steps: int | None = None) -> optax.Schedule:
    """lr as a function of the update count (0 for the first update), for `steps` updates."""
    steps = steps or recipe.steps
    if recipe.schedule == "cosine":
        return optax.cosine_decay_schedule(recipe.learning_rate, steps)
    if recipe.schedule == "piecewise":
        boundaries = [b * steps // recipe.steps for b in recipe.boundaries]

        def schedule(count):
            lr = jnp.asarray(recipe.learning_rate, jnp.float32)
            for boundary, scale in zip(boundaries, recipe.scales):
                lr = jnp.where(count > boundary, lr * scale, lr)  # tf.train.piecewise_constant
            return lr

        return schedule
    raise ValueError(f"Recipe schedule {recipe.schedule!r}: expected 'cosine' or 'piecewise'.")


def make_optimizer(recipe: Recipe, steps: int | None = None) -> optax.GradientTransformation:
    lr = learning_rate_schedule(recipe, steps)
    if recipe.optimizer == "adamw":
        return optax.adamw(lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "momentum":  # tf.train.MomentumOptimizer: accum = m * accum + g
        return optax.sgd(lr, momentum=recipe.momentum)
    raise ValueError(f"Recipe optimizer {recipe.optimizer!r}: expected 'adamw' or 'momentum'.")


def make_augment(recipe: Recipe) -> Callable[[jax.Array, jax.Array], jax.Array] | None:
    """The recipe's uint8 augmentation (translate, then flip), or None."""
    if not recipe.translate and not recipe.flip:
        return None
    if not recipe.flip:
        return lambda key, x: random_translate(key, x, pad=recipe.translate)

    def augment(key, images):
        crop_key, flip_key = jax.random.split(key)
        if recipe.translate:
            images = random_translate(crop_key, images, pad=recipe.translate)
        return random_flip(flip_key, images)

    return augment


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    recipe: Recipe,
    seed: int = 0,
    num_classes: int = 10,
    steps: int = 0,
    on_step: Callable[[int, dict], None] | None = None,
):
    """Trains a fresh `recipe.model` on uint8 images [N, R, R, C] with int labels [N] -> params.

    Batches come from `data.Batches` (a `default_rng([seed, epoch])` permutation per epoch, as the
    GAN's); weights are initialised from `jax.random.key(seed)`, step i's augmentation key is
    `fold_in(key(seed + 1), i)`. steps: 0 for the recipe's. on_step(i, metrics) sees every step's
    device metrics (`loss`, `accuracy`). Deterministic for a given seed on one backend.
    Returns the `params` collection, or a variables dict for models with BatchNorm.
    """
    images, labels = np.asarray(images), np.asarray(labels, np.int32)
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(labels):
        raise ValueError(
            f"train_classifier: expected uint8 images [N, H, W, C] and N labels, got "
            f"{images.dtype} {images.shape} and {labels.shape}."
        )
    steps = steps or recipe.steps
    resolution, channels = images.shape[1], images.shape[-1]
    model = get(recipe.model, num_classes)
    tx = make_optimizer(recipe, steps)
    params = init_params(model, jax.random.key(seed), resolution, channels)
    opt_state = tx.init(trainable(params))
    # AdamW decays the weights itself; SGD's weight decay is the reference's L2 term in the loss.
    l2 = recipe.weight_decay if recipe.optimizer == "momentum" else 0.0
    step_fn = jax.jit(make_train_step(model, tx, make_augment(recipe), l2, recipe.dequantize))
    source = data.sources.ArraySource(images, labels, num_classes)
    batches = data.Batches(source, recipe.batch_size, resolution, channels, seed=seed)
    key = jax.random.key(seed + 1)
    for step in range(steps):
        batch = next(batches)
        params, opt_state, metrics = step_fn(
            params, opt_state, batch["image"][0], batch["label"][0], jax.random.fold_in(key, step)
        )
        if on_step is not None:
            on_step(step, metrics)
    return params


# ----------------------------------------------------------------------------------------------
# Weights on disk.
# ----------------------------------------------------------------------------------------------


def flatten(params) -> dict[str, np.ndarray]:
    """Named float32 arrays: "Conv0/kernel" (a params collection), or "params/...",
    "batch_stats/..." (a variables dict)."""
    flat = traverse_util.flatten_dict(jax.device_get(params), sep="/")
    return {name: np.asarray(value, np.float32) for name, value in flat.items()}


def unflatten(arrays: Mapping[str, np.ndarray]):
    return traverse_util.unflatten_dict(dict(arrays), sep="/")


def save_params(path: str | os.PathLike, params, info: Mapping[str, Any]) -> None:
    """Writes `params` as named float32 arrays ("Conv0/kernel", ...) plus the tag and `info` (JSON)."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        np.savez(
            f,
            __format__=np.array(FORMAT_TAG),
            __info__=np.array(json.dumps(dict(info), sort_keys=True)),
            **flatten(params),
        )
    os.replace(tmp, path)


def expected_shapes(model: nn.Module, resolution: int, channels: int) -> dict[str, tuple]:
    """The flattened names and shapes `flatten(init_params(model, ...))` has (no compute)."""
    shapes = jax.eval_shape(lambda: init_params(model, jax.random.key(0), resolution, channels))
    return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(shapes, sep="/").items()}


def check_arrays(arrays: Mapping[str, np.ndarray], model: nn.Module, resolution, channels) -> list:
    """Names missing, unexpected or of the wrong shape for `model` (empty when they fit)."""
    expected = expected_shapes(model, resolution, channels)
    return sorted(set(expected) ^ set(arrays)) + sorted(
        k for k in set(expected) & set(arrays) if expected[k] != tuple(arrays[k].shape)
    )


def load_params(path: str | os.PathLike, model: nn.Module) -> tuple[Any, dict]:
    """Reads `save_params`' file for `model` -> (params, info); names and shapes must match."""
    with np.load(path, allow_pickle=False) as stored:
        tag = str(stored["__format__"]) if "__format__" in stored.files else None
        if tag != FORMAT_TAG:
            raise ValueError(
                f"{path} is not a jaxgan classifier file (format tag {tag!r}, expected {FORMAT_TAG!r})."
            )
        info = json.loads(str(stored["__info__"]))
        arrays = {k: stored[k] for k in stored.files if not k.startswith("__")}
    resolution, channels = INPUT_SHAPES.get(info.get("preset"), (32, 1))
    channels = info.get("channels", channels)  # a preset trained on other input (emoji_cnn: RGB)
    wrong = check_arrays(arrays, model, resolution, channels)
    if wrong:
        raise ValueError(
            f"{path} does not match the {type(model).__name__} definition (mismatched: "
            f"{', '.join(wrong[:5])}). Re-create it with the script named in its info: "
            f"{info.get('command', 'scripts/train_mnist_classifier.py')}."
        )
    return unflatten(arrays), info
