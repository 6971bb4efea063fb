"""Mixed precision (`config.compute_dtype`, jaxgan/core/precision.py): a bfloat16 train step against the
float32 one, what stays float32, that the networks really compute in bfloat16, and the bad value.

The steps run on one device (a compile there is ~2x faster than on the 8 test devices).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend import core

from jaxgan import data
from jaxgan.configs import acgan, cyclegan, dcgan, nicegan, pggan, sngan, wgan_gp
from jaxgan.core import errors, parallel, precision
from jaxgan.methods import cyclegan as cyclegan_method
from jaxgan.methods import gan, progressive
from jaxgan.methods import nicegan as nicegan_method
from jaxgan.training import loop

# Tolerances of a bfloat16 step against the float32 step from the same state and batch.
# bfloat16 keeps 8 significant bits: one rounding is off by at most u = 2^-8 (relative). Products
# and sums inside a convolution accumulate in float32 and are rounded once, and the statistics of
# every normalisation are float32 (layers.py), so a value picks up about one rounding per layer.
# A score goes through ~16 such roundings here (the generator's and the critic's layers of the
# smoke networks); independent roundings add like a random walk: sqrt(16)·u = 2^-6 ≈ 1.6%.
# Loss terms that are differences of scores (mean fake - mean real) are compared relative to the
# scores' scale, not to the difference, which may cancel to ~0. Observed (|difference| / scale):
# <= 0.16% (wgan_gp), <= 0.81% (pggan, its d_adversarial).
LOSS_RTOL = 2.0**-6
# A gradient takes one more pass (backward) through every layer, and the smoke generators'
# gradients are ill-conditioned: in float32, multiplying their parameters by (1 + 2^-9·N(0, 1)),
# the size of one bfloat16 rounding, moves the ResNet generator's first-layer gradients by 15% and
# PGGAN's whole gradient by 7-8% (its norm by up to 3%). In a step, G's gradient is also taken
# through the critic after its update(s), which differ a little (below). 2^-3 = 12.5% on global
# norms; observed: <= 0.9% (wgan_gp), 0.35% (pggan critic), 5.6% (pggan generator).
GRAD_NORM_RTOL = 2.0**-3
# Adam's first update is -lr·g/(|g| + eps) ≈ -lr·sign(g) per parameter, so the updated parameters
# of the two steps agree exactly or differ by ~2·lr: what can be compared is how many updates go
# the same way. A bfloat16 gradient flips the sign of components near 0 (and of the generator's
# biases before a norm, whose float32 gradient is exactly 0); a gradient that is wrong (a lost
# term, a wrong cast) agrees on ~50% of parameters, a lost one on none. Observed: >= 96%.
MIN_SAME_DIRECTION = 0.9


def _float64(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float64), tree)


def _copy(state):
    """A fresh copy of `state` (the step donates its argument)."""
    return jax.tree.map(jnp.copy, state)


def _assert_float32_state(state, reference):
    """(b): the same tree and dtypes as the float32 step's state; every float in it float32."""
    assert jax.tree.structure(state) == jax.tree.structure(reference)
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(state), jax.tree.leaves(reference)):
        assert x.dtype == y.dtype, jax.tree_util.keystr(path)
        if jnp.issubdtype(x.dtype, jnp.floating):
            assert x.dtype == jnp.float32, jax.tree_util.keystr(path)


def _assert_close_metrics(bf16, f32, losses, grad_norms):
    """(a): loss terms within LOSS_RTOL of the scores' scale, gradient norms within GRAD_NORM_RTOL."""
    bf16, f32 = _float64(bf16), _float64(f32)
    score_scale = max(abs(f32["d_real_score"]), abs(f32["d_fake_score"]))
    for name in losses:
        scale = max(abs(f32[name]), score_scale)
        assert abs(bf16[name] - f32[name]) <= LOSS_RTOL * scale, (name, bf16[name], f32[name])
    for name in grad_norms:
        assert abs(bf16[name] - f32[name]) <= GRAD_NORM_RTOL * f32[name], (name, bf16, f32)


def _assert_same_updates(before, bf16, f32, networks=("g_params", "d_params")):
    """(a): each network's updates (new - old parameters) go the same way in both steps for at
    least MIN_SAME_DIRECTION of its parameters."""
    before, bf16, f32 = _float64(before), _float64(bf16), _float64(f32)
    flat = lambda tree: np.concatenate([x.ravel() for x in jax.tree.leaves(tree)])  # noqa: E731
    for name in networks:
        update_bf16 = flat(bf16[name]) - flat(before[name])
        update_f32 = flat(f32[name]) - flat(before[name])
        assert np.abs(update_f32).max() > 0, name  # the step did move this network
        same = np.mean(np.sign(update_bf16) == np.sign(update_f32))
        assert same >= MIN_SAME_DIRECTION, (name, same)


def _with_dtype(config, dtype):
    config = config.copy_and_resolve_references()
    config.compute_dtype = dtype
    return config


# ----------------------------------------------------------------------------------------------
# (a), (b): one step in bfloat16 against one in float32.
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_wgan_gp_step_in_bfloat16_matches_float32():
    """WGAN-GP (ResNet, LayerNorm critic, gradient penalty, 2 critic updates), smoke config."""
    config = wgan_gp.get_config("smoke")
    mesh = parallel.make_mesh(1)
    generator, critic = gan.build_models(config, 1, 10)
    g_tx = gan.make_optimizer(config, config.optim.g_lr, 1)
    d_tx = gan.make_optimizer(config, config.optim.d_lr, config.n_critic)
    state = gan.create_state(config, generator, critic, g_tx, d_tx, (32, 32, 1), mesh)
    source = data.open_source("mnist5k")
    batch = next(data.Batches(source, config.batch_size, 32, 1, seed=0, steps=config.n_critic))
    batch = data.to_global(batch, parallel.sharded_on(mesh, 1))
    results = {}
    for dtype in ("float32", "bfloat16"):
        c = _with_dtype(config, dtype)
        step = gan.make_train_step(c, generator, critic, g_tx, d_tx, 10, mesh)
        results[dtype] = jax.device_get(step(_copy(state), batch))
    (state_bf16, metrics_bf16), (state_f32, metrics_f32) = results["bfloat16"], results["float32"]
    _assert_float32_state(state_bf16, state_f32)
    _assert_close_metrics(
        metrics_bf16,
        metrics_f32,
        ("d_loss", "d_adversarial", "d_wgan_gp", "d_real_score", "d_fake_score", "g_loss"),
        ("d_grad_norm", "g_grad_norm"),
    )
    _assert_same_updates(jax.device_get(state), state_bf16, state_f32)


@pytest.mark.slow
def test_pggan_fade_in_step_in_bfloat16_matches_float32():
    """Progressive GAN at 8x8 mid-fade (alpha 0.5: both paths), pixel norm, minibatch stddev,
    equalized lr, WGAN-GP at full resolution + drift."""
    config = pggan.get_config("smoke")
    mesh = parallel.make_mesh(1)
    generator, critic = progressive.build_models(config, 1, 10, mesh)
    tx = progressive.make_optimizer(config)
    state = progressive.create_state(config, generator, critic, tx, (16, 16, 1), mesh)
    batch = next(data.Batches(data.open_source("mnist5k"), 8, 16, 1, seed=0))
    batch = data.to_global(batch, parallel.sharded_on(mesh, 1))
    inputs = {"alpha": np.float32(0.5), "g_lr": np.float32(1e-3), "d_lr": np.float32(1e-3)}
    stage = progressive.Stage(3, True)
    results = {}
    for dtype in ("float32", "bfloat16"):
        c = _with_dtype(config, dtype)
        step = progressive.make_train_step(c, generator, critic, tx, 10, mesh, stage)
        results[dtype] = jax.device_get(step(_copy(state), batch, inputs))
    (state_bf16, metrics_bf16), (state_f32, metrics_f32) = results["bfloat16"], results["float32"]
    _assert_float32_state(state_bf16, state_f32)
    _assert_close_metrics(
        metrics_bf16,
        metrics_f32,
        ("d_loss", "d_adversarial", "d_wgan_gp", "d_drift", "d_real_score", "d_fake_score",
         "g_loss"),
        ("d_grad_norm", "g_grad_norm"),
    )  # fmt: skip
    _assert_same_updates(jax.device_get(state), state_bf16, state_f32)


# ----------------------------------------------------------------------------------------------
# (c): the networks of every method's step compute in bfloat16, their statistics in float32.
# ----------------------------------------------------------------------------------------------


def _gan_step(config):
    generator, critic = gan.build_models(config, 1, 10)
    g_tx = gan.make_optimizer(config, config.optim.g_lr, 1)
    d_tx = gan.make_optimizer(config, config.optim.d_lr, config.n_critic)
    mesh = parallel.make_mesh(1)
    state = jax.eval_shape(
        lambda: gan.create_state(config, generator, critic, g_tx, d_tx, (32, 32, 1), mesh)
    )
    shape = (config.n_critic, config.batch_size)
    batch = {
        "image": jax.ShapeDtypeStruct((*shape, 32, 32, 1), jnp.uint8),
        "label": jax.ShapeDtypeStruct(shape, jnp.int32),
    }
    return gan.make_train_step(config, generator, critic, g_tx, d_tx, 10, mesh), (state, batch)


def _pggan_step(config):
    mesh = parallel.make_mesh(1)
    generator, critic = progressive.build_models(config, 1, 10, mesh)
    tx = progressive.make_optimizer(config)
    state = jax.eval_shape(
        lambda: progressive.create_state(config, generator, critic, tx, (16, 16, 1), mesh)
    )
    batch = {
        "image": jax.ShapeDtypeStruct((1, 8, 16, 16, 1), jnp.uint8),
        "label": jax.ShapeDtypeStruct((1, 8), jnp.int32),
    }
    inputs = {k: np.float32(v) for k, v in (("alpha", 0.5), ("g_lr", 1e-3), ("d_lr", 1e-3))}
    stage = progressive.Stage(3, True)  # fading in: alpha reaches the networks
    step = progressive.make_train_step(config, generator, critic, tx, 10, mesh, stage)
    return step, (state, batch, inputs)


def _pggan_lsgan_config():
    """The LSGAN variant: its noise strength reaches the critic as a float input."""
    config = pggan.get_config("lsgan")
    config.update_from_flattened_dict({"data.resolution": 16, "model.fmap_base": 32,
                                       "model.fmap_max": 16, "model.z_dim": 16})  # fmt: skip
    return config


def _translation_step(method, config):
    model = method.build(config, parallel.make_mesh(1))
    r, c = config.data.resolution, config.data.channels
    image = jax.ShapeDtypeStruct((1, config.batch_size, r, r, c), jnp.uint8)
    return model.train_step, (jax.eval_shape(model.init_state), {"A": image, "B": image})


STEPS = {
    "wgan_gp": lambda: (_gan_step, wgan_gp.get_config("smoke")),
    "dcgan": lambda: (_gan_step, dcgan.get_config("smoke")),  # BatchNorm critic, transposed convs
    "acgan": lambda: (_gan_step, acgan.get_config("smoke")),  # class-conditional BatchNorm
    "sngan": lambda: (_gan_step, sngan.get_config("smoke")),  # spectral norm, projection
    "pggan": lambda: (_pggan_step, pggan.get_config("smoke")),
    "pggan_lsgan": lambda: (_pggan_step, _pggan_lsgan_config()),
    "cyclegan": lambda: (
        lambda config: _translation_step(cyclegan_method, config),
        cyclegan.get_config("smoke"),
    ),
    "nicegan": lambda: (
        lambda config: _translation_step(nicegan_method, config),
        nicegan.get_config("smoke"),
    ),
}


def _equations(jaxpr):
    """Every equation of `jaxpr` and of the jaxprs inside it (jit, scan, cond, custom VJPs)."""
    yield from jaxpr.eqns
    for sub in core.subjaxprs(jaxpr):
        yield from _equations(sub)


def _step_equations(name, dtype):
    make, config = STEPS[name]()
    step, args = make(_with_dtype(config, dtype))
    return list(_equations(jax.make_jaxpr(step)(*args).jaxpr))


def _products(equations):
    """(operand dtypes, operand ranks) of every convolution and matrix product."""
    return [
        (tuple(str(v.aval.dtype) for v in e.invars), tuple(v.aval.ndim for v in e.invars))
        for e in equations
        if e.primitive.name in ("conv_general_dilated", "dot_general")
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STEPS))
def test_the_networks_compute_in_bfloat16_and_their_statistics_in_float32(name):
    """In the bfloat16 step every convolution and every matrix product of activations has
    bfloat16 operands; float32 ones are only products with a vector or a scalar (spectral norm's
    power iteration and σ's gradient). No square root (of a variance: BatchNorm, LayerNorm, instance norm, pixel norm,
    minibatch stddev, ILN; of the penalty's gradient norm) is taken of a bfloat16 value."""
    equations = _step_equations(name, "bfloat16")
    products = _products(equations)
    in_bfloat16 = [p for p in products if set(p[0]) == {"bfloat16"}]
    others = [p for p in products if set(p[0]) != {"bfloat16"}]
    assert len(in_bfloat16) >= 10, products  # forward and backward of every layer
    assert all(set(dtypes) == {"float32"} and min(ranks) <= 1 for dtypes, ranks in others), others
    roots = [e for e in equations if e.primitive.name in ("sqrt", "rsqrt")]
    assert roots and all(e.invars[0].aval.dtype == jnp.float32 for e in roots)


@pytest.mark.parametrize("name", ["wgan_gp", "pggan", "nicegan"])
def test_float32_steps_hold_no_bfloat16(name):
    """The default: not one bfloat16 value anywhere in the step."""
    for e in _step_equations(name, "float32"):
        assert all(v.aval.dtype != jnp.bfloat16 for v in e.outvars), e


# ----------------------------------------------------------------------------------------------
# (d): a value that is not a compute dtype.
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["float16", "bfloat", "fp32"])
def test_a_bad_compute_dtype_is_a_config_error_naming_field_value_and_choices(value, tmp_path):
    config = _with_dtype(wgan_gp.get_config("smoke"), value)
    with pytest.raises(errors.ConfigError) as raised:
        precision.compute_dtype(config)
    message = str(raised.value)
    assert "config.compute_dtype" in message and repr(value) in message
    assert "float32" in message and "bfloat16" in message
    # The run loop refuses it before it builds anything (no workdir is written).
    with pytest.raises(errors.ConfigError, match="compute_dtype"):
        loop.train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
