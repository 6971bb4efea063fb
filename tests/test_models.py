"""Model output shapes and parameter counts against the reference architectures.

The counts are derived layer by layer from the reference code (kept in the comments) or quoted from
the reference's own printout, so a change to any layer's shape, bias or norm fails here.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import dcgan, layers, resnet


def _count(params):
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def _init(model, x, labels=None):
    # Jitted with an 'rbg' key: eager Flax init compiles every op (and threefry) separately.
    return jax.jit(model.init)(jax.random.key(0, impl="rbg"), x, labels)["params"]


def _apply(model, params, *args):
    return jax.jit(lambda p, *a: model.apply({"params": p}, *a))(params, *args)


def _shapes(model, x, labels=None):
    """Parameter shapes without computing anything (counts of the big models stay instant)."""
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x, labels))["params"]


def test_dcgan64_parameter_counts_equal_pytorch_examples():
    # pytorch/examples dcgan/main.py with nz=100, ngf=ndf=64, nc=3 prints these totals.
    g = dcgan.Generator(resolution=64, channels=3, width=64)
    d = dcgan.Critic(resolution=64, width=64, norm="batch")
    g_params = _shapes(g, jnp.zeros((2, 100)))
    d_params = _shapes(d, jnp.zeros((2, 64, 64, 3)))
    assert _count(g_params) == 3_576_704
    assert _count(d_params) == 2_765_568


@pytest.mark.slow
@pytest.mark.parametrize("resolution", [32, 64])
def test_dcgan_shapes_and_range(resolution):
    g = dcgan.Generator(resolution=resolution, channels=1, width=8)
    z = jax.random.normal(jax.random.key(1), (4, 100))
    images = _apply(g, _init(g, z), z)
    assert images.shape == (4, resolution, resolution, 1)
    assert float(jnp.max(jnp.abs(images))) <= 1.0
    d = dcgan.Critic(resolution=resolution, width=8, norm="layer", num_classes=10)
    scores, logits = _apply(d, _init(d, images), images)
    assert scores.shape == (4,) and logits.shape == (4, 10)


def test_resnet32_parameter_counts():
    # gan_cifar_resnet.py, DIM_G = DIM_D = 128, 3 channels.
    # G: Linear 128->2048 (264,192) + 3 up-blocks x [BN 256 + Conv3x3 147,584 + BN 256 + Conv3x3 147,584
    #    + 1x1 shortcut 16,512] (936,576) + output BN 256 + Conv3x3 128->3 (3,459) = 1,204,483.
    # D: block1 [3,584 + 147,584 + shortcut 512] + block2 [2 x 147,584 + 16,512]
    #    + 2 plain blocks [2 x 147,584] + Linear 128->1 (129) = 1,053,825.
    g = resnet.Generator32(channels=3, width=128)
    d = resnet.Critic32(width=128)
    assert _count(_shapes(g, jnp.zeros((2, 128)))) == 1_204_483
    assert _count(_shapes(d, jnp.zeros((2, 32, 32, 3)))) == 1_053_825
    # The AC-GAN head adds Linear(128 -> 10).
    d_ac = resnet.Critic32(width=128, num_classes=10)
    assert _count(_shapes(d_ac, jnp.zeros((2, 32, 32, 3)))) == 1_053_825 + 1_290


def test_resnet64_parameter_counts():
    # gan_64x64.py GoodGenerator / GoodDiscriminator, DIM = 64, 3 channels.
    # G: Linear 128->8192 (1,056,768) + Res1 512->512 (4,983,808) + Res2 512->256 (1,902,592)
    #    + Res3 256->128 (476,160) + Res4 128->64 (119,296) + BN 128 + Conv 64->3 (1,731) = 8,540,483.
    # D: Conv 3->64 (1,792) + Res1 64->128 (119,296) + Res2 128->256 (476,160) + Res3 256->512 (1,902,592)
    #    + Res4 512->512 (4,983,808) + Linear 8192->1 (8,193) = 7,491,841.
    g = resnet.Generator64(channels=3, width=64)
    d = resnet.Critic64(width=64)
    assert _count(_shapes(g, jnp.zeros((2, 128)))) == 8_540_483
    assert _count(_shapes(d, jnp.zeros((2, 64, 64, 3)))) == 7_491_841


@pytest.mark.slow
@pytest.mark.parametrize(
    "gen, crit, res",
    [(resnet.Generator32, resnet.Critic32, 32), (resnet.Generator64, resnet.Critic64, 64)],
)
def test_resnet_shapes_and_conditional_batchnorm(gen, crit, res):
    g = gen(channels=1, width=8, num_classes=10)
    z = jax.random.normal(jax.random.key(2), (4, 16))
    labels = jnp.array([0, 3, 3, 9])
    g_params = _init(g, z, labels)
    images = _apply(g, g_params, z, labels)
    assert images.shape == (4, res, res, 1) and float(jnp.max(jnp.abs(images))) <= 1.0
    # Per-class BN parameters start equal, so labels do not matter yet; a class-3 scale does.
    same = _apply(g, g_params, z, jnp.zeros_like(labels))
    np.testing.assert_array_equal(same, images)  # equal rows of equal numbers: exactly equal
    first = "Block1" if res == 32 else "Res1"
    g_params[first]["Norm1"]["scale"] = g_params[first]["Norm1"]["scale"].at[3].mul(2.0)
    assert np.abs(np.asarray(_apply(g, g_params, z, labels) - images)).max() > 1e-3
    d = crit(width=8)
    scores, logits = _apply(d, _init(d, images), images)
    assert scores.shape == (4,) and logits is None


def _tflib_residual_block(params, x, resample, norm):
    """tflib's ResidualBlock written out in its own order: the shortcut's 1×1 conv on the
    upsampled input, or before its mean; nearest ×2 before conv1, the 2×2 mean after conv2."""

    def conv(name, h):
        return layers.conv2d(h, params[name]["kernel"]) + params[name].get("bias", 0.0)

    def normalize(name, h):
        if norm == "none":
            return h
        mean = h.mean(axis=(1, 2, 3), keepdims=True)
        var = h.var(axis=(1, 2, 3), keepdims=True)
        return (h - mean) / jnp.sqrt(var + 1e-5) * params[name]["scale"] + params[name]["offset"]

    def up(h):
        return layers.upsample_nearest(h) if resample == "up" else h

    def down(h):
        return layers.downsample_mean(h) if resample == "down" else h

    shortcut = down(conv("Shortcut", up(x))) if "Shortcut" in params else x
    h = conv("Conv1", up(jax.nn.relu(normalize("Norm1", x))))
    return shortcut + down(conv("Conv2", jax.nn.relu(normalize("Norm2", h))))


@pytest.mark.parametrize(
    "resample, norm, features", [("up", "none", 6), ("down", "layer", 6), (None, "none", 5)]
)
def test_residual_block_is_tflibs(resample, norm, features):
    """The block's 1×1 shortcut at the lower resolution and its resampled convolutions computed
    as one map each (`layers.Conv2D(resample=...)`) give tflib's function, in float64."""
    block = resnet.ResidualBlock(features, resample, norm)
    with jax.enable_x64(True):
        x = jax.random.normal(jax.random.key(3), (2, 8, 8, 4), jnp.float64)
        params = _init(block, x.astype(jnp.float32))  # float32 parameters, cast below
        # Random biases, and LayerNorm scales and offsets away from 1 and 0.
        leaves, tree = jax.tree.flatten(params)
        keys = jax.random.split(jax.random.key(4), len(leaves))
        params = jax.tree.unflatten(
            tree,
            [p + 0.3 * jax.random.normal(k, p.shape, jnp.float64) for p, k in zip(leaves, keys)],
        )
        got = _apply(block, params, x)
        expected = _tflib_residual_block(params, x, resample, norm)
    assert got.dtype == jnp.float64 and got.shape == expected.shape
    # Sums of <= 9·6 products of N(0, 1)-sized numbers in float64: |error| ~ 1e-14.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-11)
