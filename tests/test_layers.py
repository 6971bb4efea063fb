"""Layers against numpy references; both convolution formulations against each other.

The convolution tests run in float64 (`jax.enable_x64`): XLA:CPU orders a convolution's sums for
the CPU's instruction set, so float32 results differ by CPU, and the double-backward comparisons
amplify that; in float64 each is within a few hundred ulps of the exact value on any CPU.
"""

import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.models import layers


def _numpy_conv(x, w, stride, pads):
    """Direct cross-correlation loop in float64: the definition `conv2d` must equal."""
    x = np.pad(x.astype(np.float64), ((0, 0), pads[0], pads[1], (0, 0)))
    kh, kw, _, cout = w.shape
    oh, ow = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, cout))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            out[:, i, j] = np.einsum("nhwc,hwco->no", patch, w.astype(np.float64))
    return out


@pytest.mark.parametrize("impl", list(layers.CONV_FORMULATIONS))
@pytest.mark.parametrize(
    "kernel, stride, padding, expected_pads",
    [
        (3, 1, "SAME", ((1, 1), (1, 1))),
        (4, 2, 1, ((1, 1), (1, 1))),  # DCGAN
        (5, 2, "SAME", ((1, 2), (1, 2))),  # TF puts the extra pixel at the end
        (4, 1, "VALID", ((0, 0), (0, 0))),
    ],
)
def test_conv2d_matches_numpy_definition(monkeypatch, impl, kernel, stride, padding, expected_pads):
    monkeypatch.setenv("JAXGAN_CONV_IMPL", impl)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 8, 3))
    w = rng.normal(size=(kernel, kernel, 3, 5))
    assert layers.explicit_padding(padding, (8, 8), (kernel, kernel), stride) == expected_pads
    with jax.enable_x64(True):
        out = layers.conv2d(jnp.asarray(x), jnp.asarray(w), stride, padding)
    assert out.dtype == jnp.float64
    # Sums of <= 48 products of N(0, 1) numbers: |error| <= 48·2^-53·sum|x·w| ~ 2e-13.
    np.testing.assert_allclose(out, _numpy_conv(x, w, stride, expected_pads), rtol=0, atol=1e-11)


def test_conv_formulations_agree_through_the_double_backward(monkeypatch):
    """The GP differentiates d/dθ of |∂D/∂x|: every formulation must give the same gradients."""
    rng = np.random.default_rng(1)
    w1 = rng.normal(size=(4, 4, 2, 6)) * 0.3
    w2 = rng.normal(size=(3, 3, 6, 4)) * 0.3
    x = rng.normal(size=(3, 8, 8, 2))

    def penalty(params):
        def critic(x):
            h = jnp.tanh(layers.conv2d(x, params[0], 2, 1))
            return jnp.sum(jnp.tanh(layers.conv2d(h, params[1], 1, "SAME")), axis=(1, 2, 3))

        g = jax.grad(lambda x: critic(x).sum())(x)
        return jnp.sum(g**2)

    grads = {}
    for impl in layers.CONV_FORMULATIONS:
        monkeypatch.setenv("JAXGAN_CONV_IMPL", impl)
        with jax.enable_x64(True):
            grads[impl] = jax.jit(jax.grad(penalty))((jnp.asarray(w1), jnp.asarray(w2)))
    # float64: the two orders of summation differ by ~1e-15 relative per sum; 1e-10 leaves room
    # for the double backward's cancellations (gradients near 0 get the absolute floor).
    for other in set(layers.CONV_FORMULATIONS) - {"lax"}:
        for a, b in zip(grads["lax"], grads[other]):
            assert a.dtype == jnp.float64
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "x_shape, kernel_shape, stride, padding",
    [
        ((2, 70, 66, 8), (7, 7, 8, 3), 1, "VALID"),  # CycleGAN's output layer, narrower
        ((1, 7, 9, 16), (4, 4, 16, 1), 1, 1),  # the PatchGAN's score
        ((2, 9, 10, 4), (4, 3, 4, 2), 2, 1),
        ((1, 10, 11, 4), (3, 3, 4, 3), 3, "VALID"),  # a stride that leaves pixels unread
    ],
)
def test_col2im_gradients_are_the_native_forms(x_shape, kernel_shape, stride, padding):
    """col2im's hand-written VJP (the cotangent's patch matrix, then one matmul per gradient)
    against autodiff of XLA's convolution, in float64."""
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=x_shape))
        kernel = jnp.asarray(rng.normal(size=kernel_shape))
        pads = layers.explicit_padding(padding, x_shape[1:3], kernel_shape[:2], stride)
        outs, grads = {}, {}
        for impl in ("lax", "col2im"):
            conv = functools.partial(layers.CONV_FORMULATIONS[impl], stride=stride, pads=pads)
            outs[impl], vjp = jax.vjp(conv, x, kernel)
            cotangent = jnp.asarray(np.random.default_rng(3).normal(size=outs[impl].shape))
            grads[impl] = vjp(cotangent)
    # Sums of <= 7·7·8 = 392 products of N(0, 1) numbers in float64: |error| ~ 1e-13.
    np.testing.assert_allclose(outs["col2im"], outs["lax"], rtol=0, atol=1e-10)
    for got, expected in zip(grads["col2im"], grads["lax"]):
        assert got.shape == expected.shape and got.dtype == jnp.float64
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


def test_conv_impl_choice(monkeypatch):
    monkeypatch.setenv("JAXGAN_CONV_IMPL", "rule")
    assert layers.conv_impl(1) == "lax"
    assert layers.conv_impl(2) == ("patches" if jax.default_backend() == "cpu" else "lax")
    monkeypatch.setenv("JAXGAN_CONV_IMPL", "fast")
    with pytest.raises(ValueError, match="JAXGAN_CONV_IMPL='fast'"):
        layers.conv_impl(1)


@pytest.mark.parametrize("impl", ["lax", "patches"])
def test_conv_transpose_is_pytorch_conv_transpose(monkeypatch, impl):
    """ConvTranspose2d(k=4, s=2, p=1) by its definition: scatter-add x[i]·w into out[s·i + k - p]."""
    monkeypatch.setenv("JAXGAN_CONV_IMPL", impl)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 3, 4))  # [N, h, w, C_in of the deconv]
    w = rng.normal(size=(4, 4, 5, 4))  # forward-conv layout [k, k, C_out, C_in]
    full = np.zeros((2, 3 * 2 + 2, 3 * 2 + 2, 5))  # (h-1)·s + k before cropping p = 1 a side
    for i in range(3):
        for j in range(3):
            full[:, 2 * i : 2 * i + 4, 2 * j : 2 * j + 4] += np.einsum(
                "nc,hwoc->nhwo", x[:, i, j], w
            )
    expected = full[:, 1:-1, 1:-1]
    with jax.enable_x64(True):
        out = layers.conv2d_transpose(jnp.asarray(x), jnp.asarray(w), 2, 1, (6, 6))
    assert out.dtype == jnp.float64
    # Sums of <= 16 products of N(0, 1) numbers in float64: |error| ~ 1e-14.
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-11)


@pytest.mark.parametrize(
    "kernel, stride, padding, in_hw, out_hw",
    [(4, 2, 1, 3, 6), (5, 2, "SAME", 4, 7), (3, 2, "SAME", 5, 10), (4, 1, "VALID", 3, 6)],
)
def test_conv_transpose_gradients_match_autodiff_of_the_native_form(
    monkeypatch, kernel, stride, padding, in_hw, out_hw
):
    """The CPU form's hand-written VJP against JAX's autodiff of XLA's transposed convolution,
    first derivatives and the gradient of a gradient norm (what a penalty through G would take)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, in_hw, in_hw, 4))
    w = rng.normal(size=(kernel, kernel, 3, 4)) * 0.3
    probe = rng.normal(size=(2, out_hw, out_hw, 3))

    def loss(x, w):
        return jnp.sum(
            jnp.sin(layers.conv2d_transpose(x, w, stride, padding, (out_hw, out_hw))) * probe
        )

    def second_order(x, w):
        return jnp.sum(jax.grad(loss)(x, w) ** 2)

    results = {}
    for impl in ("lax", "patches"):
        monkeypatch.setenv("JAXGAN_CONV_IMPL", impl)
        with jax.enable_x64(True):
            x64, w64 = jnp.asarray(x), jnp.asarray(w)
            results[impl] = (
                jax.jit(jax.grad(loss, argnums=(0, 1)))(x64, w64),
                jax.jit(jax.grad(second_order, argnums=1))(x64, w64),
            )
    (first_lax, second_lax), (first_patches, second_patches) = results["lax"], results["patches"]
    # float64, as above: ~1e-15 per sum, 1e-10 for what the second derivative amplifies.
    for a, b in zip(first_lax, first_patches):
        assert a.dtype == jnp.float64
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(second_lax, second_patches, rtol=1e-10, atol=1e-12)


def test_tflib_uniform_init_bounds():
    key = jax.random.key(0)
    conv = layers.tflib_uniform(he=True)(key, (3, 3, 64, 128))
    # He: std = sqrt(4 / (fan_in + fan_out)), fan_in = 64·9, fan_out = 128·9; bound = std·√3.
    bound = math.sqrt(4.0 / (64 * 9 + 128 * 9)) * math.sqrt(3)
    assert float(jnp.max(jnp.abs(conv))) <= bound
    # Sampling error, not rounding: the std of n >= 73,728 uniform draws is within ~0.2% (1 SE).
    np.testing.assert_allclose(float(jnp.std(conv)), bound / math.sqrt(3), rtol=0.02)
    dense = layers.tflib_uniform(he=False)(key, (256, 512))
    np.testing.assert_allclose(float(jnp.std(dense)), math.sqrt(2.0 / 768), rtol=0.02)
    deconv = layers.tflib_uniform(he=True, transposed=True)(key, (5, 5, 64, 128))
    np.testing.assert_allclose(
        float(jnp.std(deconv)), math.sqrt(4.0 / (128 * 25 / 4 + 64 * 25)), rtol=0.02
    )


def test_batchnorm_uses_batch_statistics_and_class_parameters():
    x = jax.random.normal(jax.random.key(0), (6, 2, 2, 3)) * 3 + 1
    labels = jnp.array([0, 1, 2, 0, 1, 2])
    bn = layers.BatchNorm(num_classes=3)
    variables = bn.init(jax.random.key(1), x, labels)
    scale = np.arange(9.0).reshape(3, 3) + 1
    offset = -np.arange(9.0).reshape(3, 3)
    out = bn.apply(
        {"params": {"scale": jnp.asarray(scale), "offset": jnp.asarray(offset)}}, x, labels
    )
    xn = np.asarray(x, np.float64)
    normed = (xn - xn.mean(axis=(0, 1, 2))) / np.sqrt(xn.var(axis=(0, 1, 2)) + 1e-5)
    expected = (
        normed * scale[np.asarray(labels)][:, None, None, :]
        + offset[np.asarray(labels)][:, None, None, :]
    )
    # float32 statistics of 24 values: worst case ~1e-5 absolute in outputs up to ~35 (scales <= 9).
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert variables["params"]["scale"].shape == (3, 3)
    with pytest.raises(ValueError, match="needs `labels`"):
        bn.apply(variables, x)


def test_layernorm_is_per_sample():
    x = jax.random.normal(jax.random.key(0), (4, 3, 3, 2)) * 2 + 5
    ln = layers.LayerNorm()
    out = ln.apply(ln.init(jax.random.key(1), x), x)
    xn = np.asarray(x, np.float64).reshape(4, -1)
    expected = (xn - xn.mean(1, keepdims=True)) / np.sqrt(xn.var(1, keepdims=True) + 1e-5)
    # float32 statistics of 18 values ~5 ± 2: worst case ~1e-5 in |y| <= 3, typically ~1e-6.
    np.testing.assert_allclose(np.asarray(out).reshape(4, -1), expected, rtol=1e-5, atol=1e-5)


def test_resampling():
    x = np.arange(2 * 2 * 2 * 1, dtype=np.float32).reshape(1, 2, 2, 2)
    up = np.asarray(layers.upsample_nearest(jnp.asarray(x)))
    np.testing.assert_array_equal(up, x.repeat(2, axis=1).repeat(2, axis=2))
    down = np.asarray(layers.downsample_mean(jnp.asarray(up)))
    np.testing.assert_array_equal(down, x)
    # Integers: the sum of 4 and its quarter are exact in float32, in any order, on any CPU.
    y = np.random.default_rng(0).integers(-1000, 1000, size=(2, 4, 6, 3)).astype(np.float32)
    expected = y.reshape(2, 2, 2, 3, 2, 3).mean(axis=(2, 4))
    np.testing.assert_array_equal(layers.downsample_mean(jnp.asarray(y)), expected)


def _numpy_resampled_conv(x, w, resample):
    """tflib's UpsampleConv ('up': nearest ×2, then the SAME conv) and ConvMeanPool ('down': the
    SAME conv, then the 2×2 mean), as the two separate steps, in numpy float64."""
    if resample == "up":
        x = x.repeat(2, axis=1).repeat(2, axis=2)
    pads = layers.explicit_padding("SAME", x.shape[1:3], w.shape[:2], 1)
    y = _numpy_conv(x, w, 1, pads)
    if resample == "down":
        n, h, wd, c = y.shape
        y = y.reshape(n, h // 2, 2, wd // 2, 2, c).mean(axis=(2, 4))
    return y


@pytest.mark.parametrize(
    "resample, kernel, impl",  # each map at kernels 1, 3 and 4 (SAME pads one more at the end)
    [  # and under both formulations ('auto' is lax at batch 2)
        ("up", 1, "lax"),
        ("up", 3, "lax"),
        ("up", 4, "patches"),
        ("down", 1, "patches"),
        ("down", 3, "patches"),
        ("down", 4, "lax"),
    ],
)
def test_resampled_conv_is_the_resampling_and_the_conv(monkeypatch, resample, kernel, impl):
    """`Conv2D(resample=...)` computes the resampling and the convolution as one map (four
    phase convolutions; one stride-2 convolution of the box-filtered kernel): the same values as
    the two steps, and the same gradients through the penalty's double backward, in float64."""
    monkeypatch.setenv("JAXGAN_CONV_IMPL", impl)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 6, 8, 3))
    w = rng.normal(size=(kernel, kernel, 3, 5))
    # 'down' below MEAN_POOL_FUSED_MIN_CHANNELS is the two steps on CPU: the fused form directly.
    fused = {"up": layers.conv2d_upsampled, "down": layers._conv_mean_pool_fused}[resample]

    def separate(x, w):
        if resample == "up":
            return layers.conv2d(layers.upsample_nearest(x), w)
        return layers.downsample_mean(layers.conv2d(x, w))

    def penalty_gradient(conv, w):  # d/dw of |d/dx sum(tanh(conv(x, w)))|²
        def input_gradient(w):
            return jax.grad(lambda x: jnp.sum(jnp.tanh(conv(x, w))))(jnp.asarray(x))

        return jax.grad(lambda w: jnp.sum(input_gradient(w) ** 2))(jnp.asarray(w))

    with jax.enable_x64(True):
        out = fused(jnp.asarray(x), jnp.asarray(w))
        got, expected = penalty_gradient(fused, w), penalty_gradient(separate, w)
    assert out.dtype == jnp.float64
    # Sums of <= 4·5·5·3 = 300 products of N(0, 1) numbers: |error| ~ 1e-13.
    np.testing.assert_allclose(out, _numpy_resampled_conv(x, w, resample), rtol=0, atol=1e-10)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_a_resampled_conv_refuses_what_it_cannot_fuse():
    with pytest.raises(ValueError, match="cannot be halved"):
        layers.conv2d_mean_pool(jnp.zeros((1, 5, 4, 2)), jnp.zeros((3, 3, 2, 2)))
    conv = layers.Conv2D(4, 3, stride=2, resample="up")
    with pytest.raises(ValueError, match="expected 'up' or 'down' with stride 1 and 'SAME'"):
        conv.init(jax.random.key(0), jnp.zeros((1, 4, 4, 2)))


def _slower_conv(x, kernel):
    """The same convolution 12 times over slightly different inputs (no two alike, so XLA cannot
    merge them): a candidate that is slower by construction."""
    return sum(layers._conv_lax(x * (1 + 1e-3 * i), kernel, 1, ((1, 1), (1, 1))) for i in range(12))


def test_autotune_measures_once_picks_the_faster_and_remembers(monkeypatch, tmp_path):
    from jaxgan.models import conv_autotune

    path = tmp_path / "autotune.json"
    monkeypatch.setenv("JAXGAN_AUTOTUNE_CACHE", str(path))
    candidates = {
        "slow": _slower_conv,
        "fast": lambda x, k: layers._conv_lax(x, k, 1, ((1, 1), (1, 1))),
    }
    # Large enough that the work, not the call overhead, decides: 12x the work is far slower.
    shapes = ((16, 32, 32, 8), (3, 3, 8, 16), ((1, 1), (1, 1)), jnp.float32)
    assert conv_autotune.choose(candidates, *shapes) == "fast"
    (entry,) = json.loads(path.read_text()).items()
    assert entry[1] == "fast" and "x[16, 32, 32, 8]" in entry[0] and "k[3, 3, 8, 16]" in entry[0]
    # A second choice of the same shape reads the file: nothing is timed.
    monkeypatch.setattr(conv_autotune, "seconds_for_gradients", _must_not_measure)
    assert conv_autotune.choose(candidates, *shapes) == "fast"


def _must_not_measure(*args):
    raise AssertionError("measured a shape the cache holds")


def test_an_unreadable_autotune_cache_is_measured_over(monkeypatch, tmp_path, caplog):
    from jaxgan.models import conv_autotune

    path = tmp_path / "autotune.json"
    path.write_text('{"half a file')
    monkeypatch.setenv("JAXGAN_AUTOTUNE_CACHE", str(path))
    timed = {"lax": 2.0, "patches": 1.0}
    monkeypatch.setattr(conv_autotune, "seconds_for_gradients", lambda conv, *a: timed[conv.name])
    candidates = {name: _named(name) for name in timed}
    assert conv_autotune.choose(candidates, (2, 4, 4, 1), (3, 3, 1, 2), "SAME", "f32") == "patches"
    assert "unreadable" in caplog.text
    assert list(json.loads(path.read_text()).values()) == ["patches"]


def _named(name):
    conv = lambda x, k: None
    conv.name = name
    return conv


@pytest.mark.parametrize("faster", ["lax", "patches"])
def test_conv2d_uses_the_formulation_the_autotune_chose(monkeypatch, tmp_path, faster):
    """Under JAXGAN_CONV_IMPL=auto a stride-1 conv2d compiles to what measured faster here (the
    timings are stubbed so that either side wins); strided ones keep patches on CPU."""
    from jaxgan.models import conv_autotune

    monkeypatch.setenv("JAXGAN_CONV_IMPL", "auto")
    monkeypatch.setenv("JAXGAN_AUTOTUNE_CACHE", str(tmp_path / "autotune.json"))
    monkeypatch.setattr(
        conv_autotune,
        "seconds_for_gradients",
        lambda conv, *a: 1.0 if conv.func.__name__ == f"_conv_{faster}" else 2.0,
    )
    kernel = jnp.ones((3, 3, 3, 8))  # wider than NARROW_OUTPUT: lax or patches
    conv = jax.make_jaxpr(lambda x, k: layers.conv2d(x, k, 1, "SAME"))
    jaxpr = str(conv(jnp.ones((layers.AUTOTUNE_MIN_BATCH, 8, 8, 3)), kernel))
    assert ("conv_general_dilated" in jaxpr) == (faster == "lax")
    assert ("dot_general" in jaxpr) == (faster == "patches")
    # An initialisation's dummy batch is not timed: the rule's lax.
    assert "conv_general_dilated" in str(conv(jnp.ones((2, 8, 8, 3)), kernel))


def test_conv_then_mean_is_fused_from_the_channels_the_rule_names(monkeypatch):
    """On CPU a convolution and 2×2 mean is one strided patch convolution (a matrix product, no
    mean) from `MEAN_POOL_FUSED_MIN_CHANNELS` input channels, the convolution then the mean
    below; a forced formulation fuses at any width."""
    monkeypatch.setenv("JAXGAN_CONV_IMPL", "rule")  # the stride-1 convolution: lax, untimed
    wide = layers.MEAN_POOL_FUSED_MIN_CHANNELS

    def jaxpr(channels):
        kernel = jnp.ones((3, 3, channels, 4))
        traced = jax.make_jaxpr(lambda x, k: layers.conv2d_mean_pool(x, k))  # no cached trace
        return str(traced(jnp.ones((8, 8, 8, channels)), kernel))

    assert "dot_general" in jaxpr(wide) and "conv_general_dilated" not in jaxpr(wide)
    assert "conv_general_dilated" in jaxpr(wide - 1) and "dot_general" not in jaxpr(wide - 1)
    monkeypatch.setenv("JAXGAN_CONV_IMPL", "patches")
    assert "dot_general" in jaxpr(wide - 1) and "reduce_sum" not in jaxpr(wide - 1)


def test_a_narrow_layer_is_col2im_at_any_batch_without_timing(monkeypatch, tmp_path):
    """Under JAXGAN_CONV_IMPL=auto a layer with an image's channels (or a score) is col2im: the
    patch form's matmul would have that few columns. Nothing is timed, at any batch (CycleGAN
    trains on batches of one). A 1×1 narrow layer, or a wider one, is not col2im."""
    from jaxgan.models import conv_autotune

    monkeypatch.setenv("JAXGAN_CONV_IMPL", "auto")
    monkeypatch.setenv("JAXGAN_AUTOTUNE_CACHE", str(tmp_path / "autotune.json"))
    monkeypatch.setattr(conv_autotune, "seconds_for_gradients", _must_not_measure)
    conv = jax.make_jaxpr(lambda x, k: layers.conv2d(x, k, 1, "VALID"))
    x = jnp.ones((1, 10, 10, 8))
    jaxpr = str(conv(x, jnp.ones((7, 7, 8, layers.NARROW_OUTPUT))))
    assert "conv_general_dilated" not in jaxpr and "dot_general" in jaxpr
    assert "conv_general_dilated" in str(conv(x, jnp.ones((1, 1, 8, 3))))  # 1×1, batch 1: rule
    assert "conv_general_dilated" in str(conv(x, jnp.ones((7, 7, 8, layers.NARROW_OUTPUT + 1))))
    monkeypatch.setenv("JAXGAN_CONV_IMPL", "rule")
    assert "conv_general_dilated" in str(conv(x, jnp.ones((7, 7, 8, 3))))
