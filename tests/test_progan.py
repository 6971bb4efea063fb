"""Progressive GAN layers and models against numpy references and the paper's definitions."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.core import parallel
from jaxgan.models import layers, progan

# ----------------------------------------------------------------------------------------------
# Equalized learning rate.
# ----------------------------------------------------------------------------------------------


def _init(module, *args):
    # rbg: XLA:CPU compiles many threefry draws slowly (train.create_state does the same).
    return jax.jit(module.init)(jax.random.key(0, impl="rbg"), *args)["params"]


def test_equalized_dense_stores_unit_normal_and_scales_at_call_time():
    fan_in, out = 256, 256
    dense = layers.Dense(out, **layers.equalized_lr(fan_in))
    params = _init(dense, jnp.zeros((1, fan_in)))
    stored = np.asarray(params["kernel"])
    assert abs(stored.std() - 1.0) < 0.01 and abs(stored.mean()) < 0.01
    assert not np.any(params["bias"])
    # The function computes x @ (stored · √2/√fan_in): its effective weights are the rows of I @ W.
    effective = np.asarray(dense.apply({"params": params}, jnp.eye(fan_in)))
    # One-hot rows: each output is one product stored·scale, <= 2 float32 roundings (2.4e-7).
    np.testing.assert_allclose(effective, stored * math.sqrt(2.0) / 16.0, rtol=1e-6, atol=1e-7)
    assert abs(effective.std() - math.sqrt(2.0 / fan_in)) < 0.01 * math.sqrt(2.0 / fan_in)


def test_equalized_conv_effective_kernel_is_gain_over_sqrt_fan_in():
    cin, cout, gain = 32, 64, 1.0
    conv = layers.Conv2D(cout, 3, padding="VALID", **layers.equalized_lr(9 * cin, gain))
    params = _init(conv, jnp.zeros((1, 3, 3, cin)))
    stored = np.asarray(params["kernel"])
    assert abs(stored.std() - 1.0) < 0.02
    # One-hot 3x3xC_in patches read the effective kernel out one tap at a time (HWIO order).
    probes = jnp.eye(9 * cin).reshape(9 * cin, 3, 3, cin)
    effective = np.asarray(conv.apply({"params": params}, probes)).reshape(9 * cin, cout)
    # One-hot probes: each output is one product stored·scale plus exact zeros (<= 2 roundings).
    np.testing.assert_allclose(
        effective, stored.reshape(9 * cin, cout) * gain / math.sqrt(9 * cin), rtol=1e-5, atol=1e-7
    )
    assert abs(effective.std() - gain / math.sqrt(9 * cin)) < 0.02 * gain / math.sqrt(9 * cin)


def test_without_wscale_the_stored_weights_carry_the_he_std():
    kwargs = layers.equalized_lr(400, enabled=False)
    assert kwargs["runtime_scale"] == 1.0
    params = _init(layers.Dense(400, **kwargs), jnp.zeros((1, 400)))
    assert abs(np.asarray(params["kernel"]).std() - math.sqrt(2.0 / 400)) < 0.01 * math.sqrt(0.005)


def _scales(module, params, *args, **kwargs) -> dict[str, tuple[float, int]]:
    """{layer path: (runtime_scale, fan_in)} of every Dense/Conv2D a call runs."""
    found = {}

    def record(next_fun, args_, kwargs_, context):
        m = context.module
        if isinstance(m, (layers.Dense, layers.Conv2D)) and context.method_name == "__call__":
            x = args_[0]
            fan_in = x.shape[-1] * (m.kernel_size**2 if isinstance(m, layers.Conv2D) else 1)
            found["/".join(m.path)] = (m.runtime_scale, fan_in)
        return next_fun(*args_, **kwargs_)

    with nn.intercept_methods(record):  # at trace time: eval_shape runs no computation
        jax.eval_shape(lambda p: module.apply({"params": p}, *args, **kwargs), params)
    return found


def test_every_layer_uses_its_documented_gain():
    """√2 everywhere except G's first dense (√2/4, "to match the Theano implementation"), ToRGB and
    D's output dense (1) — networks.py G_paper / D_paper."""
    g = progan.Generator(resolution=16, channels=3, fmap_base=64, fmap_max=32)
    d = progan.Critic(resolution=16, fmap_base=64, fmap_max=32)
    z = jnp.ones((4, 32))
    g_params = _init(g, z)
    d_params = _init(d, jnp.zeros((4, 16, 16, 3)))

    def expected_gain(path):
        if path.endswith("4x4/Dense"):
            return math.sqrt(2.0) / 4
        if "ToRGB" in path or path.endswith("Dense1"):
            return 1.0
        return math.sqrt(2.0)

    for module, params, args in ((g, g_params, (z,)), (d, d_params, (jnp.zeros((4, 16, 16, 3)),))):
        for res_log2, alpha in ((4, None), (3, 0.5)):
            images = args[0] if module is g else jnp.zeros((4, 2**res_log2, 2**res_log2, 3))
            scales = _scales(module, params, images, res_log2=res_log2, alpha=alpha)
            assert len(scales) >= 6
            for path, (scale, fan_in) in scales.items():
                assert scale == pytest.approx(expected_gain(path) / math.sqrt(fan_in)), path
    for path, kernel in _kernels(g_params) + _kernels(d_params):
        if kernel.size >= 2000:  # large enough for a sample std
            assert abs(np.std(kernel) - 1.0) < 0.1, path


def _kernels(params):
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return [(jax.tree_util.keystr(p), np.asarray(v)) for p, v in flat if p[-1].key == "kernel"]


# ----------------------------------------------------------------------------------------------
# Pixel norm and minibatch stddev.
# ----------------------------------------------------------------------------------------------


def test_pixel_norm_gives_unit_mean_square_per_pixel():
    x = np.random.default_rng(0).normal(size=(3, 5, 5, 16)) * np.exp(
        np.random.default_rng(1).normal(size=(3, 5, 5, 1))
    )
    y = np.asarray(layers.pixel_norm(jnp.asarray(x, jnp.float32)))
    # float32: the input's rounding, a mean of 16 squares and an rsqrt: <= ~20·2^-24 = 1.2e-6.
    np.testing.assert_allclose(np.mean(y**2, axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(y, x / np.sqrt(np.mean(x**2, -1, keepdims=True) + 1e-8), rtol=1e-5)


def _numpy_minibatch_stddev(x_nhwc, group_size):
    """networks.py minibatch_stddev_layer, line by line, in NCHW."""
    x = np.transpose(x_nhwc, (0, 3, 1, 2)).astype(np.float64)
    n, c, h, w = x.shape
    g = min(group_size, n)
    y = x.reshape(g, -1, c, h, w)  # [GMCHW]
    y = y - y.mean(axis=0, keepdims=True)
    y = np.mean(y**2, axis=0)  # [MCHW]
    y = np.sqrt(y + 1e-8)
    y = np.mean(y, axis=(1, 2, 3), keepdims=True)  # [M111]
    y = np.tile(y, [g, 1, h, w])  # [N1HW]
    return np.transpose(np.concatenate([x, y], axis=1), (0, 2, 3, 1))


@pytest.mark.parametrize("n, group_size", [(8, 4), (12, 4), (2, 4), (16, 16), (6, 3)])
def test_minibatch_stddev_matches_the_official_strided_grouping(n, group_size):
    x = np.random.default_rng(n).normal(size=(n, 4, 4, 5)).astype(np.float32)
    x[:, :, :, 0] *= np.arange(1, n + 1)[:, None, None]  # groups with different spreads
    y = np.asarray(layers.minibatch_stddev(jnp.asarray(x), group_size))
    # float32 sums of <= 16 squares, then the mean of 80 positive stddevs: <= ~100·2^-24 = 6e-6.
    np.testing.assert_allclose(y, _numpy_minibatch_stddev(x, group_size), rtol=1e-5)
    if n == 8:  # strided: sample 0 is grouped with 2, 4, 6 (not 1, 2, 3)
        assert y[0, 0, 0, -1] == y[2, 0, 0, -1] != y[1, 0, 0, -1]


def test_minibatch_stddev_rejects_an_indivisible_batch():
    with pytest.raises(ValueError, match="not divisible by the group size 4"):
        layers.minibatch_stddev(jnp.zeros((6, 4, 4, 2)), 4)


def test_minibatch_stddev_per_device_groups_within_each_share():
    """On the 8-device mesh the jit version groups over the global batch, the shard_map one per
    device, as the reference's multi-GPU graph does: they differ, each matches its numpy."""
    mesh = parallel.make_mesh(8)
    x = np.random.default_rng(3).normal(size=(32, 4, 4, 3)).astype(np.float32)
    x *= np.arange(1, 33)[:, None, None, None]
    sharded = jax.device_put(x, parallel.sharded_on(mesh, 0))
    per_device = jax.jit(lambda v: layers.minibatch_stddev_per_device(v, mesh, 4))(sharded)
    expected = np.concatenate([_numpy_minibatch_stddev(s, 4) for s in np.split(x, 8)])
    # As above: float32 statistics of <= 4 samples x 48 values, <= ~60·2^-24 = 4e-6.
    np.testing.assert_allclose(np.asarray(per_device), expected, rtol=1e-5)
    global_ = jax.jit(lambda v: layers.minibatch_stddev(v, 4))(sharded)
    np.testing.assert_allclose(np.asarray(global_), _numpy_minibatch_stddev(x, 4), rtol=1e-5)
    assert not np.allclose(np.asarray(global_)[..., -1], expected[..., -1])


def _numpy_minibatch_discrimination(x, theta, log_weight_scale, b):
    """The Theano MinibatchLayer's get_output_for (init=False), line by line, in float64."""
    x, theta = x.reshape(len(x), -1).astype(np.float64), theta.astype(np.float64)
    W = theta * (np.exp(log_weight_scale) / np.sqrt(np.sum(np.square(theta), axis=0)))[None]
    activation = np.tensordot(x, W, [[1], [0]])  # [N, K, D]
    abs_dif = (
        np.sum(
            np.abs(activation[:, :, :, None] - np.transpose(activation, (1, 2, 0))[None]), axis=2
        )
        + 1e6 * np.eye(len(x))[:, None, :]
    )  # [N, K, N]
    f = np.sum(np.exp(-abs_dif), axis=2) + b[None, :]
    return np.concatenate([x, f], axis=1)


@pytest.mark.parametrize("n", [1, 2, 6])
def test_minibatch_discrimination_matches_the_theano_layer(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 12)).astype(np.float32)
    module = progan.MinibatchDiscrimination(num_kernels=7, dim_per_kernel=5)
    params = _init(module, jnp.zeros((n, 12)))
    assert params["theta"].shape == (12, 7, 5) and params["log_weight_scale"].shape == (7, 5)
    assert abs(float(np.std(params["theta"])) - 0.05) < 0.01 and np.all(params["bias"] == -1.0)
    # Trained-looking values: a scale per (kernel, dimension), a bias per kernel; samples close
    # enough (x/3) that exp(-distance) is far from 0 for some pairs.
    params = {
        "theta": params["theta"],
        "log_weight_scale": jnp.asarray(rng.normal(size=(7, 5)) * 0.3, jnp.float32),
        "bias": jnp.asarray(rng.normal(size=7), jnp.float32),
    }
    y = np.asarray(module.apply({"params": params}, jnp.asarray(x / 3)))
    expected = _numpy_minibatch_discrimination(
        x / 3, *(np.asarray(params[k]) for k in ("theta", "log_weight_scale", "bias"))
    )
    assert y.shape == (n, 12 + 7)
    if n > 1:
        assert np.ptp(expected[:, 12:] - np.asarray(params["bias"])) > 0.05  # not all 0 or 1
    # float32 sums of 12 products and of 5 distances, then exp: within ~1e-5 relative.
    np.testing.assert_allclose(y, expected, rtol=2e-5, atol=1e-6)


def test_critic_with_minibatch_discrimination_feeds_it_to_the_score():
    """Theano D_paper: Dense0 -> MinibatchLayer (K more features) -> Dscores; off by default."""
    critic = progan.Critic(resolution=8, fmap_base=32, fmap_max=16, mbstd_group_size=0,
                           mbdisc_kernels=10)  # fmt: skip
    params = _init(critic, jnp.zeros((4, 8, 8, 1)))
    head = params["4x4"]
    assert head["MinibatchDisc"]["theta"].shape == (16, 10, 5)
    assert head["Dense1"]["kernel"].shape == (16 + 10, 1)
    assert "MinibatchDisc" not in _init(progan.Critic(resolution=8, fmap_base=32, fmap_max=16),
                                        jnp.zeros((4, 8, 8, 1)))["4x4"]  # fmt: skip
    # The score of sample 0 depends on the other samples of its minibatch.
    images = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
    scores, _ = critic.apply({"params": params}, images)
    moved, _ = critic.apply({"params": params}, images.at[1:].multiply(0.5))
    assert float(scores[0]) != float(moved[0])


# ----------------------------------------------------------------------------------------------
# Models: channels, fade-in, AC head, D noise.
# ----------------------------------------------------------------------------------------------


def test_channel_table_of_the_1024_network():
    """fmap_base 8192, fmap_max 512: 4..32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16."""
    expected = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    g = progan.Generator(resolution=1024, channels=3)
    d = progan.Critic(resolution=1024)
    key = jax.random.key(0)
    g_shapes = jax.eval_shape(g.init, key, jnp.zeros((2, 512)))["params"]
    d_shapes = jax.eval_shape(d.init, key, jnp.zeros((2, 1024, 1024, 3)))["params"]
    for res, nf in expected.items():
        name = f"{res}x{res}"
        g_conv = g_shapes[name]["Conv" if res == 4 else "Conv1"]["kernel"]
        assert g_conv.shape[-1] == nf, name
        assert g_shapes[f"ToRGB_{name}"]["kernel"].shape == (1, 1, nf, 3)
        assert d_shapes[f"FromRGB_{name}"]["kernel"].shape == (1, 1, 3, nf)
        assert d_shapes[name]["Conv" if res == 4 else "Conv0"]["kernel"].shape[-1] == nf
    assert g_shapes["4x4"]["Dense"]["kernel"].shape == (512, 16 * 512)
    assert d_shapes["4x4"]["Conv"]["kernel"].shape == (3, 3, 513, 512)  # + the stddev map
    assert d_shapes["4x4"]["Dense1"]["kernel"].shape == (512, 1)


@pytest.fixture(scope="module")
def small_models():
    g = progan.Generator(resolution=16, channels=3, fmap_base=64, fmap_max=32, num_classes=5)
    d = progan.Critic(resolution=16, fmap_base=64, fmap_max=32, num_classes=5)
    z = jax.random.normal(jax.random.key(1), (8, 32))
    labels = jnp.arange(8) % 5
    g_params = _init(g, z, labels)
    d_params = _init(d, jnp.zeros((8, 16, 16, 3)))
    images = jax.random.uniform(jax.random.key(4), (8, 16, 16, 3), minval=-1, maxval=1)
    return g, d, g_params, d_params, z, labels, images


@pytest.mark.slow
def test_generator_fade_endpoints(small_models):
    """α = 0: the previous stage's output, nearest-upsampled; α = 1: the new path alone; linear."""
    g, _, params, _, z, labels, _ = small_models
    run = lambda r, a: np.asarray(g.apply({"params": params}, z, labels, res_log2=r, alpha=a))
    for r in (3, 4):
        old = np.asarray(layers.upsample_nearest(jnp.asarray(run(r - 1, None))))
        new = run(r, None)
        assert new.shape == (8, 2**r, 2**r, 3)
        np.testing.assert_array_equal(run(r, 0.0), old)
        np.testing.assert_array_equal(run(r, 1.0), new)
        # The same float32 lerp here and in the model: <= 3 roundings a side, ~4e-7 of |new| + |old|.
        np.testing.assert_allclose(run(r, 0.3), 0.3 * new + 0.7 * old, rtol=1e-5, atol=1e-6)
        assert np.abs(new - old).mean() > 1e-3  # the two paths do differ


def test_critic_fade_endpoints(small_models):
    """α = 0: the previous stage's critic on the 2x2-box-downsampled image; α = 1: the new path."""
    _, d, _, params, _, _, images = small_models
    for r in (3, 4):
        x = layers.downsample_mean(images, 2 ** (4 - r))
        run = lambda img, rr, a: d.apply({"params": params}, img, res_log2=rr, alpha=a)
        old_scores, old_logits = run(layers.downsample_mean(x), r - 1, None)
        new_scores, new_logits = run(x, r, None)
        scores0, logits0 = run(x, r, 0.0)
        scores1, logits1 = run(x, r, 1.0)
        # 0·new + 1·old is exactly old, and the rest is the same ops on the same input: exact.
        np.testing.assert_array_equal(scores0, old_scores)
        np.testing.assert_array_equal(logits0, old_logits)
        np.testing.assert_array_equal(scores1, new_scores)
        np.testing.assert_array_equal(logits1, new_logits)
        assert new_logits.shape == (8, 5) and new_scores.shape == (8,)
        assert np.abs(np.asarray(new_scores - old_scores)).mean() > 1e-4


def test_parameter_tree_is_the_full_network_at_every_stage(small_models):
    """init creates every resolution's layers; a 4x4 call reads only the 4x4 ones."""
    g, d, g_params, d_params, z, labels, images = small_models
    assert {k for k in g_params if k.startswith("ToRGB")} == {
        "ToRGB_4x4",
        "ToRGB_8x8",
        "ToRGB_16x16",
    }
    assert {k for k in d_params if k.startswith("FromRGB")} == {
        "FromRGB_4x4",
        "FromRGB_8x8",
        "FromRGB_16x16",
    }
    grads = jax.grad(lambda p: g.apply({"params": p}, z, labels, res_log2=2).sum())(g_params)
    used = {k for k, v in grads.items() if any(np.any(x) for x in jax.tree.leaves(v))}
    assert used == {"4x4", "ToRGB_4x4"}


def test_lsgan_noise_multiplies_critic_layer_inputs(small_models):
    """GDropLayer 'prop': strength 0 is the identity; > 0 changes the scores, differently per draw."""
    _, d, _, params, _, _, images = small_models
    run = lambda s, k: d.apply(
        {"params": params}, images, noise_strength=s, rngs={"noise": jax.random.key(k)}
    )[0]
    plain = d.apply({"params": params}, images)[0]
    np.testing.assert_array_equal(run(0.0, 0), plain)
    noisy_a, noisy_b = run(0.05, 0), run(0.05, 1)
    assert np.abs(np.asarray(noisy_a - plain)).max() > 1e-3
    assert np.abs(np.asarray(noisy_a - noisy_b)).max() > 1e-3


# ----------------------------------------------------------------------------------------------
# Table 1 rows (a)-(c): the critic's Theano LayerNorm; the LSGAN variant's D noise (GDropLayer).
# ----------------------------------------------------------------------------------------------


def _numpy_theano_layernorm(x_nhwc, gain, bias, epsilon=1e-4):
    """original-theano-version network.py `LayerNormLayer.get_output_for`, line by line, NCHW."""
    v = np.transpose(np.asarray(x_nhwc, np.float64), (0, 3, 1, 2))
    avg_axes = (1, 2, 3)
    v = v - np.mean(v, axis=avg_axes, keepdims=True)  # subtract mean
    v = v * (1.0 / np.sqrt(np.mean(np.square(v), axis=avg_axes, keepdims=True) + epsilon))
    v = v * gain  # multiply by gain
    v = v + np.asarray(bias, np.float64)[None, :, None, None]  # the stolen per-channel bias
    return np.transpose(v, (0, 2, 3, 1))


def test_theano_layernorm_matches_the_theano_formula():
    rng = np.random.default_rng(0)
    # Per-sample scales from 0.01 to 3: ε = 1e-4 matters for the small one (var 1e-4).
    x = rng.normal(size=(4, 4, 4, 6)) * np.array([0.01, 0.1, 1.0, 3.0])[:, None, None, None] + 2.0
    ln = progan.TheanoLayerNorm()
    params = _init(ln, jnp.zeros((4, 4, 4, 6)))
    assert params["gain"].shape == () and float(params["gain"]) == 1.0
    assert params["bias"].shape == (6,) and not np.any(params["bias"])
    params = {"gain": jnp.float32(1.7), "bias": jnp.asarray(rng.normal(size=6), jnp.float32)}
    expected = _numpy_theano_layernorm(x, 1.7, params["bias"])
    out = ln.apply({"params": params}, jnp.asarray(x, jnp.float32))
    # float32: x's rounding (|x| ~ 2, var down to 1e-4: a relative 2^-24·2/0.01 ~ 1e-5 of v), a
    # mean of 96 values and an rsqrt, then × 1.7 + bias: within ~3e-5 of |y| <= ~6.
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=5e-5)
    # The small-variance sample differs from a plain standardisation by ε: the formula's epsilon.
    plain = (x[0] - x[0].mean()) / x[0].std() * 1.7 + np.asarray(params["bias"])
    assert np.abs(expected[0] - plain).max() > 0.1
    # bfloat16 activations: statistics in float32, the result cast back. Against the formula on
    # the same bf16 input (its rounding, 2^-8 of 2, is most of sample 0's spread): within the one
    # output rounding of bf16, 2^-8 of |y| <= ~6.
    x16 = jnp.asarray(x, jnp.bfloat16)
    out16 = ln.apply({"params": params}, x16)
    assert out16.dtype == jnp.bfloat16
    expected16 = _numpy_theano_layernorm(np.asarray(x16, np.float64), 1.7, params["bias"])
    np.testing.assert_allclose(np.asarray(out16, np.float64), expected16, rtol=1e-2, atol=2e-2)


@pytest.fixture(scope="module")
def layernorm_critic():
    """Row (a)-(c)'s critic: Theano LayerNorm, no equalized lr, no minibatch stddev."""
    d = progan.Critic(
        resolution=16, fmap_base=64, fmap_max=32, use_wscale=False, use_layernorm=True,
        mbstd_group_size=0,
    )  # fmt: skip
    return d, _init(d, jnp.zeros((2, 16, 16, 3)))


def test_layernorm_critic_parameters_are_theanos(layernorm_critic):
    """LN(WS(conv)) on every conv of D and on Dense0 (Theano's 4x4 conv D1a): the conv has no
    bias, the norm one scalar gain and the per-channel bias; FromRGB and Dense1 keep theirs."""
    _, params = layernorm_critic
    layer_names = {
        "4x4": ("Conv", "Dense0"),
        "8x8": ("Conv0", "Conv1"),
        "16x16": ("Conv0", "Conv1"),
    }
    for block, names in layer_names.items():
        for name in names:
            assert set(params[block][name]) == {"kernel"}, (block, name)
            features = params[block][name]["kernel"].shape[-1]
            ln = params[block][f"{name}_LN"]
            assert ln["gain"].shape == () and ln["bias"].shape == (features,), (block, name)
        assert set(params[block]) == {n + s for n in names for s in ("", "_LN")} | (
            {"Dense1"} if block == "4x4" else set()
        )
    assert set(params["4x4"]["Dense1"]) == {"kernel", "bias"}
    assert set(params["FromRGB_16x16"]) == {"kernel", "bias"}


def test_layernorm_critic_scores_are_per_sample(layernorm_critic):
    """A sample's score does not depend on the rest of the minibatch (the penalty needs this)."""
    d, params = layernorm_critic
    rng = np.random.default_rng(5)
    a = rng.uniform(-1, 1, size=(4, 16, 16, 3)).astype(np.float32)
    b = a.copy()
    b[1:] = rng.uniform(-1, 1, size=(3, 16, 16, 3))
    for res_log2, alpha in ((4, None), (4, 0.5), (3, 0.3)):
        factor = 2 ** (4 - res_log2)
        run = lambda images: np.asarray(
            d.apply(
                {"params": params},
                layers.downsample_mean(jnp.asarray(images), factor),
                res_log2=res_log2,
                alpha=alpha,
            )[0]
        )
        scores_a, scores_b = run(a), run(b)
        assert np.all(np.isfinite(scores_a))
        # The same ops on the same sample; XLA may pick another reduction order per batch: ~ulps.
        np.testing.assert_allclose(scores_a[0], scores_b[0], rtol=1e-5, atol=1e-6)
        assert np.abs(scores_a[1:] - scores_b[1:]).min() > 1e-6


def test_lsgan_noise_is_theanos_gdrop_prop_per_sample_and_channel():
    """GDropLayer(mode='prop', axes=(0, 1)): x · (1 + s·√C·N(0, 1)), one draw per sample and
    channel, C of the layer's input; on the inputs of every conv and of Dense0, which (Theano's
    4x4 conv D1a) gets it on the [N, 4, 4, C] map before flattening, not per pixel with √(16C)."""
    x = jnp.ones((64, 4, 4, 256))
    s = 0.01
    out = np.asarray(progan.GDrop().apply({}, x, s, rngs={"noise": jax.random.key(0)}))
    np.testing.assert_array_equal(out, np.broadcast_to(out[:, :1, :1], out.shape))  # over H, W
    noise = (out[:, 0, 0] - 1.0) / (s * math.sqrt(256))  # [N, C] independent N(0, 1) draws
    assert abs(noise.std() - 1.0) < 0.03 and abs(noise.mean()) < 0.03  # 16384 draws: σ ~ 0.006
    assert np.abs(noise[0] - noise[1]).min() > 0 and np.abs(noise[:, 0] - noise[:, 1]).min() > 0

    d = progan.Critic(resolution=16, fmap_base=64, fmap_max=32)
    params = _init(d, jnp.zeros((8, 16, 16, 3)))
    calls = {}

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if isinstance(context.module, progan.GDrop):
            calls["/".join(context.module.path)] = (np.asarray(args[0]), np.asarray(out))
        return out

    images = jax.random.uniform(jax.random.key(4), (8, 16, 16, 3), minval=-1, maxval=1)
    with nn.intercept_methods(record):
        d.apply({"params": params}, images, noise_strength=s, rngs={"noise": jax.random.key(1)})
    assert sorted(calls) == sorted(
        f"{b}/{n}_noise"
        for b, names in {"16x16": ("Conv0", "Conv1"), "8x8": ("Conv0", "Conv1"),
                         "4x4": ("Conv", "Dense0")}.items()
        for n in names
    )  # fmt: skip
    for path, (inputs, outputs) in calls.items():
        assert inputs.ndim == 4, path  # Dense0's input too: the 4x4 map, not the flat vector
        c = inputs.shape[-1]
        ok = np.abs(inputs) > 1e-3
        multiplier = np.where(ok, outputs / np.where(ok, inputs, 1.0), np.nan)
        per_channel = np.nanmean(multiplier, axis=(1, 2))  # [N, C]
        # Constant over H, W (float32 x·m / x: a few ulps).
        spread = np.nanmax(np.abs(multiplier - per_channel[:, None, None]))
        assert spread < 1e-5 * np.nanmax(np.abs(per_channel)), path
        noise = (per_channel - 1.0) / (s * math.sqrt(c))
        assert 0.7 < np.nanstd(noise) < 1.3, (path, np.nanstd(noise))  # >= 8·16 draws
