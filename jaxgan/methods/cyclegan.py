"""CycleGAN (Zhu et al. 2017) on the shared translation trainer (`translation.py`): its train step.

Facts from `models/cycle_gan_model.py`, `util/image_pool.py` and `models/networks.py` of
junyanz/pytorch-CycleGAN-and-pix2pix. Naming as the reference:
G_A maps A -> B (the paper's G), G_B maps B -> A (F); D_A judges B-domain images (D_Y), D_B judges
A-domain images (D_X).

One step (`cycle_gan_model.py::optimize_parameters`): the forward pass of both generators, the
generators' update on the joint loss (adversarial + cycle λ + identity 0.5·λ), then the critics'
update on the *same forward's* fakes
(taken before G moved) through the 50-image history pool, each critic loss halved. Every piece is a
pure function of arrays; the pool is array state inside the jitted step, drawn from the step's key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxgan import data
from jaxgan.core import errors, parallel, precision
from jaxgan.methods import translation
from jaxgan.models import cyclegan as networks
from jaxgan.training import loop, losses
from jaxgan.training.losses import l1

State = dict[str, Any]

# ----------------------------------------------------------------------------------------------
# The history pool (util/image_pool.py::ImagePool.query).
# ----------------------------------------------------------------------------------------------


def pool_init(size: int, image_shape: tuple[int, ...], dtype=jnp.float32) -> dict:
    """An empty pool of `size` images ([size, H, W, C]) and how many it holds."""
    return {
        "images": jnp.zeros((size, *image_shape), dtype),
        "count": jnp.zeros((), jnp.int32),
    }


def pool_query(pool: dict, images: jax.Array, key: jax.Array) -> tuple[dict, jax.Array]:
    """The reference's `query`, image by image in batch order: while the pool is filling, each image
    is stored and returned; once full, with probability ½ a random stored image is returned and the
    new one takes its place, otherwise the new image is returned. A 0-size pool passes through.

    Returns (the new pool, the images the critic sees). The stored images carry no gradient.
    """
    size = pool["images"].shape[0]
    if size == 0:
        return pool, images

    def one(pool, inputs):
        image, key = inputs
        key_swap, key_index = jax.random.split(key)
        filling = pool["count"] < size
        swap = jax.random.uniform(key_swap) > 0.5  # the reference's `random.uniform(0, 1) > 0.5`
        index = jnp.where(filling, pool["count"], jax.random.randint(key_index, (), 0, size))
        stored = pool["images"][index]
        returned = jnp.where(filling | ~swap, image, stored)
        kept = jnp.where(filling | swap, image, stored)
        pool = {
            "images": pool["images"].at[index].set(kept),
            "count": jnp.minimum(pool["count"] + 1, size),
        }
        return pool, returned

    keys = jax.random.split(key, images.shape[0])
    return jax.lax.scan(
        one, pool, (jax.lax.stop_gradient(images).astype(pool["images"].dtype), keys)
    )


# ----------------------------------------------------------------------------------------------
# Losses (`networks.py::GANLoss`, `cycle_gan_model.py::backward_G` / `backward_D_basic`).
# ----------------------------------------------------------------------------------------------


# config.gan_mode -> the name of its loss in `losses.LOSSES`.
GAN_MODES: dict[str, str] = {
    "lsgan": "mse_lsgan",  # the reference's default
    "vanilla": "non_saturating",  # BCEWithLogits against 1 / 0
    "wgangp": "wasserstein",  # -mean(real) + mean(fake); G: -mean(fake)
}


def gan_mode(name: str) -> losses.Loss:
    if name not in GAN_MODES:
        raise errors.ConfigError(
            f"config.gan_mode={name!r}: expected one of {', '.join(GAN_MODES)} (CycleGAN: lsgan)."
        )
    return losses.get(GAN_MODES[name])


class Weights(NamedTuple):
    cycle_a: float = 10.0  # lambda_A
    cycle_b: float = 10.0  # lambda_B
    identity: float = 0.5  # lambda_identity, a fraction of the cycle weights
    gan: float = 1.0  # gan_weight: both adversarial terms (0: the paper's "cycle alone")


def generator_loss(
    g_params: dict,
    d_params: dict,
    generate: Callable,
    criticize: Callable,
    real_a: jax.Array,
    real_b: jax.Array,
    gan: losses.Loss,
    weights: Weights,
) -> tuple[jax.Array, tuple[dict, dict]]:
    """backward_G: adversarial (through both critics, each weighed by `weights.gan`) + cycle +
    identity; returns (loss, (fakes, terms)) with fakes {'A': G_B(B), 'B': G_A(A)} for the
    critics' update. Every term is logged as weighed; a weight of 1 multiplies exactly.

    `generate(params, x)` and `criticize(params, x)` apply one generator / critic.
    """
    fake_b = generate(g_params["G_A"], real_a)
    fake_a = generate(g_params["G_B"], real_b)
    terms = {
        "g_adv_a": weights.gan * gan.generator(criticize(d_params["D_A"], fake_b)),
        "g_adv_b": weights.gan * gan.generator(criticize(d_params["D_B"], fake_a)),
        "cycle_a": weights.cycle_a * l1(generate(g_params["G_B"], fake_b), real_a),
        "cycle_b": weights.cycle_b * l1(generate(g_params["G_A"], fake_a), real_b),
    }
    if weights.identity > 0:  # G_A should leave B-domain images as they are, G_B A-domain ones
        terms["idt_a"] = (
            weights.cycle_b * weights.identity * l1(generate(g_params["G_A"], real_b), real_b)
        )
        terms["idt_b"] = (
            weights.cycle_a * weights.identity * l1(generate(g_params["G_B"], real_a), real_a)
        )
    return sum(terms.values()), ({"A": fake_a, "B": fake_b}, terms)


def critic_loss(
    d_params: dict,
    criticize: Callable,
    real_a: jax.Array,
    real_b: jax.Array,
    fake_a: jax.Array,
    fake_b: jax.Array,
    gan: losses.Loss,
) -> tuple[jax.Array, dict]:
    """backward_D_basic for both critics: ½·loss(real, fake) each (the ½ slows D relative to G)."""
    terms = {
        "d_a": 0.5
        * gan.critic(criticize(d_params["D_A"], real_b), criticize(d_params["D_A"], fake_b)),
        "d_b": 0.5
        * gan.critic(criticize(d_params["D_B"], real_a), criticize(d_params["D_B"], fake_a)),
    }
    return terms["d_a"] + terms["d_b"], terms


# ----------------------------------------------------------------------------------------------
# The train step.
# ----------------------------------------------------------------------------------------------


def make_train_step(
    generator: nn.Module,
    critic: nn.Module,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    gan: losses.Loss,
    weights: Weights,
    mesh,
    compute_dtype=jnp.float32,
    keep_old_state: bool = True,
) -> Callable[[State, dict], tuple[State, dict]]:
    """The jitted `train_step(state, {'A': uint8 [1, N, H, W, C], 'B': ...}) -> (state, metrics)`.

    state: {step, rng, g_params {G_A, G_B}, d_params {D_A, D_B}, g_opt, d_opt, pool_a, pool_b}.
    `optimize_parameters`: G_A and G_B step jointly on `generator_loss` (one Adam over
    both, as the reference chains their parameters), then D_A and D_B on `critic_loss`, judging
    the fakes of the forward pass before G's update, through the pools. The networks compute in
    `compute_dtype` (`jaxgan/core/precision.py`); parameters, optimizers, losses and pools stay float32.
    keep_old_state: `loop.guard_update`'s (`loop.keeps_old_state(config)`).
    """
    generator_apply = precision.in_compute_dtype(generator.apply, compute_dtype)
    critic_apply = precision.in_compute_dtype(critic.apply, compute_dtype)
    generate = lambda params, x: generator_apply({"params": params}, x)  # noqa: E731
    criticize = lambda params, x: critic_apply({"params": params}, x)  # noqa: E731

    def train_step(state: State, batch: dict) -> tuple[State, dict]:
        key = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), state["step"])
        # uint8 [1, N, H, W, C] as the data streams give them; the flip is the stream's already.
        real_a, real_b = (data.to_float(batch[d][0], key) for d in "AB")
        (g_loss, (fakes, g_terms)), g_grads = jax.value_and_grad(generator_loss, has_aux=True)(
            state["g_params"], state["d_params"], generate, criticize, real_a, real_b, gan, weights
        )
        g_updates, g_opt = g_tx.update(g_grads, state["g_opt"], state["g_params"])
        key_a, key_b = jax.random.split(key)
        pool_a, fake_a = pool_query(state["pool_a"], fakes["A"], key_a)
        pool_b, fake_b = pool_query(state["pool_b"], fakes["B"], key_b)
        (d_loss, d_terms), d_grads = jax.value_and_grad(critic_loss, has_aux=True)(
            state["d_params"], criticize, real_a, real_b, fake_a, fake_b, gan
        )
        d_updates, d_opt = d_tx.update(d_grads, state["d_opt"], state["d_params"])
        state = {
            **state,
            "step": state["step"] + 1,
            "g_params": optax.apply_updates(state["g_params"], g_updates),
            "d_params": optax.apply_updates(state["d_params"], d_updates),
            "g_opt": g_opt,
            "d_opt": d_opt,
            "pool_a": pool_a,
            "pool_b": pool_b,
        }
        return state, {"g_loss": g_loss, "d_loss": d_loss, **g_terms, **d_terms}

    return loop.jit_guarded_step(train_step, mesh, keep_old_state=keep_old_state)


# ----------------------------------------------------------------------------------------------
# The method on the run loop.
# ----------------------------------------------------------------------------------------------


def build_models(config: ml_collections.ConfigDict, channels: int) -> tuple[nn.Module, nn.Module]:
    """(generator, critic): one architecture each, applied with two parameter sets (A, B)."""
    m = config.model
    if m.name != "cyclegan":
        raise errors.ConfigError(
            f"config.model.name={m.name!r}: the translation method has 'cyclegan'."
        )
    return (
        networks.Generator(channels, m.g_width, m.num_blocks),
        networks.Discriminator(m.d_width, m.d_layers),
    )


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Adam(lr, b1, b2) with the constant-then-linear lr, stepped once per iteration."""
    o = config.optim
    lr = translation.learning_rate_fn(o.lr, config.num_steps, config.decay_steps)
    return optax.adam(lr, b1=o.b1, b2=o.b2, eps=o.eps)


def create_state(config, generator, critic, g_tx, d_tx, image_shape, mesh) -> State:
    """The fresh state on the mesh (replicated): networks per `init_weights`, empty pools."""

    def init(key):
        keys = dict(zip(("G_A", "G_B", "D_A", "D_B"), jax.random.split(key, 4)))
        x = jnp.zeros((1, *image_shape))
        g_params = {n: generator.init(keys[n], x)["params"] for n in ("G_A", "G_B")}
        d_params = {n: critic.init(keys[n], x)["params"] for n in ("D_A", "D_B")}
        return {
            "step": jnp.zeros((), jnp.int32),
            "rng": jax.random.key_data(jax.random.key(config.seed)),
            "g_params": g_params,
            "d_params": d_params,
            "g_opt": g_tx.init(g_params),
            "d_opt": d_tx.init(d_params),
            "pool_a": pool_init(config.pool_size, image_shape),
            "pool_b": pool_init(config.pool_size, image_shape),
        }

    # 'rbg' for the initial weights, as gan.create_state (XLA:CPU compiles it faster).
    init_key = jax.random.key(config.seed, impl="rbg")
    return jax.jit(init, out_shardings=parallel.replicated(mesh))(init_key)


GENERATOR_OF = {"AtoB": "G_A", "BtoA": "G_B"}  # direction -> the generator that translates it


def build(config: ml_collections.ConfigDict, mesh) -> translation.Model:
    """CycleGAN's `translation.Model`. Its translator is G_A for 'AtoB', G_B for 'BtoA' on
    `g_params`. The ResNet generator is fully convolutional: any H, W that are multiples of 4 (two
    stride-2 steps) and at least 8 (the reflection pads) translate, as the reference's test.py
    with `--preprocess none`."""
    d = config.data
    generator, critic = build_models(config, d.channels)
    g_tx, d_tx = make_optimizer(config), make_optimizer(config)
    weights = Weights(config.lambda_a, config.lambda_b, config.lambda_identity, config.gan_weight)
    apply = jax.jit(  # float32 whatever config.compute_dtype: evaluation and sample grids
        lambda params, x: generator.apply({"params": params}, x),
        out_shardings=parallel.replicated(mesh),
    )
    image_shape = (d.resolution, d.resolution, d.channels)
    return translation.Model(
        init_state=lambda: create_state(config, generator, critic, g_tx, d_tx, image_shape, mesh),
        train_step=make_train_step(
            generator,
            critic,
            g_tx,
            d_tx,
            gan_mode(config.gan_mode),
            weights,
            mesh,
            precision.compute_dtype(config),
            loop.keeps_old_state(config),
        ),
        translate=lambda g_params, images, direction: apply(
            g_params[GENERATOR_OF[translation.check_direction(direction)]], images
        ),
    )


# Eigen's convolutions ran its batch-1 step 1.25x faster than YNNPACK's on a Zen 5, where XLA's
# own kernels throughout were no faster (docs/performance.md).
METHOD = translation.method(build, eval_params="g_params", cpu_convolutions="eigen")
