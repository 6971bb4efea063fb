"""NICE-GAN's networks against the reference: parameter counts, init, CAM, ILN/adaILN and
PixelShuffle by their definitions, spectral-norm state, and forward passes against PyTorch
(tests/fixtures/nicegan, made by scripts/make_nicegan_fixture.py).

Equivalence is checked in float64 (`jax.enable_x64`), as in tests/test_cyclegan_models.py.
"""

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import layers, nicegan

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "nicegan"
SPECTRAL = layers.SPECTRAL_COLLECTION


def _count(params):
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def _shapes(model, x):
    """Variable shapes without computing anything (the 276M-parameter generator stays instant)."""
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x))


def test_discriminator_parameter_count_equals_the_reference():
    # networks.py Discriminator, ndf 64, n_layers 7: the PyTorch
    # build in scripts/make_nicegan_fixture.py prints 46,874,433 (encoder 167,489).
    variables = _shapes(nicegan.Discriminator(width=64, num_layers=7), jnp.zeros((1, 256, 256, 3)))
    assert _count(variables["params"]) == 46_874_433
    assert _count(variables["params"]["encoder"]) == 167_489
    # One u per spectral norm: 2 encoder convs, the CAM's fc, 7 classifier convs (Dis0_0,
    # Dis0_1, 2 × Dis1_0, Dis1_1, conv0, conv1).
    assert len(jax.tree.leaves(variables[SPECTRAL])) == 10


@pytest.mark.parametrize("light, expected", [(True, 8_104_640), (False, 276_474_560)])
def test_generator_parameter_counts_equal_the_reference(light, expected):
    # ResnetGenerator ngf 64, 6 blocks, img_size 256 (its code is 64×64×128): the PyTorch build
    # prints 8,104,640 light and 276,474,560 full (§2.3).
    g = nicegan.Generator(channels=3, width=64, num_blocks=6, light=light)
    assert _count(_shapes(g, jnp.zeros((1, 64, 64, 128)))["params"]) == expected


def test_init_is_pytorch_default():
    # The encoder has every kind of D layer (SN convs with biases, the CAM's SN fc, the plain 1×1
    # conv, lamda); the classifier's convs are the same `_sn_block` (one init compile less).
    key = jax.random.key(0, impl="rbg")
    d = jax.jit(nicegan.Encoder(width=8).init)(key, jnp.zeros((1, 16, 16, 3)))
    g = jax.jit(nicegan.Generator(width=4, num_blocks=1).init)(key, jnp.zeros((1, 4, 4, 8)))
    for variables in (d, g):
        for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"]):
            name, values = jax.tree_util.keystr(path), np.asarray(leaf)
            if "rho" in name:  # ILN [1, 3.2] (mostly LN), adaILN [3.2, 1] (mostly IN)
                start = [3.2, 1.0] if "Norm" in name else [1.0, 3.2]
                start = np.broadcast_to(np.float32(start), values.shape)
                np.testing.assert_array_equal(values, start, name)
            elif "gamma" in name or "beta" in name or "lamda" in name:
                np.testing.assert_array_equal(values, 1.0 if "gamma" in name else 0.0, name)
            else:  # kaiming_uniform(a=√5) weights, and biases, U(±1/√fan_in) of the weight
                kernel = leaf if name.endswith("['kernel']") else None
                if kernel is None:
                    parent = variables["params"]
                    for key_ in path[:-1]:
                        parent = parent[key_.key]
                    kernel = parent["kernel"]
                bound = 1 / np.sqrt(layers.fan_in(kernel.shape))
                assert np.abs(values).max() <= bound, name
                # A uniform draw fills its range: P(max < 80% of it) = 0.8^n < 1e-6 for n ≥ 64.
                assert np.abs(values).max() > 0.8 * bound or values.size < 64, name
    for u in jax.tree.leaves(d[SPECTRAL]):
        np.testing.assert_allclose(np.linalg.norm(u), 1.0, rtol=1e-6)


def _leaky_relu(x):
    return np.where(x > 0, x, 0.2 * x)


def test_cam_with_lamda_zero_is_lrelu_of_the_trunk_and_its_logit_a_hand_computation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 6, 3))
    w = rng.normal(size=6)  # fc.weight_orig [1, 2C] as a [2C] vector: w_gap | w_gmp
    conv = {"kernel": rng.normal(size=(1, 1, 6, 3)), "bias": rng.normal(size=3)}
    u = np.array([1.0])  # the fc's u has one entry (one output)
    apply = jax.jit(nicegan.CAM().apply)
    with jax.enable_x64(True):
        outputs = {
            lamda: apply(
                {
                    "params": {"kernel": w[:, None], "lamda": np.array([lamda]), "Conv1x1": conv},
                    SPECTRAL: {"kernel_u": u},
                },
                jnp.asarray(x),
            )
            for lamda in (0.0, 0.7)
        }
    code, logit = outputs[0.0]
    np.testing.assert_allclose(code, _leaky_relu(x), rtol=0, atol=1e-15)  # lamda = 0
    # For a 1-row matrix one power iteration is exact: σ = ‖w‖ (up to the 1e-12 eps).
    pooled = np.concatenate([x.mean(axis=(1, 2)), x.max(axis=(1, 2))], axis=-1)
    np.testing.assert_allclose(logit[:, 0], pooled @ w / np.linalg.norm(w), rtol=1e-10)
    # lamda ≠ 0: the 1×1 conv sees [x·w_gap, x·w_gmp] with the *un-normalised* w.
    h = (np.concatenate([x, x], axis=-1) * w) @ conv["kernel"][0, 0] + conv["bias"]
    np.testing.assert_allclose(outputs[0.7][0], _leaky_relu(0.7 * h + x), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(outputs[0.7][1], logit)


def _numpy_mix(x, rho, ddof=1):
    """networks.py ILN/adaILN core on NHWC: torch.var is unbiased (N - 1), eps 1e-5."""
    out_in = (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(
        x.var(axis=(1, 2), keepdims=True, ddof=ddof) + 1e-5
    )
    out_ln = (x - x.mean(axis=(1, 2, 3), keepdims=True)) / np.sqrt(
        x.var(axis=(1, 2, 3), keepdims=True, ddof=ddof) + 1e-5
    )
    weights = np.exp(rho) / np.exp(rho).sum(axis=-1, keepdims=True)
    return weights[:, 0] * out_in + weights[:, 1] * out_ln


def test_iln_and_adailn_match_numpy_with_unbiased_variance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 4, 5)) * rng.uniform(0.5, 3, size=(2, 1, 1, 5)) + 2
    rho, gamma, beta = rng.normal(size=(5, 2)), rng.normal(size=(5,)), rng.normal(size=(5,))
    g_n, b_n = rng.normal(size=(2, 5)), rng.normal(size=(2, 5))  # adaILN's are per sample

    @jax.jit
    def both(x):
        iln = nicegan.ILN().apply({"params": {"rho": rho, "gamma": gamma, "beta": beta}}, x)
        return iln, nicegan.AdaILN().apply({"params": {"rho": rho}}, x, g_n, b_n)

    with jax.enable_x64(True):
        iln, ada = both(jnp.asarray(x))
    mix = _numpy_mix(x, rho)
    np.testing.assert_allclose(iln, mix * gamma + beta, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ada, mix * g_n[:, None, None] + b_n[:, None, None], atol=1e-12)
    # The test tells the variances apart: a biased one moves the result by far more than 1e-12.
    assert np.abs(_numpy_mix(x, rho, ddof=0) - mix).max() > 1e-3


def test_pixel_shuffle_is_pytorchs_channel_order():
    x = np.arange(2 * 3 * 4 * 12, dtype=np.float32).reshape(2, 3, 4, 12)  # NHWC, C = 3·2²
    out = np.asarray(nicegan.pixel_shuffle(jnp.asarray(x), 2))
    assert out.shape == (2, 6, 8, 3)
    r = 2  # torch.nn.PixelShuffle: out[c, h·r + i, w·r + j] = in[c·r² + i·r + j, h, w]
    for c in range(3):
        for h in range(3):
            for w in range(4):
                for i in range(r):
                    for j in range(r):
                        assert out[:, h * r + i, w * r + j, c].tolist() == (
                            x[:, h, w, c * r * r + i * r + j].tolist()
                        )


def test_input_checks():
    with pytest.raises(ValueError, match="num_layers >= 6"):
        _shapes(nicegan.Discriminator(width=1, num_layers=5), jnp.zeros((1, 96, 96, 3)))
    with pytest.raises(ValueError, match="98×96: height and width must be multiples of 4"):
        _shapes(nicegan.Discriminator(width=1), jnp.zeros((1, 98, 96, 3)))


# ----------------------------------------------------------------------------------------------
# Against PyTorch (float64).
# ----------------------------------------------------------------------------------------------


@functools.lru_cache
def _fixture(name):
    with np.load(FIXTURES / f"{name}.npz") as data:
        arrays = dict(data)
    prefix = "state_dict/"
    state_dict = {k[len(prefix) :]: v.astype(np.float64) for k, v in arrays.items() if prefix in k}
    return arrays, state_dict


def _nhwc(x):
    return np.asarray(x).transpose(0, 2, 3, 1)


_DISCRIMINATOR = nicegan.Discriminator(width=1, num_layers=7)  # the fixture's
_D_TRAIN = jax.jit(functools.partial(_DISCRIMINATOR.apply, mutable=[SPECTRAL]))


def _power_iteration(kernel, u):
    """One step of torch.nn.utils.spectral_norm's training-mode update (eps 1e-12)."""
    matrix = np.asarray(kernel).reshape(-1, kernel.shape[-1]).T
    v = u @ matrix
    v /= max(np.linalg.norm(v), 1e-12)
    u = matrix @ v
    return u / max(np.linalg.norm(u), 1e-12)


def test_discriminator_matches_pytorch_in_training_mode():
    """Outputs and every u after one training-mode forward (one power iteration) equal torch's."""
    arrays, state_dict = _fixture("discriminator")
    variables = nicegan.discriminator_variables_from_torch(state_dict)
    images = _nhwc(arrays["input"]).astype(np.float64) / 127.5 - 1
    with jax.enable_x64(True):
        out, state = _D_TRAIN(variables, jnp.asarray(images))
    assert out.code.dtype == jnp.float64
    names = ("local_logits", "global_logits", "cam_logits", "heatmap", "code")
    for name, key in zip(names, ("local", "global", "cam", "heatmap", "z")):
        expected = arrays[f"output/{key}"]
        expected = expected if expected.ndim == 2 else _nhwc(expected)
        # float64 on float32-exact weights; conv sums of <= 16·16 terms: ~1e-15 relative.
        np.testing.assert_allclose(getattr(out, name), expected, rtol=0, atol=1e-10, err_msg=name)
    after = nicegan.discriminator_variables_from_torch(
        {**state_dict, **{k.split("/", 1)[1]: v for k, v in arrays.items() if "u_after/" in k}}
    )[SPECTRAL]
    # torch normalises by max(‖·‖, 1e-12), layers.spectral_normalize by ‖·‖ + 1e-12: 1e-12 apart.
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-10), state[SPECTRAL], after
    )


def test_spectral_norm_advances_once_per_training_call_and_not_in_eval():
    arrays, state_dict = _fixture("discriminator")
    variables = nicegan.discriminator_variables_from_torch(state_dict)
    images = _nhwc(arrays["input"]).astype(np.float64) / 127.5 - 1  # float64: `_D_TRAIN` compiled
    # Eval mode (the collection immutable) through `encode`: the encoder alone, one small compile.
    encode = jax.jit(functools.partial(_DISCRIMINATOR.apply, method="encode"))
    with jax.enable_x64(True):
        first, state1 = _D_TRAIN(variables, images)
        second, state2 = _D_TRAIN({**variables, **state1}, images)
        code = encode({**variables, **state1}, images)
    # Each training call is one more power iteration from the stored u, layer by layer.
    kernels = {
        jax.tree_util.keystr(p[:-1]): k
        for p, k in jax.tree_util.tree_leaves_with_path(variables["params"])
        if p[-1].key == "kernel"
    }
    for path, u2 in jax.tree_util.tree_leaves_with_path(state2[SPECTRAL]):
        layer = jax.tree_util.keystr(path[:-1])
        u1 = np.asarray(functools.reduce(lambda t, k: t[k.key], path, state1[SPECTRAL]))
        np.testing.assert_allclose(u2, _power_iteration(kernels[layer], u1), atol=1e-12)
        if u1.size > 1:  # a one-output layer's u is ±1 forever
            assert np.abs(np.asarray(u2) - u1).max() > 1e-6, layer  # it did move
    assert not np.array_equal(first.local_logits, second.local_logits)
    # Eval mode returns no state to store and normalises as a training call from the same u
    # does; `encode` is the code of the full forward.
    assert isinstance(code, jax.Array)
    np.testing.assert_array_equal(code, second.code)


@pytest.mark.parametrize("name", ["generator_light", "generator_full"])
def test_generator_matches_pytorch(name):
    arrays, state_dict = _fixture(name)
    params = nicegan.generator_params_from_torch(state_dict)
    assert sum(k.startswith("Block") for k in params) == int(arrays["num_blocks"])
    g = nicegan.Generator(
        channels=3, width=int(arrays["width"]), num_blocks=int(arrays["num_blocks"]),
        light=bool(arrays["light"]),
    )  # fmt: skip
    with jax.enable_x64(True):
        code = jnp.asarray(_nhwc(arrays["input"]).astype(np.float64))
        out = jax.jit(g.apply)({"params": params}, code)
    assert out.dtype == jnp.float64
    # As for D: float64 on both sides (about 1e-15 expected); 1e-10 is far below float32 rounding.
    np.testing.assert_allclose(out, _nhwc(arrays["output/image"]), rtol=0, atol=1e-10)
