"""The GAN method (DCGAN, WGAN-GP, AC-GAN, SNGAN): models, state, the train step, its `Trainer`.

The run itself (resume, logs, samples, checkpoints, non-finite updates, preemption) is
`jaxgan/training/loop.py`; this module supplies what differs, as `METHOD` in the registry
(`jaxgan/training/registry.py`). Its pieces (`build_models`, `create_state`, `make_train_step`, ...) are plain
functions that the progressive method, the benchmark and the evaluator reuse.

One call of the jitted `train_step` is one generator iteration: `n_critic` critic updates, each on
a fresh real batch (a Python loop, unrolled in the compiled program), then one generator update and the EMA update — the loop of
WGAN-GP's `gan_cifar_resnet.py` (DCGAN is n_critic = 1 with the non-saturating loss).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jaxgan import data
from jaxgan.core import errors, parallel, run_files
from jaxgan.models import dcgan, layers, resnet, sngan
from jaxgan.training import augment, benchmark, loop, losses, penalties, registry, step_parts

State = dict[str, Any]


# ----------------------------------------------------------------------------------------------
# Models.
# ----------------------------------------------------------------------------------------------


def is_conditional(config: ml_collections.ConfigDict) -> bool:
    """Whether the run uses class labels (a conditional generator or a label-reading critic)."""
    m = config.model
    return bool(m.conditional_generator or m.ac_head or m.projection)


def build_models(
    config: ml_collections.ConfigDict, channels: int, num_classes: int
) -> tuple[nn.Module, nn.Module]:
    """The (generator, critic) pair named by `config.model.name` at `config.data.resolution`."""
    m, resolution = config.model, config.data.resolution
    if is_conditional(config) and not num_classes:
        raise errors.ConfigError(
            f"config.model asks for a conditional model but dataset "
            f"{config.data.dataset!r} has no class labels."
        )
    g_classes = num_classes if m.conditional_generator else 0
    ac_classes = num_classes if m.ac_head else 0
    if m.projection and m.name != "sngan":
        raise errors.ConfigError("config.model.projection=True needs config.model.name='sngan'.")
    if m.ac_head and m.name == "sngan":
        raise errors.ConfigError(
            "The SNGAN critic has no AC head: use config.model.projection=True."
        )
    g_kwargs = dict(num_classes=g_classes, conditioning=m.conditioning)
    families = {
        ("dcgan", resolution): lambda: (
            dcgan.Generator(resolution, channels, m.g_width, **g_kwargs),
            dcgan.Critic(resolution, m.d_width, m.critic_norm, ac_classes),
        ),
        ("resnet", 32): lambda: (
            resnet.Generator32(channels, m.g_width, **g_kwargs),
            resnet.Critic32(m.d_width, ac_classes),
        ),
        ("resnet", 64): lambda: (
            resnet.Generator64(channels, m.g_width, **g_kwargs),
            resnet.Critic64(m.d_width, ac_classes),
        ),
        ("sngan", 32): lambda: (
            sngan.Generator32(channels, m.g_width, **g_kwargs),
            sngan.Critic32(m.d_width, num_classes if m.projection else 0),
        ),
    }
    if (m.name, resolution) not in families:
        offered = ", ".join(f"{name} at {res}" for name, res in families if name != "dcgan")
        raise errors.ConfigError(
            f"config.model.name={m.name!r} at config.data.resolution={resolution} does not exist; "
            f"there are dcgan (any power of two >= 8), {offered}."
        )
    return families[(m.name, resolution)]()


def check_critic_is_penalisable(config: ml_collections.ConfigDict) -> None:
    """An input-gradient penalty is per-sample only if the critic does not mix samples (no BN)."""
    gradient_penalties = penalties.INPUT_GRADIENT_PENALTIES & set(config.penalties.keys())
    if gradient_penalties and config.model.name == "dcgan" and config.model.critic_norm == "batch":
        raise errors.ConfigError(
            f"config.penalties uses {sorted(gradient_penalties)}, which needs per-sample input gradients, "
            f"but config.model.critic_norm='batch' mixes samples. Set --config.model.critic_norm=layer "
            f"(or none), as WGAN-GP does."
        )


def sample_latents(config: ml_collections.ConfigDict, key: jax.Array, n: int) -> jax.Array:
    if config.model.z_dist == "normal":
        return jax.random.normal(key, (n, config.model.z_dim))
    if config.model.z_dist == "uniform":  # Newmu/dcgan_code: U(-1, 1)
        return jax.random.uniform(key, (n, config.model.z_dim), minval=-1.0, maxval=1.0)
    raise errors.ConfigError(
        f"config.model.z_dist={config.model.z_dist!r}: expected 'normal' or 'uniform'."
    )


# ----------------------------------------------------------------------------------------------
# Optimisers and state.
# ----------------------------------------------------------------------------------------------


def learning_rate_fn(config: ml_collections.ConfigDict, base_lr: float) -> Callable[[Any], Any]:
    """lr as a function of the generator iteration: constant, or WGAN-GP's lr·max(0, 1 - it/ITERS)."""
    if config.optim.decay == "constant":
        return lambda step: base_lr * jnp.ones_like(jnp.asarray(step, jnp.float32))
    if config.optim.decay == "linear":
        return lambda step: (
            base_lr * jnp.maximum(0.0, 1.0 - jnp.asarray(step, jnp.float32) / config.num_steps)
        )
    raise errors.ConfigError(
        f"config.optim.decay={config.optim.decay!r}: expected 'constant' or 'linear'."
    )


def make_optimizer(
    config: ml_collections.ConfigDict,
    base_lr: float,
    updates_per_step: int,
    freeze_blocks: int = 0,
) -> optax.GradientTransformation:
    """Adam whose lr follows the generator iteration (the critic updates n_critic times per step).

    `freeze_blocks` > 0 (the critic's, `config.d_freeze_blocks`): FreezeD, see `critic_blocks`.
    """
    lr = learning_rate_fn(config, base_lr)
    adam = optax.adam(
        lambda count: lr(count // updates_per_step),
        b1=config.optim.b1,
        b2=config.optim.b2,
        eps=config.optim.eps,
    )
    if not freeze_blocks:
        return adam  # the same optimiser state as before FreezeD existed: old checkpoints restore
    # Gradients of frozen parameters are zeroed before Adam: their moments stay 0, so their update
    # 0/(sqrt(0) + eps) is exactly 0 and they stay bit-equal (PyTorch's requires_grad=False).
    frozen = lambda d_params: frozen_critic_mask(d_params, freeze_blocks)
    return optax.chain(optax.masked(optax.set_to_zero(), frozen), adam)


# FreezeD's blocks: the critic's top-level parameter names (flax module names), grouped into the
# blocks an image passes through, in input order; the head (score, AC / projection outputs) is
# never a block. A name matching none of these rules is an error, so a new critic family has to
# say here how it splits.
#   dcgan.Critic     1: Conv0 | 2: Conv1, Norm1 | ... | n: Conv{n-1}, Norm{n-1}
#                    (head: Output, ClassOutput)
#   resnet.Critic32  1: Block1Conv1, Block1Conv2, Block1Shortcut | 2: Block2 | 3: Block3 | 4: Block4
#                    (head: Output, ACGANOutput)
#   resnet.Critic64  1: Input (the first 3×3 conv) | 2: Res1 | ... | 5: Res4
#                    (head: Output, ACGANOutput)
#   sngan.Critic32   1: Block1 | ... | 4: Block4  (head: Output, ClassEmbedding)
# Only parameters freeze: `d_state` (the SNGAN critic's spectral-norm power-iteration vectors) keeps
# advancing on frozen layers too, as PyTorch's spectral_norm buffers do under requires_grad=False.
_CRITIC_BLOCK_RULES = (
    (re.compile(r"(?:Conv|Norm)(\d+)"), 1),  # dcgan: Conv0 is block 1; Norm i follows Conv i
    (re.compile(r"Block(\d+)\w*"), 0),  # resnet 32 and sngan
    (re.compile(r"Res(\d+)"), 1),  # resnet 64: after its Input conv
)
_CRITIC_HEADS = frozenset({"Output", "ClassOutput", "ACGANOutput", "ClassEmbedding"})


def critic_blocks(d_params) -> list[list[str]]:
    """The critic's blocks in input order, each the list of its top-level parameter names."""
    blocks: dict[int, list[str]] = {}
    for name in sorted(d_params):
        if name in _CRITIC_HEADS:
            continue
        if name == "Input":  # resnet.Critic64's first conv
            number = 1
        else:
            matches = [(rule.fullmatch(name), offset) for rule, offset in _CRITIC_BLOCK_RULES]
            found = [int(m.group(1)) + offset for m, offset in matches if m]
            if not found:
                raise ValueError(
                    f"Critic parameter {name!r} is in no FreezeD block: add its family's rule to "
                    f"jaxgan/methods/gan.py _CRITIC_BLOCK_RULES."
                )
            number = found[0]
        blocks.setdefault(number, []).append(name)
    return [blocks[number] for number in sorted(blocks)]


def frozen_critic_mask(d_params, freeze_blocks: int):
    """A tree like `d_params`: True on every parameter of the critic's first `freeze_blocks` blocks."""
    blocks = critic_blocks(d_params)
    if not 0 <= freeze_blocks <= len(blocks):
        raise errors.ConfigError(
            f"config.d_freeze_blocks={freeze_blocks}: this critic has {len(blocks)} blocks "
            f"({' | '.join(', '.join(b) for b in blocks)}), so it must be in 0..{len(blocks)} "
            f"(0: nothing frozen)."
        )
    frozen = {name for block in blocks[:freeze_blocks] for name in block}
    return {
        name: jax.tree.map(lambda _: name in frozen, subtree) for name, subtree in d_params.items()
    }


def ema_decay(config: ml_collections.ConfigDict, step) -> jax.Array | float:
    """The generator EMA's decay at `step` (the number of updates averaged so far).

    With `config.ema_warmup`, tf.train.ExponentialMovingAverage's num_updates rule
    min(decay, (1 + step) / (10 + step)): the average forgets its random initialisation within the
    first few hundred steps instead of ~1/(1 - decay) steps, which short CPU runs need.
    """
    if not config.ema_warmup:
        return config.ema_decay
    return jnp.minimum(config.ema_decay, (1.0 + step) / (10.0 + step))


def create_state(config, generator, critic, g_tx, d_tx, image_shape, mesh) -> State:
    """Initialises the train state directly on the mesh (replicated).

    Returns {step, rng, g_params, d_params, d_state, ema_params, g_opt, d_opt}: one pytree, so that
    one jitted step, one checkpoint and one donation cover all of it. `d_state` holds the critic's
    non-trainable variables (spectral norm's power-iteration vectors), empty for most critics.
    """

    def init(key):
        g_key, d_key, z_key = jax.random.split(key, 3)
        z = sample_latents(config, z_key, 2)
        labels = jnp.zeros((2,), jnp.int32)
        g_params = generator.init(g_key, z, labels)["params"]
        d_variables = critic.init(d_key, jnp.zeros((2, *image_shape)), labels)
        d_params = d_variables.pop("params")
        return {
            "step": jnp.zeros((), jnp.int32),
            "rng": jax.random.key_data(jax.random.key(config.seed)),
            "g_params": g_params,
            "d_params": d_params,
            "d_state": d_variables,
            # A copy: a state that aliases buffers cannot be donated.
            "ema_params": jax.tree.map(jnp.copy, g_params),
            "g_opt": g_tx.init(g_params),
            "d_opt": d_tx.init(d_params),
        }

    # Initial weights come from the 'rbg' generator: XLA:CPU compiles RngBitGenerator draws much
    # faster than the ~40 threefry draws of an init. The step's own randomness stays threefry,
    # which (unlike rbg) draws the same numbers however the batch is sharded.
    init_key = jax.random.key(config.seed, impl="rbg")
    return jax.jit(init, out_shardings=parallel.replicated(mesh))(init_key)


# ----------------------------------------------------------------------------------------------
# The train step.
# ----------------------------------------------------------------------------------------------


def _global_norm(tree) -> jax.Array:
    return optax.tree.norm(tree)


def make_train_step(config, generator, critic, g_tx, d_tx, num_classes: int, mesh):
    """Returns `train_step(state, batch) -> (state, metrics)`, jitted with explicit shardings.

    batch: {'image': uint8 [n_critic, B, H, W, C], 'label': int32 [n_critic, B]} sharded on axis 1.
    """
    loss = losses.get(config.loss)
    penalty_terms = step_parts.penalty_terms(config)
    conditional = is_conditional(config)
    if config.d_fake_labels not in ("real", "uniform"):
        raise errors.ConfigError(
            f"config.d_fake_labels={config.d_fake_labels!r}: expected real or uniform."
        )
    # DiffAugment (jaxgan/training/augment.py): every image the critic sees goes through T, in both steps.
    policy = config.get("diffaugment", "")  # .get: configs saved by older versions lack it
    augment.parse_policy(policy)  # a typo fails here, naming the field
    d_lr = learning_rate_fn(config, config.optim.d_lr)
    g_lr = learning_rate_fn(config, config.optim.g_lr)
    # The networks compute in config.compute_dtype; params, optimizer and losses stay float32.
    generator_apply, critic_apply = step_parts.in_compute_dtype(config, generator, critic)
    shard_batch = functools.partial(step_parts.shard_batch, mesh=mesh)
    fake_labels = functools.partial(
        step_parts.fake_labels, num_classes=num_classes, conditional=conditional, mesh=mesh
    )

    def generate(g_params, key, labels):
        z = shard_batch(sample_latents(config, key, labels.shape[0]))
        return generator_apply({"params": g_params}, z, labels)

    def apply_critic(d_params, d_state, images, labels):
        return critic_apply({"params": d_params, **d_state}, images, labels)

    def critic_loss(d_params, d_state, g_params, reals, labels, key):
        real_augment_key = fake_augment_key = None  # diff_augment with policy '' is the identity
        if policy:  # split only then: without DiffAugment every other draw is what it always was
            key, real_augment_key, fake_augment_key = jax.random.split(key, 3)
        augment_reals = lambda x: augment.diff_augment(x, real_augment_key, policy)
        z_key, label_key, *penalty_keys = jax.random.split(key, 2 + len(penalty_terms))
        # The critic's fakes use the real minibatch's labels (gan_cifar_resnet, PGGAN D_wgangp_acgan,
        # TF-GAN), or fresh uniform labels (sngan_projection's updater).
        fake_y = labels if config.d_fake_labels == "real" else fake_labels(label_key, len(labels))
        fakes = jax.lax.stop_gradient(generate(g_params, z_key, fake_y))
        # The critic's state (spectral norm's power iteration) advances once per critic step, on the
        # real batch; every other call of this step, the penalty's inner gradient included, reads it.
        (real_scores, real_logits), d_state = critic_apply(
            {"params": d_params, **d_state}, augment_reals(reals), labels, mutable=list(d_state)
        )
        fake_scores, fake_logits = apply_critic(
            d_params, d_state, augment.diff_augment(fakes, fake_augment_key, policy), fake_y
        )
        terms = {"adversarial": loss.critic(real_scores, fake_scores)}
        total = terms["adversarial"]
        for (name, weight, fn), k in zip(penalty_terms, penalty_keys):
            # Interpolates mix a real and a fake image; with label-reading critics they take the
            # real image's label (the penalty's reference code is unconditional).
            # With DiffAugment the penalised function is D∘T, differentiated w.r.t. the images
            # before T, T drawn as for the reals: the reference's ns_DiffAugment_r1 (its default
            # StyleGAN2 loss, DiffAugment-stylegan2/training/loss.py) takes R1's gradient of
            # D(T(reals)) w.r.t. the un-augmented reals. The reference has no WGAN-GP; its
            # interpolates get the same treatment here.
            critic_fn = lambda x: apply_critic(d_params, d_state, augment_reals(x), labels)[0]
            terms[name] = fn(critic_fn, reals, fakes, real_scores, k)
            total = total + weight * terms[name]
        if config.model.ac_head:
            # WGAN-GP's AC-GAN puts the critic's class loss on reals only; TF-GAN's on both.
            terms["ac"] = losses.classification(real_logits, labels)
            if config.ac_on_fakes:
                terms["ac"] = terms["ac"] + losses.classification(fake_logits, fake_y)
            total = total + config.ac_weight_d * terms["ac"]
        terms["real_score"], terms["fake_score"] = jnp.mean(real_scores), jnp.mean(fake_scores)
        return total, (terms, d_state)

    def generator_loss(g_params, d_params, d_state, key):
        augment_key = None
        if policy:  # split only then, as in critic_loss
            key, augment_key = jax.random.split(key)
        label_key, z_key = jax.random.split(key)
        labels = fake_labels(label_key, config.g_batch_size)
        # G learns through T: DiffAugment's point (the paper's §3).
        fakes = augment.diff_augment(generate(g_params, z_key, labels), augment_key, policy)
        scores, logits = apply_critic(d_params, d_state, fakes, labels)
        terms = {"adversarial": loss.generator(scores)}
        total = terms["adversarial"]
        if config.model.ac_head:
            terms["ac"] = losses.classification(logits, labels)
            total = total + config.ac_weight_g * terms["ac"]
        return total, terms

    def critic_update(state, inputs):
        images, labels, key = inputs
        augment_key, loss_key = jax.random.split(key)
        reals = shard_batch(
            data.to_float(images, augment_key, config.data.flip, config.data.dequantize)
        )
        (total, (terms, d_state)), grads = jax.value_and_grad(critic_loss, has_aux=True)(
            state["d_params"], state["d_state"], state["g_params"], reals, labels, loss_key
        )
        updates, d_opt = d_tx.update(grads, state["d_opt"], state["d_params"])
        state = {
            **state,
            "d_params": optax.apply_updates(state["d_params"], updates),
            "d_state": d_state,
            "d_opt": d_opt,
        }
        return state, {
            "d_loss": total,
            "d_grad_norm": _global_norm(grads),
            **{f"d_{k}": v for k, v in terms.items()},
        }

    def train_step(state, batch):
        key = jax.random.fold_in(jax.random.wrap_key_data(state["rng"]), state["step"])
        critic_key, g_key = jax.random.split(key)
        n_critic = batch["image"].shape[0]
        critic_keys = jax.random.split(critic_key, n_critic)
        # A Python loop, unrolled in the program: XLA:CPU runs these convolutions much slower inside
        # a while loop (docs/performance.md). Not `lax.scan(unroll=True)`: for n_critic = 1 it
        # still emits a one-trip while loop (jax 0.10.2), which made SNGAN's and the ResNet's
        # n_critic=1 steps several times slower. n_critic is small, so compile time stays moderate.
        per_step = []
        for i in range(n_critic):
            inputs = (batch["image"][i], batch["label"][i], critic_keys[i])
            state, metrics = critic_update(state, inputs)
            per_step.append(metrics)
        d_metrics = jax.tree.map(lambda *values: jnp.stack(values), *per_step)
        (g_total, g_terms), g_grads = jax.value_and_grad(generator_loss, has_aux=True)(
            state["g_params"], state["d_params"], state["d_state"], g_key
        )
        updates, g_opt = g_tx.update(g_grads, state["g_opt"], state["g_params"])
        g_params = optax.apply_updates(state["g_params"], updates)
        ema_params = optax.incremental_update(
            g_params, state["ema_params"], 1.0 - ema_decay(config, state["step"])
        )
        state = {
            **state,
            "g_params": g_params,
            "g_opt": g_opt,
            "ema_params": ema_params,
            "step": state["step"] + 1,
        }
        metrics = {k: jnp.mean(v) for k, v in d_metrics.items()}
        metrics.update(
            {
                "g_loss": g_total,
                "g_grad_norm": _global_norm(g_grads),
                **{f"g_{k}": v for k, v in g_terms.items()},
                "d_lr": d_lr(state["step"] - 1),
                "g_lr": g_lr(state["step"] - 1),
            }
        )
        return state, metrics

    return loop.jit_guarded_step(train_step, mesh, keep_old_state=loop.keeps_old_state(config))


def make_sampler(generator: nn.Module, mesh) -> Callable:
    """`sample(params, z, labels) -> images [N, H, W, C] in [-1, 1]`, jitted, in float32 whatever
    `config.compute_dtype` (`jaxgan/core/precision.py`).

    The output is replicated: a sample grid is small, and every process of a multi-host run can
    then read it (a batch-sharded array is not addressable from one host).
    """

    def sample(params, z, labels):
        return generator.apply({"params": params}, z, labels)

    return jax.jit(sample, out_shardings=parallel.replicated(mesh))


def fixed_latents(config, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The latent batch every sample grid of a run is drawn from (and its class labels, cycling)."""
    n = config.num_samples
    z = np.asarray(sample_latents(config, jax.random.key(config.seed + 7919), n))
    conditional = is_conditional(config)
    labels = np.arange(n, dtype=np.int32) % num_classes if conditional else np.zeros(n, np.int32)
    return z, labels


# ----------------------------------------------------------------------------------------------
# The method on the run loop.
# ----------------------------------------------------------------------------------------------


class Trainer:
    """The GAN method's side of a run (`registry.Trainer`): one compiled step, one data stream."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str, mesh):
        del workdir  # everything this method writes goes through the loop
        check_critic_is_penalisable(config)
        parallel.check_divisible(config.batch_size, mesh, "batch_size")
        parallel.check_divisible(config.g_batch_size, mesh, "g_batch_size")
        self.config, self.mesh = config, mesh
        self.source, self.channels, _ = data.open_run_source(config)
        self.generator, self.critic = build_models(config, self.channels, self.source.num_classes)
        self.g_tx = make_optimizer(config, config.optim.g_lr, 1)
        self.d_tx = make_optimizer(
            config, config.optim.d_lr, config.n_critic, config.get("d_freeze_blocks", 0)
        )
        self._step = make_train_step(
            config, self.generator, self.critic, self.g_tx, self.d_tx, self.source.num_classes, mesh
        )
        self._sample = make_sampler(self.generator, mesh)
        self.sample_z, self.sample_labels = fixed_latents(config, self.source.num_classes)
        self.batch_sharding = parallel.sharded_on(mesh, 1)
        self.batches = None

    def init_state(self) -> State:
        image_shape = (self.config.data.resolution, self.config.data.resolution, self.channels)
        return create_state(
            self.config, self.generator, self.critic, self.g_tx, self.d_tx, image_shape, self.mesh
        )

    def start(self, meta: dict) -> None:
        self.batches = make_batches(
            self.config,
            self.source,
            self.channels,
            self.config.batch_size,
            meta.get("data_cursor", 0),
        )

    def step(self, state: State) -> tuple[State, dict]:
        return self._step(state, data.to_global(next(self.batches), self.batch_sharding))

    def finished(self, step: int) -> bool:
        return step >= self.config.num_steps

    def progress(self, step: int) -> tuple[int, int, str]:
        return step, self.config.num_steps, "step"

    def images_seen(self) -> int:
        return self.batches.cursor

    def meta(self) -> dict:
        return {"data_cursor": self.batches.cursor}

    def sample_grid(self, state: State) -> np.ndarray:
        images = self._sample(state["ema_params"], self.sample_z, self.sample_labels)
        return run_files.make_grid(jax.device_get(images))

    def finish(self, state: State) -> None:
        pass

    def close(self) -> None:
        if self.batches is not None:
            self.batches.close()


def make_batches(config, source, channels: int, batch_size: int, cursor: int) -> data.Batches:
    """The run's batches from image `cursor` on: n_critic minibatches per step at the training
    resolution; batch b is a pure function of (seed, b), which is what makes a resume exact."""
    return data.Batches(
        source,
        batch_size,
        config.data.resolution,
        channels,
        seed=config.seed,
        cursor=cursor,
        steps=config.n_critic,
    )


# Latents whose BatchNorm statistics an `eval_batchnorm='population'` generator normalises with:
# chainer's running averages (decay 0.9) weigh the last ~10 generator batches of 64-128 images.
POPULATION_LATENTS = 1024


def population_latents(config, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed reference batch of `make_population_sampler`: latents, and labels cycling over
    the classes (conditional BatchNorm shares its statistics between classes)."""
    z = np.asarray(
        sample_latents(config, jax.random.key(config.seed + 104_729), POPULATION_LATENTS)
    )
    labels = np.arange(POPULATION_LATENTS, dtype=np.int32) % max(num_classes, 1)
    return z, labels if is_conditional(config) else np.zeros_like(labels)


def make_population_sampler(config, generator: nn.Module, num_classes: int, mesh) -> Callable:
    """`sample(params, z, labels)` with BatchNorm in inference mode, each image its own latent's.

    Every BatchNorm layer normalises with the mean and variance its input has over
    `population_latents` under the same params (recorded once per params, then frozen), where
    `make_sampler`'s use each sampled batch's. sngan_projection samples this way: chainer's
    BatchNormalization with train=False uses running averages of the last training batches.
    """
    reference_z, reference_labels = population_latents(config, num_classes)

    @jax.jit
    def statistics(params):
        recorded = {}
        with nn.intercept_methods(layers.batchnorm_statistics(recorded=recorded)):
            generator.apply({"params": params}, reference_z, reference_labels)
        return recorded

    @functools.partial(jax.jit, out_shardings=parallel.replicated(mesh))
    def sample_frozen(params, frozen, z, labels):
        with nn.intercept_methods(layers.batchnorm_statistics(frozen=frozen)):
            return generator.apply({"params": params}, z, labels)

    last = {"params": None, "statistics": None}

    def sample(params, z, labels):
        if last["params"] is not params:  # the evaluator samples one checkpoint in many batches
            last.update(params=params, statistics=statistics(params))
        return sample_frozen(params, last["statistics"], z, labels)

    return sample


def _eval_sampler(config, channels: int, num_classes: int, mesh):
    generator, _ = build_models(config, channels, num_classes)
    mode = config.eval_batchnorm
    if mode == "population":
        sample = make_population_sampler(config, generator, num_classes, mesh)
    elif mode == "batch":
        sample = make_sampler(generator, mesh)
    else:
        raise errors.ConfigError(
            f"config.eval_batchnorm={mode!r}: expected 'batch' (each sampled batch's statistics) "
            f"or 'population' (fixed statistics, as chainer's running averages)."
        )
    return lambda meta: sample


def synthetic_channels(config) -> int:
    """Channels of the synthetic images a GAN config is timed on (no data is opened): the config's,
    else mnist5k's 1 or 3."""
    return config.data.channels or (1 if config.data.dataset == "mnist5k" else 3)


def bench_step(
    config, mesh, stage_resolution: int = 0, stage_alpha: float = 0.5
) -> benchmark.BenchStep:
    """The Trainer's step on a synthetic batch of the config's shape: n_critic real batches per
    step (a GAN has no stages: `stage_resolution` and `stage_alpha` are not used)."""
    del stage_resolution, stage_alpha
    channels = synthetic_channels(config)
    num_classes = 10 if is_conditional(config) else 0
    shape = (config.data.resolution, config.data.resolution, channels)
    generator, critic = build_models(config, channels, num_classes)
    g_tx = make_optimizer(config, config.optim.g_lr, 1)
    d_tx = make_optimizer(config, config.optim.d_lr, config.n_critic)
    state = create_state(config, generator, critic, g_tx, d_tx, shape, mesh)
    step_fn = make_train_step(config, generator, critic, g_tx, d_tx, num_classes, mesh)
    labels = np.random.default_rng(1).integers(
        0, max(num_classes, 1), (config.n_critic, config.batch_size), dtype=np.int32
    )
    batch = data.to_global(
        {
            "image": benchmark.random_images(
                config.n_critic * config.batch_size, config.data.resolution, channels
            ).reshape(config.n_critic, config.batch_size, *shape),
            "label": labels,
        },
        parallel.sharded_on(mesh, 1),
    )
    return benchmark.BenchStep(step_fn, state, (batch,), config.n_critic * config.batch_size)


METHOD = registry.Method(
    trainer=Trainer,
    sampler=_eval_sampler,
    is_conditional=lambda config: bool(config.model.conditional_generator),
    bench_step=bench_step,
    # XLA's own kernels ran the width-128 ResNet step 1.2x faster than YNNPACK's, and the default
    # DCGAN-style step within its spread (docs/performance.md).
    cpu_convolutions="xla",
)
