"""CycleGAN's networks against the reference: parameter counts, init, layers by their numpy
definitions, output sizes, and a forward pass against PyTorch (tests/fixtures/cyclegan, made by
scripts/make_cyclegan_fixture.py).

Equivalence is checked in float64 (`jax.enable_x64`): float32 convolutions are summed in an order
XLA:CPU picks per instruction set, so their last bits differ between CPUs.
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import cyclegan, layers

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "cyclegan"


def _count(params):
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def _shapes(model, x):
    """Parameter shapes without computing anything (the 11M-parameter generator stays instant)."""
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x))["params"]


def _output_shape(model, x):
    return jax.eval_shape(lambda: model.init_with_output(jax.random.key(0), x)[0]).shape


@pytest.mark.parametrize("num_blocks, expected", [(9, 11_378_179), (6, 7_837_699)])
def test_generator_parameter_counts_equal_the_reference(num_blocks, expected):
    # networks.py ResnetGenerator, ngf 64, 3 -> 3 channels:
    # Conv7 3->64 (9,472) + Conv3 s2 64->128 (73,856) + 128->256 (295,168)
    # + blocks x 2 x Conv3 256->256 (590,080) + ConvT 256->128 (295,040) + 128->64 (73,792)
    # + Conv7 64->3 (9,411); resnet_9blocks = 11.378 M as printed in junyanz/CycleGAN#91.
    g = cyclegan.Generator(channels=3, width=64, num_blocks=num_blocks)
    assert _count(_shapes(g, jnp.zeros((1, 256, 256, 3)))) == expected


def test_patchgan_parameter_count_equals_the_reference():
    # NLayerDiscriminator ndf 64, n_layers 3: Conv4 3->64 (3,136) + 64->128 (131,200)
    # + 128->256 (524,544) + 256->512 (2,097,664) + 512->1 (8,193); 2.765 M in junyanz/CycleGAN#91.
    d = cyclegan.Discriminator(width=64, num_layers=3)
    assert _count(_shapes(d, jnp.zeros((1, 256, 256, 3)))) == 2_764_737


@pytest.mark.slow
def test_init_is_normal_0_02_with_zero_biases():
    g = cyclegan.Generator(channels=3, width=16, num_blocks=1)
    d = cyclegan.Discriminator(width=64, num_layers=3)
    x = jnp.zeros((1, 32, 32, 3))
    # Jitted with an 'rbg' key: eager Flax init compiles every op (and threefry) separately.
    key = jax.random.key(0, impl="rbg")
    for model in (g, d):
        params = jax.jit(model.init)(key, x)["params"]
        for path, leaf in jax.tree_util.tree_leaves_with_path(params):
            name = jax.tree_util.keystr(path)
            values = np.asarray(leaf, np.float64).ravel()
            if name.endswith("['bias']"):
                np.testing.assert_array_equal(values, 0.0, err_msg=name)
                continue
            # Sampling error of n >= 2,352 draws: the mean's SE is 0.02/√n, the std's relative SE
            # 1/√(2n) (<= 1.5%); 5 SE is a bound no seed crosses by chance.
            n = values.size
            assert abs(values.mean()) < 5 * 0.02 / np.sqrt(n), name
            np.testing.assert_allclose(values.std(), 0.02, rtol=5 / np.sqrt(2 * n), err_msg=name)


def test_instance_norm_matches_its_definition():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4, 6)) * rng.uniform(0.1, 10, size=(3, 1, 1, 6)) + 3
    # torch.nn.InstanceNorm2d(affine=False): per (sample, channel) over H, W, biased variance.
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = ((x - mean) ** 2).sum(axis=(1, 2), keepdims=True) / (5 * 4)
    expected = (x - mean) / np.sqrt(var + 1e-5)
    with jax.enable_x64(True):
        out = layers.instance_norm(jnp.asarray(x))
    assert out.dtype == jnp.float64
    # float64 statistics of 20 values: ~1e-15 relative; outputs |y| < 5.
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)


def test_reflection_pad_matches_pytorch_reflection_pad_2d():
    x = np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3)

    def reflect(i, size):  # ReflectionPad2d: index -1 reads 1, index size reads size - 2
        i = abs(i)
        return 2 * (size - 1) - i if i >= size else i

    pad = 3
    rows = [reflect(i - pad, 4) for i in range(4 + 2 * pad)]
    cols = [reflect(j - pad, 5) for j in range(5 + 2 * pad)]
    assert rows == [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
    expected = x[:, rows][:, :, cols]
    np.testing.assert_array_equal(layers.reflection_pad(jnp.asarray(x), pad), expected)


def _numpy_conv_transpose_2d(x, weight, bias, stride, padding, output_padding):
    """PyTorch ConvTranspose2d by its definition, NCHW, float64: x[i] · w[a] is added at
    out[stride·i + a - padding]; out size (H - 1)·stride - 2·padding + k + output_padding."""
    n, _, h, w = x.shape
    _, c_out, k, _ = weight.shape
    full = np.zeros(
        (n, c_out, (h - 1) * stride + k + output_padding, (w - 1) * stride + k + output_padding)
    )
    for i in range(h):
        for j in range(w):
            full[:, :, stride * i : stride * i + k, stride * j : stride * j + k] += np.einsum(
                "nc,cohw->nohw", x[:, :, i, j], weight
            )
    out_h = (h - 1) * stride - 2 * padding + k + output_padding
    out_w = (w - 1) * stride - 2 * padding + k + output_padding
    out = full[:, :, padding : padding + out_h, padding : padding + out_w]
    return out + bias[None, :, None, None]


@pytest.mark.parametrize("impl", list(layers.CONV_FORMULATIONS))
def test_upsampling_is_pytorch_conv_transpose_with_output_padding(monkeypatch, impl):
    """The generator's `Up` layers equal ConvTranspose2d(k3, s2, p1, output_padding=1), with the
    PyTorch weight [in, out, k, k] converted by `kernel_from_torch`."""
    monkeypatch.setenv("JAXGAN_CONV_IMPL", impl)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 3, 5))  # NCHW
    weight = rng.normal(size=(4, 6, 3, 3))
    bias = rng.normal(size=6)
    expected = _numpy_conv_transpose_2d(x, weight, bias, 2, 1, 1)
    assert expected.shape == (2, 6, 6, 10)  # exactly 2H × 2W
    up = layers.ConvTranspose2D(6, 3, 2, 1)
    params = {"kernel": cyclegan.kernel_from_torch(weight), "bias": bias}
    with jax.enable_x64(True):
        out = up.apply({"params": params}, jnp.asarray(x.transpose(0, 2, 3, 1)))
    assert out.dtype == jnp.float64
    # Sums of <= 4·4 products of N(0, 1) numbers in float64: |error| ~ 1e-14.
    np.testing.assert_allclose(out, expected.transpose(0, 2, 3, 1), rtol=0, atol=1e-11)


@pytest.mark.parametrize("num_layers, expected_hw", [(1, 126), (3, 30), (5, 6)])
def test_patch_map_size(num_layers, expected_hw):
    # 256 halved by each stride-2 conv, then -1 by the stride-1 conv and -1 by the output conv;
    # 30×30 is the 70×70 PatchGAN's map.
    d = cyclegan.Discriminator(width=8, num_layers=num_layers)
    assert _output_shape(d, jnp.zeros((2, 256, 256, 3))) == (2, expected_hw, expected_hw, 1)


@pytest.mark.parametrize("hw", [(20, 28), (128, 128), (256, 256)])
def test_generator_keeps_the_image_size(hw):
    g = cyclegan.Generator(channels=1, width=8, num_blocks=6)
    assert _output_shape(g, jnp.zeros((2, *hw, 3))) == (2, *hw, 1)


def test_generator_rejects_sizes_that_are_not_multiples_of_4():
    g = cyclegan.Generator(width=8, num_blocks=1)
    with pytest.raises(ValueError, match="18×20: height and width must be multiples of 4"):
        _output_shape(g, jnp.zeros((1, 18, 20, 3)))


def _load_fixture(name):
    with np.load(FIXTURES / f"{name}.npz") as data:
        arrays = dict(data)
    prefix = "state_dict/"
    state_dict = {k[len(prefix) :]: v.astype(np.float64) for k, v in arrays.items() if prefix in k}
    images = arrays["input"].astype(np.float64).transpose(0, 2, 3, 1)  # NCHW -> NHWC
    return arrays, state_dict, images, arrays["output"].transpose(0, 2, 3, 1)


@pytest.mark.parametrize("impl", list(layers.CONV_FORMULATIONS))
def test_generator_matches_pytorch(monkeypatch, impl):
    """ResnetGenerator (width 4, 2 blocks) from its PyTorch state_dict: the same outputs."""
    monkeypatch.setenv("JAXGAN_CONV_IMPL", impl)
    arrays, state_dict, images, expected = _load_fixture("generator")
    params = cyclegan.generator_params_from_torch(state_dict)
    assert len(params) == 6 + int(arrays["num_blocks"])
    g = cyclegan.Generator(channels=3, width=int(arrays["width"]), num_blocks=2)
    with jax.enable_x64(True):
        out = jax.jit(g.apply)({"params": params}, jnp.asarray(images))
    assert out.dtype == jnp.float64
    # Both sides float64 on the same float32-exact weights: each conv sum (<= 196 terms) is exact
    # to ~1e-15 relative, and 11 convs and instance norms keep it there (4e-15 measured). 1e-9
    # leaves any CPU a wide margin and is 1,000x below float32 rounding (2e-6), let alone a
    # layout or layer error.
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("impl", list(layers.CONV_FORMULATIONS))
def test_discriminator_matches_pytorch(monkeypatch, impl):
    """NLayerDiscriminator (width 4, 3 layers) on a 32×40 input: the same 2×3 logit map."""
    monkeypatch.setenv("JAXGAN_CONV_IMPL", impl)
    arrays, state_dict, images, expected = _load_fixture("discriminator")
    params = cyclegan.discriminator_params_from_torch(state_dict)
    d = cyclegan.Discriminator(width=int(arrays["width"]), num_layers=int(arrays["num_layers"]))
    with jax.enable_x64(True):
        out = jax.jit(d.apply)({"params": params}, jnp.asarray(images))
    assert out.shape == (2, 2, 3, 1)
    # As for the generator: float64 on both sides, 5 convs (2e-15 measured).
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-9)
