"""NICE-GAN (Chen et al., CVPR 2020) on the shared translation trainer (`translation.py`): its step.

Facts from alpc91/NICE-GAN-pytorch `NICE.py::train` (l.206-277) and `main.py`'s defaults; the
networks are `models/nicegan.py`. Naming as the
reference: disA judges A-domain images and *encodes* them, disB likewise for B; gen2B decodes a
code into a B image, gen2A into an A image. A -> B is gen2B(disA.encode(a)).

One iteration, decoupled (the paper's decoupled training), D first (the reverse of CycleGAN's
order), no image pool:
  D step: both discriminators on the reals (their logits and codes), the codes decoded by the
    current generators into the other domain and *detached*, each fake scored by its domain's
    discriminator; LSGAN on the global, CAM and local logits, no ½. Only the discriminators move,
    so the encoder learns from the adversarial loss alone (the author, NICE issue #2).
  G step: the same graph through the just-updated discriminators, held fixed: the reals encoded,
    translated, scored (adversarial), the translations re-encoded by their domain's discriminator
    and decoded back (cycle, weight 10), and each real's own code decoded in its own domain
    (reconstruction, weight 10: NICE's replacement for CycleGAN's identity loss). Only the
    generators move.
Spectral norm: every discriminator call is PyTorch's training mode, one power iteration whose u is
kept, so each discriminator's u advances four times per iteration (twice per step), threaded
through the state's `spectral_norm`. Optimizers: Adam(1e-4, 0.5, 0.999) with *coupled* L2 weight
decay 1e-4 on every parameter (torch.optim.Adam's weight_decay adds wd·θ to the gradient; not AdamW),
constant for the first half, then linearly to 0.
"""

from __future__ import annotations

import functools
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
from jaxgan.models import layers
from jaxgan.models import nicegan as networks
from jaxgan.training import loop, losses

State = dict[str, Any]
SPECTRAL = layers.SPECTRAL_COLLECTION
# The logits each discriminator loss sums, in the reference's order (global, CAM, local).
LOGITS = ("global_logits", "cam_logits", "local_logits")
# direction -> (the discriminator that encodes the source, the generator that decodes the target)
ROUTE = {"AtoB": ("disA", "gen2B"), "BtoA": ("disB", "gen2A")}


class Weights(NamedTuple):
    adversarial: float = 1.0  # adv_weight
    cycle: float = 10.0  # cycle_weight
    reconstruction: float = 10.0  # recon_weight


class Networks(NamedTuple):
    """The two architectures as pure functions (each applied with two parameter sets, A and B)."""

    discriminate: Callable  # (params, u, images) -> (DiscriminatorOutput, new u): training mode
    generate: Callable  # (params, code) -> images


def make_networks(
    generator: nn.Module, discriminator: nn.Module, compute_dtype=jnp.float32
) -> Networks:
    """The networks computing in `compute_dtype` (`jaxgan/core/precision.py`): their parameters, u,
    outputs and the losses stay float32."""
    generator_apply = precision.in_compute_dtype(generator.apply, compute_dtype)
    discriminator_apply = precision.in_compute_dtype(discriminator.apply, compute_dtype)

    def discriminate(params, u, images):
        out, variables = discriminator_apply(
            {"params": params, SPECTRAL: u}, images, mutable=[SPECTRAL]
        )
        return out, variables[SPECTRAL]

    return Networks(discriminate, lambda params, code: generator_apply({"params": params}, code))


def _adversarial(gan: losses.Loss, real, fake) -> jax.Array:
    """One discriminator's loss: Σ over its three logits of MSE(real, 1) + MSE(fake, 0)."""
    return sum(gan.critic(getattr(real, k), getattr(fake, k)) for k in LOGITS)


def discriminator_loss(
    d_params: dict, u: dict, g_params: dict, nets: Networks, real_a, real_b, gan, weights: Weights
) -> tuple[jax.Array, tuple[dict, dict]]:
    """NICE.py l.206-232: returns (loss, (the discriminators' new u, terms))."""
    real_a_out, u_a = nets.discriminate(d_params["disA"], u["disA"], real_a)
    real_b_out, u_b = nets.discriminate(d_params["disB"], u["disB"], real_b)
    # fake = fake.detach(): no gradient reaches the encoder through the generators.
    fake_a2b = jax.lax.stop_gradient(nets.generate(g_params["gen2B"], real_a_out.code))
    fake_b2a = jax.lax.stop_gradient(nets.generate(g_params["gen2A"], real_b_out.code))
    fake_a_out, u_a = nets.discriminate(d_params["disA"], u_a, fake_b2a)
    fake_b_out, u_b = nets.discriminate(d_params["disB"], u_b, fake_a2b)
    terms = {
        "d_a": weights.adversarial * _adversarial(gan, real_a_out, fake_a_out),
        "d_b": weights.adversarial * _adversarial(gan, real_b_out, fake_b_out),
    }
    return terms["d_a"] + terms["d_b"], ({"disA": u_a, "disB": u_b}, terms)


def generator_loss(
    g_params: dict, d_params: dict, u: dict, nets: Networks, real_a, real_b, gan, weights: Weights
) -> tuple[jax.Array, tuple[dict, dict]]:
    """NICE.py l.238-273 through the given (just-updated) discriminators, which receive no
    gradient here: returns (loss, (the discriminators' new u, terms))."""
    real_a_out, u_a = nets.discriminate(d_params["disA"], u["disA"], real_a)
    real_b_out, u_b = nets.discriminate(d_params["disB"], u["disB"], real_b)
    fake_a2b = nets.generate(g_params["gen2B"], real_a_out.code)
    fake_b2a = nets.generate(g_params["gen2A"], real_b_out.code)
    fake_a_out, u_a = nets.discriminate(d_params["disA"], u_a, fake_b2a)
    fake_b_out, u_b = nets.discriminate(d_params["disB"], u_b, fake_a2b)
    adversarial = lambda out: sum(gan.generator(getattr(out, k)) for k in LOGITS)  # noqa: E731
    terms = {
        "g_adv_a": weights.adversarial * adversarial(fake_a_out),
        "g_adv_b": weights.adversarial * adversarial(fake_b_out),
        # The translation re-encoded by its own domain's discriminator, decoded back.
        "cycle_a": weights.cycle
        * losses.l1(nets.generate(g_params["gen2A"], fake_b_out.code), real_a),
        "cycle_b": weights.cycle
        * losses.l1(nets.generate(g_params["gen2B"], fake_a_out.code), real_b),
        # Each real's code decoded in its own domain: an autoencoder through the encoder.
        "recon_a": weights.reconstruction
        * losses.l1(nets.generate(g_params["gen2A"], real_a_out.code), real_a),
        "recon_b": weights.reconstruction
        * losses.l1(nets.generate(g_params["gen2B"], real_b_out.code), real_b),
    }
    return sum(terms.values()), ({"disA": u_a, "disB": u_b}, terms)


def make_steps(
    nets: Networks,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    gan: losses.Loss,
    weights: Weights,
) -> tuple[Callable, Callable]:
    """(d_step, g_step), each `(state, real_a, real_b) -> (state, metrics)`, pure.

    state: {step, rng, g_params {gen2A, gen2B}, d_params {disA, disB}, spectral_norm {disA,
    disB}, g_opt, d_opt}. d_step moves d_params (and u); g_step moves g_params (and u).
    """

    def d_step(state: State, real_a, real_b) -> tuple[State, dict]:
        (loss, (u, terms)), grads = jax.value_and_grad(discriminator_loss, has_aux=True)(
            state["d_params"], state[SPECTRAL], state["g_params"], nets, real_a, real_b, gan,
            weights,
        )  # fmt: skip
        updates, d_opt = d_tx.update(grads, state["d_opt"], state["d_params"])
        params = optax.apply_updates(state["d_params"], updates)
        return {**state, "d_params": params, SPECTRAL: u, "d_opt": d_opt}, {"d_loss": loss, **terms}

    def g_step(state: State, real_a, real_b) -> tuple[State, dict]:
        (loss, (u, terms)), grads = jax.value_and_grad(generator_loss, has_aux=True)(
            state["g_params"], state["d_params"], state[SPECTRAL], nets, real_a, real_b, gan,
            weights,
        )  # fmt: skip
        updates, g_opt = g_tx.update(grads, state["g_opt"], state["g_params"])
        params = optax.apply_updates(state["g_params"], updates)
        return {**state, "g_params": params, SPECTRAL: u, "g_opt": g_opt}, {"g_loss": loss, **terms}

    return d_step, g_step


def make_train_step(nets, g_tx, d_tx, gan, weights, mesh, keep_old_state: bool = True) -> Callable:
    """The jitted `train_step(state, {'A': uint8 [1, N, H, W, C], 'B': ...}) -> (state, metrics)`:
    the D step, then the G step on the same batch; keep_old_state: `loop.guard_update`'s."""
    d_step, g_step = make_steps(nets, g_tx, d_tx, gan, weights)

    def train_step(state: State, batch: dict) -> tuple[State, dict]:
        key = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), state["step"])
        real_a, real_b = (data.to_float(batch[d][0], key) for d in "AB")
        state, d_metrics = d_step(state, real_a, real_b)
        state, g_metrics = g_step(state, real_a, real_b)
        return {**state, "step": state["step"] + 1}, {**d_metrics, **g_metrics}

    return loop.jit_guarded_step(train_step, mesh, keep_old_state=keep_old_state)


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """torch.optim.Adam(lr, (b1, b2), weight_decay=wd): wd·θ joins the gradient before Adam's
    moments (coupled L2), then Adam, then the lr. NICE.py lowers the lr *before* its step's update
    (`if step > iteration // 2: lr -= lr0 / (iteration // 2)`, step counted from 1), so update c
    (from 0) runs at the shared schedule's value for c + 1; with decay_steps = num_steps / 2 that
    is the reference's lr at every iteration, reaching 0 at the last."""
    o = config.optim
    lr = translation.learning_rate_fn(o.lr, config.num_steps, config.decay_steps)
    return optax.chain(
        optax.add_decayed_weights(o.weight_decay),
        optax.scale_by_adam(b1=o.b1, b2=o.b2, eps=o.eps),
        optax.scale_by_learning_rate(lambda count: lr(count + 1)),
    )


def build_models(config: ml_collections.ConfigDict) -> tuple[nn.Module, nn.Module]:
    """(generator, discriminator) at the reference's one width `ch` (ngf = ndf)."""
    m = config.model
    if m.name != "nicegan":
        raise errors.ConfigError(f"config.model.name={m.name!r}: the nicegan method has 'nicegan'.")
    generator = networks.Generator(config.data.channels, m.width, m.num_blocks, m.light)
    return generator, networks.Discriminator(m.width, m.num_layers)


def check_resolution(config: ml_collections.ConfigDict) -> None:
    """The global branch halves the code (H/4) num_layers - 4 more times and ends in two 4×4
    stride-1 convs on reflection-padded maps, which need 3 pixels: a multiple of 4 of at least
    3·2^(num_layers - 2) (48 at num_layers 6, 96 at 7)."""
    r, n = config.data.resolution, config.model.num_layers
    least = 3 * 2 ** (n - 2)
    if r % 4 or r < least:
        raise errors.ConfigError(
            f"config.data.resolution={r} with config.model.num_layers={n}: NICE-GAN's global "
            f"discriminator branch needs a multiple of 4 of at least {least} (64 works with "
            f"num_layers 6, 128 and 256 with 7); raise the resolution or lower num_layers."
        )


def create_state(config, generator, discriminator, g_tx, d_tx, mesh) -> State:
    """The fresh state on the mesh (replicated), PyTorch's default init (`models/nicegan.py`)."""
    d = config.data
    image = jnp.zeros((1, d.resolution, d.resolution, d.channels))
    code = jnp.zeros((1, d.resolution // 4, d.resolution // 4, 2 * config.model.width))

    def init(key):
        keys = dict(zip(("gen2A", "gen2B", "disA", "disB"), jax.random.split(key, 4)))
        g_params = {n: generator.init(keys[n], code)["params"] for n in ("gen2A", "gen2B")}
        d_vars = {n: discriminator.init(keys[n], image) for n in ("disA", "disB")}
        d_params = {n: v["params"] for n, v in d_vars.items()}
        return {
            "step": jnp.zeros((), jnp.int32),
            "rng": jax.random.key_data(jax.random.key(config.seed)),
            "g_params": g_params,
            "d_params": d_params,
            SPECTRAL: {n: v[SPECTRAL] for n, v in d_vars.items()},
            "g_opt": g_tx.init(g_params),
            "d_opt": d_tx.init(d_params),
        }

    init_key = jax.random.key(config.seed, impl="rbg")  # as cyclegan.create_state
    return jax.jit(init, out_shardings=parallel.replicated(mesh))(init_key)


def make_translator(generator: nn.Module, discriminator: nn.Module, mesh) -> Callable:
    """`translate({g_params, d_params, spectral_norm}, images, direction)`: the source domain's
    encoder in evaluation mode (u read, not advanced), then the target's decoder, as the
    reference's `test()`. PyTorch's eval mode divides by σ = uᵀWv with its stored u and v; here
    one power iteration from the stored u recomputes v first (the layer keeps no v), which agrees
    with it to the power iteration's convergence. In float32 whatever config.compute_dtype
    (evaluation and sample grids)."""

    @functools.partial(jax.jit, static_argnums=2, out_shardings=parallel.replicated(mesh))
    def apply(params, images, direction):
        encoder, decoder = ROUTE[direction]
        code = discriminator.apply(
            {"params": params["d_params"][encoder], SPECTRAL: params[SPECTRAL][encoder]},
            images,
            method=networks.Discriminator.encode,
        )
        return generator.apply({"params": params["g_params"][decoder]}, code)

    return lambda params, images, direction: apply(
        params, images, translation.check_direction(direction)
    )


EVAL_PARAMS = ("g_params", "d_params", SPECTRAL)


def build(config: ml_collections.ConfigDict, mesh) -> translation.Model:
    """NICE-GAN's `translation.Model` for `config` (jaxgan/configs/nicegan.py)."""
    check_resolution(config)
    generator, discriminator = build_models(config)
    g_tx, d_tx = make_optimizer(config), make_optimizer(config)
    weights = Weights(config.adv_weight, config.cycle_weight, config.recon_weight)
    nets = make_networks(generator, discriminator, precision.compute_dtype(config))
    return translation.Model(
        init_state=lambda: create_state(config, generator, discriminator, g_tx, d_tx, mesh),
        train_step=make_train_step(
            nets, g_tx, d_tx, losses.mse_lsgan(), weights, mesh, loop.keeps_old_state(config)
        ),
        translate=make_translator(generator, discriminator, mesh),
    )


METHOD = translation.method(build, eval_params=EVAL_PARAMS)
