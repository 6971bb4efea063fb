"""Progressive growing of GANs (Karras et al. 2018): the schedule, the per-stage step, its `Trainer`.

A method on the shared run loop (`jaxgan/training/loop.py`), reusing the GAN method's pieces
(`gan.create_state`, `sample_latents`, `fixed_latents`); what differs is the schedule (TF
`train.py::TrainingSchedule` and `config.py`, Theano `train.py`):

* Time is counted in real images shown (kimg). `lod_at` is TF `TrainingSchedule` / Theano
  `train_gan`: each phase stabilises for `training_kimg`, then fades the next resolution in over
  `transition_kimg`. The minibatch and learning rate follow per-resolution tables.
* The step is compiled once per resolution (a `Stage`), with the fade weight
  alpha = 1 - (lod - floor(lod)) and the learning rates as traced inputs: the fade-in and the
  stabilisation of a resolution share one executable, alpha = 1 making the old path exactly
  inactive. (The Theano code compiled per (floor, ceil) of lod, twice per resolution; on XLA:CPU a
  compile takes seconds.) Adam's moments are still reset whenever floor(lod) or ceil(lod) changes
  (`reset_opt_for_new_lod`): at the start and at the end of every fade-in.
* Reals are served at the final resolution, box-filtered to the stage resolution and faded
  between it and the next coarser one (TF `process_reals` FadeLOD; the networks run at the stage
  resolution, so the references' UpscaleLOD / internal downscale pair cancels out).
* One iteration: `n_critic` critic updates (each on fresh reals), the EMA update of the generator
  (Gs <- lerp(G, Gs, 0.999) with G before this iteration's G update, as TF's `Gs_update_op` runs
  beside `D_train_op`), then one generator update — or, with `simultaneous_updates` (Theano's
  `separate_funcs=False`, the CIFAR-10 run), G and D updated together from the same fakes.
* Losses: WGAN-GP (λ 10, γ = `penalties.wgan_gp.target`) + ε-drift 0.001 through
  `jaxgan.training.penalties`, the gradient taken w.r.t. the final-resolution images as the references
  take it (`full_resolution_penalty`), or the LSGAN variant of App. B (`loss='pggan_lsgan'`) with
  the adaptive multiplicative noise in D. AC-GAN terms (D on reals and fakes, G on fakes) when `model.ac_head`.

Checkpoint meta (beside the loop's): `data_cursor`, `cur_nimg` (real images shown), `lod`; a run
resumed mid-fade continues at the same lod and stage.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from jaxgan import data
from jaxgan.core import checkpoint, errors, parallel, run_files
from jaxgan.methods import gan
from jaxgan.models import layers, progan
from jaxgan.training import benchmark, loop, losses, registry, step_parts

State = dict[str, Any]

# ----------------------------------------------------------------------------------------------
# Schedule.
# ----------------------------------------------------------------------------------------------


def lod_at(
    kimg: float,
    final_log2: int,
    initial_resolution: int,
    training_kimg: float,
    transition_kimg: float,
) -> float:
    """Level of detail after `kimg` thousand real images (0 = final resolution).

    TF `TrainingSchedule`: phase = training + transition kimg; in phase p the resolution is
    initial·2^p for `training_kimg`, then the next one fades in linearly over `transition_kimg`.
    """
    phase_dur = training_kimg + transition_kimg
    phase_idx = int(math.floor(kimg / phase_dur)) if phase_dur > 0 else 0
    phase_kimg = kimg - phase_idx * phase_dur
    lod = final_log2 - math.floor(math.log2(initial_resolution)) - phase_idx
    if transition_kimg > 0:
        lod -= max(phase_kimg - training_kimg, 0.0) / transition_kimg
    return max(lod, 0.0)


@dataclasses.dataclass(frozen=True)
class Stage:
    """What one compiled step runs: networks at resolution 2^res_log2, and whether they carry the
    previous resolution's path, blended in with the traced alpha (1 once the fade is complete)."""

    res_log2: int
    fade_in: bool

    @property
    def resolution(self) -> int:
        return 2**self.res_log2


def first_res_log2(config: ml_collections.ConfigDict) -> int:
    """log2 of the resolution a run starts at (the final one when it does not grow)."""
    if not config.progressive:
        return progan.resolution_log2(config.data.resolution)
    return int(math.floor(math.log2(config.schedule.initial_resolution)))


def stage_of(lod: float, final_log2: int, first_log2: int) -> Stage:
    """The network for `lod`: resolution 2^(R - floor(lod)); every resolution after the first fades in."""
    res_log2 = final_log2 - int(math.floor(lod))
    return Stage(res_log2, res_log2 > first_log2)


def lod_bounds(lod: float) -> tuple[int, int]:
    """(floor, ceil) of lod: Adam is reset when either changes (TF `reset_opt_for_new_lod`)."""
    return int(math.floor(lod)), int(math.ceil(lod))


def fade_alpha(lod: float) -> float:
    """Weight of the new layers: 1 - (lod - floor(lod)) (TF `lerp_clip(new, old, lod_in - lod)`)."""
    return 1.0 - (lod - math.floor(lod))


def parse_table(text: str, value_type=float) -> dict[int, Any]:
    """'4:128,8:64' -> {4: 128, 8: 64}: the per-resolution dictionaries of the reference configs."""
    table = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        resolution, sep, value = item.partition(":")
        if not sep:
            raise errors.ConfigError(
                f"Per-resolution table {text!r}: expected 'res:value,...', got {item!r}."
            )
        table[int(resolution)] = value_type(value)
    return table


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The training parameters at one point of the run (TF `TrainingSchedule`)."""

    kimg: float
    lod: float
    stage: Stage
    minibatch: int
    g_lr: float
    d_lr: float

    @property
    def alpha(self) -> float:
        return fade_alpha(self.lod)


def schedule_at(config: ml_collections.ConfigDict, cur_nimg: int, num_devices: int = 1) -> Schedule:
    """Lod, stage, minibatch and learning rates after `cur_nimg` real images.

    `config.progressive=False` is the '-nogrowing' preset: the final resolution from the start.
    The minibatch is rounded down to a multiple of the device count (TF: `% num_gpus`); the
    learning rate is the table's value times Theano's ramp-up exp(-5(1 - kimg/rampup)²).
    """
    s = config.schedule
    final_log2 = progan.resolution_log2(config.data.resolution)
    kimg = cur_nimg / 1000.0
    if config.progressive:
        lod = lod_at(kimg, final_log2, s.initial_resolution, s.training_kimg, s.transition_kimg)
    else:
        lod = 0.0
    stage = stage_of(lod, final_log2, first_res_log2(config))
    minibatch = parse_table(s.batch_by_resolution, int).get(stage.resolution, config.batch_size)
    minibatch -= minibatch % num_devices
    if minibatch <= 0:
        raise errors.ConfigError(
            f"The minibatch at {stage.resolution}x{stage.resolution} is smaller than the "
            f"{num_devices} devices; raise config.batch_size or config.schedule.batch_by_resolution."
        )
    lr_table = parse_table(s.lr_by_resolution, float)
    ramp = 1.0
    if s.rampup_kimg > 0 and kimg < s.rampup_kimg:  # Theano misc.rampup
        ramp = math.exp(-5.0 * (1.0 - kimg / s.rampup_kimg) ** 2)
    return Schedule(
        kimg=kimg,
        lod=lod,
        stage=stage,
        minibatch=minibatch,
        g_lr=ramp * lr_table.get(stage.resolution, config.optim.g_lr),
        d_lr=ramp * lr_table.get(stage.resolution, config.optim.d_lr),
    )


# ----------------------------------------------------------------------------------------------
# Models and reals.
# ----------------------------------------------------------------------------------------------


def generator_is_conditional(config: ml_collections.ConfigDict) -> bool:
    """Whether G takes labels: PGGAN's `label_size` feeds G and D alike, so an AC head implies it."""
    return bool(config.model.conditional_generator or config.model.ac_head)


def build_models(
    config: ml_collections.ConfigDict, channels: int, num_classes: int, mesh=None
) -> tuple[progan.Generator, progan.Critic]:
    """G and D of `config.model` at the final resolution `config.data.resolution`.

    `mesh` is only used with `model.mbstd_per_device` (the minibatch stddev per device).
    """
    m = config.model
    if m.name != "progan":
        raise errors.ConfigError(
            f"config.model.name={m.name!r}: method 'progressive' trains 'progan'."
        )
    if m.projection or m.conditioning != "concat":
        raise errors.ConfigError(
            "The progressive generator takes one-hot labels with its latents "
            "(config.model.conditioning='concat') and its critic an AC head, not a projection."
        )
    g_classes = num_classes if generator_is_conditional(config) else 0
    if (g_classes or m.ac_head) and not num_classes:
        raise errors.ConfigError(
            f"config.model asks for a conditional model but dataset {config.data.dataset!r} "
            f"has no class labels."
        )
    widths = dict(fmap_base=m.fmap_base, fmap_decay=m.fmap_decay, fmap_max=m.fmap_max)
    generator = progan.Generator(
        resolution=config.data.resolution,
        channels=channels,
        num_classes=g_classes,
        normalize_latents=m.normalize_latents,
        use_wscale=m.use_wscale,
        use_pixelnorm=m.use_pixelnorm,
        use_leakyrelu=m.use_leakyrelu,
        use_batchnorm=m.use_batchnorm,
        tanh_output=m.tanh_output,
        **widths,
    )
    critic = progan.Critic(
        resolution=config.data.resolution,
        num_classes=num_classes if m.ac_head else 0,
        use_wscale=m.use_wscale,
        use_layernorm=m.use_layernorm,
        mbstd_group_size=m.mbstd_group_size,
        mbstd_mesh=mesh if m.mbstd_per_device else None,
        mbdisc_kernels=m.mbdisc_kernels,
        downscale_before_activation=m.downscale_before_activation,
        **widths,
    )
    return generator, critic


def process_reals(
    images: jax.Array, key: jax.Array, config: ml_collections.ConfigDict, stage: Stage, alpha
) -> jax.Array:
    """uint8 [N, R, R, C] at the final resolution -> float [N, 2^r, 2^r, C] for the stage.

    TF `process_reals`: [-1, 1], mirror augment, box-filter to the stage resolution (the dataset's
    precomputed LOD), then FadeLOD: lerp(x, up2(down2(x)), lod - floor(lod)) = lerp(old, x, alpha).
    """
    x = data.to_float(images, key, config.data.flip, config.data.dequantize)
    factor = images.shape[1] // stage.resolution
    if factor > 1:
        x = layers.downsample_mean(x, factor)
    if stage.fade_in:  # alpha·x + (1 - alpha)·old: exactly x once the fade is complete
        x = alpha * x + (1.0 - alpha) * layers.upsample_nearest(layers.downsample_mean(x))
    return x


def upsample_to(images: jax.Array, resolution: int) -> jax.Array:
    """Nearest upscale to `resolution` (the references return full-resolution images at any lod)."""
    factor = resolution // images.shape[1]
    return layers.upsample_nearest(images, factor) if factor > 1 else images


# ----------------------------------------------------------------------------------------------
# The LSGAN variant's D noise (its loss is `losses.pggan_lsgan`).
# ----------------------------------------------------------------------------------------------


def uses_noise(config: ml_collections.ConfigDict) -> bool:
    """The adaptive D noise of paper App. B is part of the LSGAN variant (coef 0 turns it off)."""
    return config.loss == "pggan_lsgan" and config.lsgan_noise.coef > 0


def noise_strength(config: ml_collections.ConfigDict, average) -> jax.Array:
    """Theano train_gan: gdrop_strength = coef · max(avg - limit, 0)^exponent."""
    n = config.lsgan_noise
    return n.coef * jnp.maximum(average - n.limit, 0.0) ** n.exponent


# ----------------------------------------------------------------------------------------------
# Optimiser and state.
# ----------------------------------------------------------------------------------------------


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Adam's moment estimates only; the learning rate is a traced input of each step.

    The rate changes per resolution and with the ramp-up, while the step is compiled per stage,
    so it is multiplied in by the step (`-lr · update`) rather than baked into a schedule.
    """
    return optax.scale_by_adam(b1=config.optim.b1, b2=config.optim.b2, eps=config.optim.eps)


def create_state(config, generator, critic, tx, image_shape, mesh) -> State:
    """`gan.create_state` (full final-resolution networks) plus the LSGAN noise average."""
    # The critic is initialised without the per-device mesh: init runs on a batch of 2.
    init_critic = critic.clone(mbstd_mesh=None)
    state = gan.create_state(config, generator, init_critic, tx, tx, image_shape, mesh)
    if uses_noise(config):
        state["d_noise_average"] = jax.device_put(
            jnp.zeros((), jnp.float32), parallel.replicated(mesh)
        )
    return state


def abstract_state(config, channels: int, num_classes: int, mesh) -> State:
    """ShapeDtypeStructs (replicated on `mesh`) of a progressive run's train state, for restoring."""
    generator, critic = build_models(config, channels, num_classes)
    shape = (config.data.resolution, config.data.resolution, channels)
    tree = jax.eval_shape(
        lambda: create_state(config, generator, critic, make_optimizer(config), shape, mesh)
    )
    return checkpoint.abstract_like(tree, parallel.replicated(mesh))


def reset_optimizers(state: State, tx: optax.GradientTransformation, mesh) -> State:
    """Fresh Adam moments and step count for both networks (`reset_optimizer_state`).

    Placed like the rest of the state (replicated), so the compiled step sees the same shardings.
    """
    init = jax.jit(lambda g, d: (tx.init(g), tx.init(d)), out_shardings=parallel.replicated(mesh))
    g_opt, d_opt = init(state["g_params"], state["d_params"])
    return {**state, "g_opt": g_opt, "d_opt": d_opt}


# ----------------------------------------------------------------------------------------------
# The train step, compiled once per stage (resolution).
# ----------------------------------------------------------------------------------------------


def full_resolution_penalty(penalty, critic_fn, reals, fakes, real_scores, key, factor: int):
    """`penalty` as the references take it: w.r.t. the *final-resolution* images, while the
    networks run at the stage resolution, `factor` = final / stage resolution = 2^floor(lod).

    TF `D_wgangp_acgan` differentiates D w.r.t. full-resolution mixed images (reals upscaled by
    UpscaleLOD, G's output upscaled, D's first op a box downscale by 2^floor(lod)); the Theano
    code repeats the reals by 2^min_lod for the same reason. With x = nearest-upscale(y) and D
    seeing box-downscale(x) = y, ‖∇ₓD‖ = ‖∇_y D‖ / factor: the critic may be `factor` times
    steeper at a coarse stage than the target γ says (8× at 4×4 for CIFAR-10). The same numbers
    without full-resolution arrays: the penalty sees factor·y and the critic of y'/factor, whose
    input gradient is ∇_y D / factor; a power-of-two scaling, exact in floating point.
    """
    return penalty(
        lambda images: critic_fn(images / factor), factor * reals, factor * fakes, real_scores, key
    )


def make_train_step(config, generator, critic, tx, num_classes: int, mesh, stage: Stage):
    """`train_step(state, batch, inputs) -> (state, metrics)` for one stage, jitted.

    batch: {'image': uint8 [n_critic, B, R, R, C] at the final resolution, 'label': int32
    [n_critic, B]}, sharded on axis 1. inputs: {'alpha', 'g_lr', 'd_lr'}: float32 scalars.
    """
    loss = losses.get(config.loss)
    penalty_terms = step_parts.penalty_terms(config)
    conditional_g = generator.num_classes > 0
    noisy = uses_noise(config)
    r, final_log2 = stage.res_log2, progan.resolution_log2(config.data.resolution)
    # The networks compute in config.compute_dtype (alpha and the noise strength cast with their
    # inputs); params, optimizer and losses stay float32.
    generator_apply, critic_apply = step_parts.in_compute_dtype(config, generator, critic)
    shard_batch = functools.partial(step_parts.shard_batch, mesh=mesh)
    fake_labels = functools.partial(
        step_parts.fake_labels, num_classes=num_classes, conditional=conditional_g, mesh=mesh
    )

    def generate(g_params, key, labels, alpha):
        z = shard_batch(gan.sample_latents(config, key, labels.shape[0]))
        alpha = alpha if stage.fade_in else None
        return generator_apply({"params": g_params}, z, labels, res_log2=r, alpha=alpha)

    def critic_fn(d_params, images, alpha, strength, key):
        return critic_apply(
            {"params": d_params},
            images,
            res_log2=r,
            alpha=alpha if stage.fade_in else None,
            noise_strength=strength if noisy else None,
            rngs={"noise": key} if noisy else None,
        )

    def critic_loss(d_params, fakes, reals, labels, alpha, strength, key):
        noise_key, *penalty_keys = jax.random.split(key, 1 + len(penalty_terms))
        # One noise draw per critic evaluation, as each Theano D.eval_nd draws its own.
        real_key, fake_key = jax.random.split(noise_key)
        real_scores, real_logits = critic_fn(d_params, reals, alpha, strength, real_key)
        fake_scores, fake_logits = critic_fn(d_params, fakes, alpha, strength, fake_key)
        terms = {"adversarial": loss.critic(real_scores, fake_scores)}
        total = terms["adversarial"]
        fn = lambda images: critic_fn(d_params, images, alpha, strength, fake_key)[0]
        for (name, weight, penalty), k in zip(penalty_terms, penalty_keys):
            terms[name] = full_resolution_penalty(
                penalty, fn, reals, fakes, real_scores, k, factor=2 ** (final_log2 - r)
            )
            total = total + weight * terms[name]
        if critic.num_classes:  # D_wgangp_acgan: class loss on reals (and on fakes)
            terms["ac"] = losses.classification(real_logits, labels)
            if config.ac_on_fakes:
                terms["ac"] = terms["ac"] + losses.classification(fake_logits, labels)
            total = total + config.ac_weight_d * terms["ac"]
        terms["real_score"], terms["fake_score"] = jnp.mean(real_scores), jnp.mean(fake_scores)
        return total, terms

    def generator_loss(g_params, d_params, z_key, labels, alpha, strength, noise_key):
        fakes = generate(g_params, z_key, labels, alpha)
        scores, logits = critic_fn(d_params, fakes, alpha, strength, noise_key)
        terms = {"adversarial": loss.generator(scores)}
        total = terms["adversarial"]
        if critic.num_classes:
            terms["ac"] = losses.classification(logits, labels)
            total = total + config.ac_weight_g * terms["ac"]
        return total, terms

    def apply(params, opt_state, grads, lr):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, jax.tree.map(lambda u: -lr * u, updates)), opt_state

    def train_step(state, batch, inputs):
        alpha, g_lr, d_lr = inputs["alpha"], inputs["g_lr"], inputs["d_lr"]
        key = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), state["step"])
        critic_key, g_key = jax.random.split(key)
        strength = noise_strength(config, state["d_noise_average"]) if noisy else 0.0
        g_params_before = state["g_params"]
        metrics = {}
        # Unrolled: XLA:CPU runs convolutions much slower inside a loop; n_critic is small.
        for i in range(batch["image"].shape[0]):
            augment_key, z_key, loss_key = jax.random.split(jax.random.fold_in(critic_key, i), 3)
            labels = batch["label"][i]
            reals = shard_batch(process_reals(batch["image"][i], augment_key, config, stage, alpha))
            # The critic's fakes use the real minibatch's labels (TF D_wgangp_acgan).
            fakes = jax.lax.stop_gradient(generate(g_params_before, z_key, labels, alpha))
            (d_total, d_terms), d_grads = jax.value_and_grad(critic_loss, has_aux=True)(
                state["d_params"], fakes, reals, labels, alpha, strength, loss_key
            )
            d_params, d_opt = apply(state["d_params"], state["d_opt"], d_grads, d_lr)
            d_step = {"d_loss": d_total, "d_grad_norm": optax.tree.norm(d_grads)}
            d_step.update({f"d_{k}": v for k, v in d_terms.items()})
            metrics = {
                k: metrics.get(k, 0.0) + v / batch["image"].shape[0] for k, v in d_step.items()
            }
            if config.simultaneous_updates:  # Theano separate_funcs=False: G sees the old D
                g_inputs = (state["d_params"], z_key, labels, loss_key)
            state = {**state, "d_params": d_params, "d_opt": d_opt}
            if noisy:  # Theano: avg = β·avg + (1 - β)·clip(D loss, 0, 1), read at the next step
                beta = config.lsgan_noise.beta
                average = beta * state["d_noise_average"] + (1 - beta) * jnp.clip(d_total, 0, 1)
                state["d_noise_average"] = average
        if not config.simultaneous_updates:
            label_key, z_key, noise_key = jax.random.split(g_key, 3)
            labels = fake_labels(label_key, batch["label"].shape[1])
            g_inputs = (state["d_params"], z_key, labels, noise_key)
        d_params_for_g, z_key, labels, noise_key = g_inputs
        (g_total, g_terms), g_grads = jax.value_and_grad(generator_loss, has_aux=True)(
            g_params_before, d_params_for_g, z_key, labels, alpha, strength, noise_key
        )
        g_params, g_opt = apply(g_params_before, state["g_opt"], g_grads, g_lr)
        # Gs <- lerp(G, Gs, β), with G before this iteration's update (TF Gs_update_op).
        ema_params = optax.incremental_update(
            g_params_before, state["ema_params"], 1.0 - gan.ema_decay(config, state["step"])
        )
        state = {
            **state,
            "g_params": g_params,
            "g_opt": g_opt,
            "ema_params": ema_params,
            "step": state["step"] + 1,
        }
        metrics.update(
            {
                "g_loss": g_total,
                "g_grad_norm": optax.tree.norm(g_grads),
                **{f"g_{k}": v for k, v in g_terms.items()},
                "alpha": alpha,
                "g_lr": g_lr,
                "d_lr": d_lr,
            }
        )
        if noisy:
            metrics["d_noise_strength"] = strength
        return state, metrics

    if config.get("d_fake_labels", "real") != "real":
        raise errors.ConfigError(
            "The progressive critic's fakes use the real minibatch's labels (TF)."
        )
    if config.simultaneous_updates and config.n_critic != 1:
        raise errors.ConfigError(
            "config.simultaneous_updates=True updates G and D from one minibatch (Theano "
            "separate_funcs=False) and needs config.n_critic=1."
        )
    return loop.jit_guarded_step(
        train_step, mesh, replicated_inputs=1, keep_old_state=loop.keeps_old_state(config)
    )


def step_inputs(schedule: Schedule) -> dict[str, np.ndarray]:
    return {
        "alpha": np.float32(schedule.alpha),
        "g_lr": np.float32(schedule.g_lr),
        "d_lr": np.float32(schedule.d_lr),
    }


# ----------------------------------------------------------------------------------------------
# Sampling.
# ----------------------------------------------------------------------------------------------


def make_stage_sampler(generator: progan.Generator, stage: Stage, mesh=None):
    """`sample(params, z, labels, alpha) -> images [N, 2^r, 2^r, C]` at the stage resolution, jitted.

    The output is replicated on `mesh` (a sample grid is small and every process can read it).
    Float32 whatever `config.compute_dtype` (`jaxgan/core/precision.py`).
    """

    def sample(params, z, labels, alpha):
        return generator.apply(
            {"params": params},
            z,
            labels,
            res_log2=stage.res_log2,
            alpha=alpha if stage.fade_in else None,
        )

    if mesh is None:
        return jax.jit(sample)
    return jax.jit(sample, out_shardings=parallel.replicated(mesh))


def make_eval_sampler(
    config: ml_collections.ConfigDict, meta: dict, channels: int, num_classes: int
) -> Callable[[Any, jax.Array, jax.Array], jax.Array]:
    """`sample(ema_params, z [N, z_dim], labels int [N]) -> images [N, R, R, C]` in [-1, 1], jitted.

    R is the run's final resolution, whatever the checkpoint's lod: the generator runs at the
    checkpoint's stage and fade weight and is nearest-upscaled, as `Gs.run` returns
    full-resolution images at any lod; values are clipped to [-1, 1] (the uint8 conversion of
    the references saturates there anyway). z as `gan.sample_latents(config, key, N)` draws it.

    Reads `meta["lod"]` (float; every checkpoint of this loop stores the lod of its last step).
    """
    return EvalSamplers(config, channels, num_classes)(meta)


class EvalSamplers:
    """`make_eval_sampler` for many checkpoints of one run: one compiled generator per stage
    (resolution and whether it fades), with α an argument, so the checkpoints of one stage at
    different lods share it instead of compiling once each."""

    def __init__(self, config: ml_collections.ConfigDict, channels: int, num_classes: int):
        self.config = config
        self.generator, _ = build_models(config, channels, num_classes)
        self._by_stage: dict[Stage, Callable] = {}

    def _compiled(self, stage: Stage) -> Callable:
        if stage not in self._by_stage:
            at_stage = make_stage_sampler(self.generator, stage)

            def sample(params, z, labels, alpha):
                images = at_stage(params, z, labels, alpha)
                return jnp.clip(upsample_to(images, self.config.data.resolution), -1.0, 1.0)

            self._by_stage[stage] = jax.jit(sample)
        return self._by_stage[stage]

    def __call__(self, meta: dict) -> Callable[[Any, jax.Array, jax.Array], jax.Array]:
        if "lod" not in meta:
            raise KeyError(
                "Checkpoint meta has no 'lod': it was not written by jaxgan.methods.progressive "
                f"(meta keys: {sorted(meta)})."
            )
        lod = float(meta["lod"])
        config = self.config
        stage = stage_of(
            lod, progan.resolution_log2(config.data.resolution), first_res_log2(config)
        )
        compiled, alpha = self._compiled(stage), np.float32(fade_alpha(lod))
        return lambda params, z, labels: compiled(params, z, labels, alpha)


# ----------------------------------------------------------------------------------------------
# The method on the run loop.
# ----------------------------------------------------------------------------------------------


class Trainer:
    """Progressive growing's side of a run (`registry.Trainer`): the schedule decides, before each
    step, the stage (compiled once per resolution), the minibatch, the learning rates and alpha;
    Adam is reset where floor(lod) or ceil(lod) changes, and a resolution's picture is written
    when the run leaves it."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str, mesh):
        self.config, self.workdir, self.mesh = config, workdir, mesh
        self.num_devices = mesh.devices.size
        self.source, self.channels, _ = data.open_run_source(config)
        self.final_log2 = progan.resolution_log2(config.data.resolution)
        self.first_log2 = first_res_log2(config)
        self.generator, self.critic = build_models(
            config, self.channels, self.source.num_classes, mesh
        )
        self.tx = make_optimizer(config)
        self.sample_z, self.sample_labels = gan.fixed_latents(config, self.source.num_classes)
        self.batch_sharding = parallel.sharded_on(mesh, 1)
        self.steps: dict[Stage, Callable] = {}  # compiled once per stage
        self.samplers: dict[Stage, Callable] = {}
        self.total_nimg = int(round(config.schedule.total_kimg * 1000))
        self.batches = None
        self.cur_nimg, self.cursor = 0, 0
        self.last_lod = None  # the lod of the last step taken: it decides the next optimizer reset

    def init_state(self) -> State:
        resolution = self.config.data.resolution
        shape = (resolution, resolution, self.channels)
        return create_state(self.config, self.generator, self.critic, self.tx, shape, self.mesh)

    def start(self, meta: dict) -> None:
        self.cur_nimg = meta.get("cur_nimg", 0)
        self.cursor = meta.get("data_cursor", 0)
        self.last_lod = meta.get("lod")
        if self.last_lod is not None:
            logging.info("At %.1f kimg, lod %.4f.", self.cur_nimg / 1000, self.last_lod)

    def step(self, state: State) -> tuple[State, dict]:
        config = self.config
        schedule = schedule_at(config, self.cur_nimg, self.num_devices)
        stage = schedule.stage
        if self.last_lod is not None and lod_bounds(schedule.lod) != lod_bounds(self.last_lod):
            previous = stage_of(self.last_lod, self.final_log2, self.first_log2)
            if previous.res_log2 != stage.res_log2:  # a resolution is complete: its picture
                self._write_resolution_grid(state, self.last_lod)
            if config.schedule.reset_optimizer:  # TF reset_opt_for_new_lod
                state = reset_optimizers(state, self.tx, self.mesh)
            logging.info(
                "%.1f kimg: lod %.3f, %s %dx%d.",
                schedule.kimg,
                schedule.lod,
                "fading in" if schedule.lod % 1 else "stabilising",
                stage.resolution,
                stage.resolution,
            )
        if stage not in self.steps:
            logging.info(
                "Compiling the %dx%d step at %.1f kimg (lod %.3f, minibatch %d).",
                stage.resolution,
                stage.resolution,
                schedule.kimg,
                schedule.lod,
                schedule.minibatch,
            )
            self.steps[stage] = make_train_step(
                config,
                self.generator,
                self.critic,
                self.tx,
                self.source.num_classes,
                self.mesh,
                stage,
            )
        if self.batches is None or self.batches.batch_size != schedule.minibatch:
            if self.batches is not None:
                self.cursor = self.batches.cursor
                self.batches.close()
            self.batches = gan.make_batches(
                config, self.source, self.channels, schedule.minibatch, self.cursor
            )
        batch = data.to_global(next(self.batches), self.batch_sharding)
        state, metrics = self.steps[stage](state, batch, step_inputs(schedule))
        self.cur_nimg += config.n_critic * schedule.minibatch
        self.last_lod = schedule.lod
        progress = {
            "kimg": self.cur_nimg / 1000,
            "lod": self.last_lod,
            "resolution": stage.resolution,
            "minibatch": schedule.minibatch,
        }
        return state, {**metrics, **progress}

    def finished(self, step: int) -> bool:
        return self.cur_nimg >= self.total_nimg

    def progress(self, step: int) -> tuple[int, int, str]:
        return self.cur_nimg // 1000, self.total_nimg // 1000, "kimg"

    def images_seen(self) -> int:
        return self.cur_nimg

    def meta(self) -> dict:
        cursor = self.batches.cursor if self.batches is not None else self.cursor
        return {"data_cursor": cursor, "cur_nimg": self.cur_nimg, "lod": self.last_lod}

    def _sample(self, params, lod: float) -> np.ndarray:
        """The generator's images for the fixed latents at `lod`, [N, 2^r, 2^r, C]."""
        stage = stage_of(lod, self.final_log2, self.first_log2)
        if stage not in self.samplers:
            self.samplers[stage] = make_stage_sampler(self.generator, stage, self.mesh)
        alpha = np.float32(fade_alpha(lod))
        sample = self.samplers[stage](params, self.sample_z, self.sample_labels, alpha)
        return np.asarray(jax.device_get(sample))

    def sample_grid(self, state: State) -> np.ndarray:
        images = self._sample(state["ema_params"], self.last_lod)
        return run_files.make_grid(upsample_to(images, self.config.data.resolution))

    def _write_resolution_grid(self, state: State, lod: float) -> None:
        """`<workdir>/resolutions/<res>x<res>.png`: the EMA generator when it leaves a resolution."""
        if jax.process_index() == 0:
            stage = stage_of(lod, self.final_log2, self.first_log2)
            name = f"{stage.resolution:04d}x{stage.resolution:04d}.png"
            grid = run_files.make_grid(self._sample(state["ema_params"], lod))
            run_files.save_png(os.path.join(self.workdir, "resolutions", name), grid)

    def finish(self, state: State) -> None:
        if self.last_lod is not None:
            self._write_resolution_grid(state, self.last_lod)

    def close(self) -> None:
        if self.batches is not None:
            self.batches.close()


def bench_step(
    config, mesh, stage_resolution: int = 0, stage_alpha: float = 0.5
) -> benchmark.BenchStep:
    """The Trainer's step at one fixed stage: networks at `stage_resolution` (0: the final one),
    fading in with `stage_alpha` where that resolution is not the first; the stage's minibatch from the
    schedule's table, n_critic real batches at the final resolution (as training feeds them)."""
    resolution = stage_resolution or config.data.resolution
    final_log2 = progan.resolution_log2(config.data.resolution)
    res_log2 = progan.resolution_log2(resolution)
    stage = Stage(res_log2, res_log2 > first_res_log2(config))
    # A kimg inside this stage's fade (or stable phase, for the first resolution) gives its
    # minibatch and learning rates; alpha is then set as asked.
    lod = final_log2 - res_log2 + (1.0 - stage_alpha if stage.fade_in else 0.0)
    schedule = dataclasses.replace(schedule_at(config, 0, mesh.devices.size), lod=lod, stage=stage)
    table = parse_table(config.schedule.batch_by_resolution, int)
    batch_size = table.get(resolution, config.batch_size)
    channels = gan.synthetic_channels(config)
    num_classes = 10 if config.model.ac_head else 0
    generator, critic = build_models(config, channels, num_classes, mesh)
    tx = make_optimizer(config)
    shape = (config.data.resolution, config.data.resolution, channels)
    state = create_state(config, generator, critic, tx, shape, mesh)
    step_fn = make_train_step(config, generator, critic, tx, num_classes, mesh, stage)
    count = config.n_critic * batch_size
    batch = data.to_global(
        {
            "image": benchmark.random_images(count, config.data.resolution, channels).reshape(
                config.n_critic, batch_size, *shape
            ),
            "label": np.zeros((config.n_critic, batch_size), np.int32),
        },
        parallel.sharded_on(mesh, 1),
    )
    return benchmark.BenchStep(step_fn, state, (batch, step_inputs(schedule)), count)


METHOD = registry.Method(
    trainer=Trainer,
    sampler=lambda config, channels, num_classes, mesh: EvalSamplers(config, channels, num_classes),
    is_conditional=generator_is_conditional,
    safe_to_change=("schedule.total_kimg", "schedule.lr_by_resolution"),
    bench_step=bench_step,
    # Eigen's convolutions ran the 16x16 fade-in step 1.5x faster than YNNPACK's (performance.md).
    cpu_convolutions="eigen",
)
