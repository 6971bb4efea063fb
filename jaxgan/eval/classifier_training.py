"""How the evaluator's classifiers are trained: recipes, one pure training step, augmentation.

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
batch (`random_translate` is pad-and-crop, `random_flip` a mirror).

The networks are `jaxgan/models/classifier.py`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import data
from jaxgan.core import batched
from jaxgan.models import classifier
from jaxgan.training import losses

# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


def random_translate(key: jax.Array, images: jax.Array, pad: int) -> jax.Array:
    """Pad-and-crop: each uint8 image [N, H, W, C] shifted by up to `pad` px, zeros shifted in.

    For MNIST (a black background) this is a translation; it is also the "pad 4, random crop 32"
    of the CIFAR ResNet recipe (gan_evaluation `data/cifar.py::distort_image`).
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
        variables = classifier.as_variables(params)
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
    return classifier.as_variables(params)["params"]


def make_predictor(
    model: nn.Module, params, batch_size: int = 500, *, mesh: jax.sharding.Mesh | None = None
):
    """`predict(images) -> {"features": [N, D], "logits": [N, K]}` float32 numpy, in input order.

    images: uint8 [N, H, W, C], or an iterable of such chunks. Batches have one fixed shape,
    `batch_size` rounded up to a multiple of the devices (the last one zero-padded, the padding
    dropped), so one compile serves any N; each is sharded over `mesh` (default: all devices),
    the weights replicated (`core/batched.make_sharded_map`, the evaluator's one batch loop).
    """
    apply = jax.jit(
        lambda p, x: classifier.apply_uint8(model, p, x)
    )  # params as an argument, not constants
    return batched.make_sharded_map(
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
    # gan_evaluation classifier.py (cifar10_config, cifar_model_fn):
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
    model = classifier.get(recipe.model, num_classes)
    tx = make_optimizer(recipe, steps)
    params = classifier.init_params(model, jax.random.key(seed), resolution, channels)
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
