"""Conditional GANs: spectral norm, the projection critic, label conditioning, golden steps."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import data
from jaxgan.configs import acgan, dcgan, sngan
from jaxgan.core import parallel
from jaxgan.methods import gan
from jaxgan.models import layers
from jaxgan.models import sngan as sngan_models


def _power_iteration(u, matrix):
    v = u @ matrix
    v /= np.linalg.norm(v) + 1e-12
    u = matrix @ v
    return u / (np.linalg.norm(u) + 1e-12)


def test_spectral_norm_reaches_unit_largest_singular_value():
    conv = layers.Conv2D(6, 3, spectral_norm=True)
    x = jax.random.normal(jax.random.key(0), (2, 5, 5, 4))
    variables = conv.init(jax.random.key(1), x)
    kernel = np.asarray(variables["params"]["kernel"])
    matrix = kernel.reshape(-1, 6).T  # [C_out, k·k·C_in]
    # Calls that cannot write the collection leave u alone.
    conv.apply(variables, x)
    state = {"spectral_norm": variables["spectral_norm"]}
    u = np.asarray(state["spectral_norm"]["kernel_u"])
    for _ in range(30):  # each mutable call = one power iteration, stored
        _, updates = conv.apply(
            {"params": variables["params"], **state}, x, mutable=["spectral_norm"]
        )
        # One float32 power iteration a side (numpy here): sums of <= 36 terms, ~2e-6 relative.
        np.testing.assert_allclose(
            updates["spectral_norm"]["kernel_u"], _power_iteration(u, matrix), rtol=1e-4, atol=1e-6
        )
        state, u = updates, np.asarray(updates["spectral_norm"]["kernel_u"])
    sigma = np.linalg.svd(matrix, compute_uv=False)[0]
    # The layer's output equals a convolution with kernel / σ_max.
    expected = (
        layers.conv2d(x, jnp.asarray(kernel / sigma), 1, "SAME") + variables["params"]["bias"]
    )
    # Convergence, not rounding: after 30 iterations σ is 1.1e-6 below σ_max (this kernel's
    # σ2/σ1 = 0.94), and the float32 convolution adds ~2e-6 (36-term sums).
    np.testing.assert_allclose(
        conv.apply({"params": variables["params"], **state}, x), expected, rtol=1e-4, atol=1e-5
    )
    normalized = matrix / float(u @ matrix @ _normalized(u @ matrix))
    assert abs(np.linalg.svd(normalized, compute_uv=False)[0] - 1.0) < 1e-4


def _normalized(v):
    return v / np.linalg.norm(v)


@pytest.mark.slow
def test_projection_critic_is_psi_plus_inner_product_with_the_class_embedding():
    critic = sngan_models.Critic32(width=4, num_classes=3)
    x = jax.random.normal(jax.random.key(0), (5, 32, 32, 1))
    labels = jnp.array([0, 1, 2, 1, 0])
    variables = critic.init(jax.random.key(1), x, labels)
    (score, logits), state = critic.apply(
        variables, x, labels, capture_intermediates=True, mutable=["intermediates"]
    )
    captured = state["intermediates"]
    phi = np.sum(
        np.maximum(np.asarray(captured["Block4"]["__call__"][0]), 0), axis=(1, 2)
    )  # sum pooling
    psi = np.asarray(captured["Output"]["__call__"][0])[:, 0]
    embedded = np.asarray(captured["ClassEmbedding"]["__call__"][0])
    # The model's float32 sum pooling and inner product vs numpy's: 64-term sums, ~4e-6 at worst.
    np.testing.assert_allclose(score, psi + np.sum(embedded * phi, axis=1), rtol=1e-5, atol=1e-5)
    assert logits is None
    # The embedding is the spectrally normalised table, looked up by label.
    table = np.asarray(variables["params"]["ClassEmbedding"]["embedding"])
    u = np.asarray(variables["spectral_norm"]["ClassEmbedding"]["embedding_u"])
    matrix = table.T
    u2 = _power_iteration(u, matrix)
    sigma = u2 @ matrix @ _normalized(u @ matrix)
    # The same float32 power iteration a side, on a [3, 4] table: a few 1e-7.
    np.testing.assert_allclose(embedded, table[np.asarray(labels)] / sigma, rtol=1e-5)


@pytest.mark.slow
def test_concat_conditioning_feeds_a_one_hot_label_to_the_first_layer():
    z = jax.random.normal(jax.random.key(0), (4, 16))
    labels = jnp.array([0, 1, 2, 3])
    g = sngan_models.Generator32(channels=1, width=8, num_classes=4, conditioning="concat")
    params = g.init(jax.random.key(1), z, labels)["params"]
    assert params["Input"]["kernel"].shape == (16 + 4, 4 * 4 * 8)
    assert params["Block1"]["Norm1"]["scale"].shape == (8,)  # unconditional BatchNorm
    out = g.apply({"params": params}, z, labels)
    # Zeroing the label rows of the first layer's kernel removes the label's influence exactly.
    params["Input"]["kernel"] = params["Input"]["kernel"].at[16:].set(0.0)
    a = g.apply({"params": params}, z, labels)
    b = g.apply({"params": params}, z, jnp.array([3, 2, 1, 0]))
    np.testing.assert_array_equal(a, b)  # the label rows add exact zeros, in any order
    assert np.abs(np.asarray(out - a)).max() > 1e-4
    with pytest.raises(ValueError, match="needs `labels`"):
        g.apply({"params": params}, z)


def _one_step(config):
    mesh = parallel.make_mesh(1)
    source = data.open_source("mnist5k")
    generator, critic = gan.build_models(config, 1, 10)
    g_tx = gan.make_optimizer(config, config.optim.g_lr, 1)
    d_tx = gan.make_optimizer(config, config.optim.d_lr, config.n_critic)
    state = gan.create_state(config, generator, critic, g_tx, d_tx, (32, 32, 1), mesh)
    step = gan.make_train_step(config, generator, critic, g_tx, d_tx, 10, mesh)
    batch = next(data.Batches(source, config.batch_size, 32, 1, seed=0, steps=config.n_critic))
    before = jax.device_get(state)
    after, metrics = step(state, data.to_global(batch, parallel.sharded_on(mesh, 1)))
    return before, jax.device_get(after), metrics


@pytest.mark.slow
def test_spectral_norm_state_advances_once_per_critic_step():
    """One critic update = one power iteration on the pre-update kernel, nothing more."""
    config = sngan.get_config("smoke")
    config.n_critic = 1
    before, after, _ = _one_step(config)
    for block in ("Block1", "Block2"):
        kernel = np.asarray(before["d_params"][block]["Conv1"]["kernel"])
        u = np.asarray(before["d_state"]["spectral_norm"][block]["Conv1"]["kernel_u"])
        expected = _power_iteration(u, kernel.reshape(-1, kernel.shape[-1]).T)
        got = np.asarray(after["d_state"]["spectral_norm"][block]["Conv1"]["kernel_u"])
        # One float32 power iteration a side: sums of <= 72 terms, <= 72·2^-24 = 4e-6 relative.
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


# One seeded step per conditional method (1 device). Update only when a change is meant to alter
# the numbers: rerun with GOLDEN_PRINT=1 and paste the printed values.
GOLDEN = {
    "acgan": {
        "d_loss": 11.160083770751953,
        "g_loss": 1.331101417541504,
        "d_grad_norm": 10.35983657836914,
        "g_grad_norm": 2.1790225505828857,
        "d_ac": 2.3569254875183105,
        "g_ac": 2.145143747329712,
    },
    "sngan": {
        "d_loss": 26.0039119720459,
        "g_loss": 6.434141159057617,
        "d_grad_norm": 163.7371826171875,
        "g_grad_norm": 12.448811531066895,
    },
    "dcgan_ac": {
        "d_loss": 6.315210342407227,
        "g_loss": 0.9225163459777832,
        "d_grad_norm": 21.6343936920166,
        "g_grad_norm": 9.090706825256348,
        "d_ac": 4.7778778076171875,
        "g_ac": 2.21867299079895,
    },
}
CONFIGS = {
    "acgan": lambda: acgan.get_config("smoke"),
    "sngan": lambda: sngan.get_config("smoke"),
    "dcgan_ac": lambda: dcgan.get_config("ac_smoke"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_one_step(name):
    _, _, metrics = _one_step(CONFIGS[name]())
    keys = ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm") + (
        ("d_ac", "g_ac") if "ac" in name else ()
    )
    got = {k: float(metrics[k]) for k in keys}
    if os.environ.get("GOLDEN_PRINT"):
        print(name, got)
    assert GOLDEN[name], "no golden numbers stored"
    for key, value in GOLDEN[name].items():
        np.testing.assert_allclose(got[key], value, rtol=1e-4, err_msg=f"{name} {key}")


@pytest.mark.slow
def test_population_batchnorm_sampler_gives_each_latent_its_own_image():
    """SNGAN evaluates with BatchNorm in inference mode (chainer's running averages): statistics of
    a fixed reference batch, so an image depends on its latent only, and the reference batch
    itself comes out as the batch-statistics generator draws it."""
    config = sngan.get_config("smoke")
    assert config.eval_batchnorm == "population"
    num_classes = 10
    generator, _ = gan.build_models(config, 1, num_classes)
    reference_z, reference_labels = gan.population_latents(config, num_classes)
    assert reference_z.shape == (gan.POPULATION_LATENTS, config.model.z_dim)
    assert np.bincount(reference_labels).tolist() == [
        gan.POPULATION_LATENTS // 10 + (i < 4) for i in range(10)
    ]
    params = generator.init(jax.random.key(0), reference_z[:2], reference_labels[:2])["params"]
    sample = gan.METHOD.sampler(config, 1, num_classes, parallel.make_mesh(1))({})

    # Population statistics are the reference batch's own batch statistics.
    batch_mode = generator.apply({"params": params}, reference_z, reference_labels)
    np.testing.assert_allclose(
        np.asarray(sample(params, reference_z, reference_labels)), batch_mode, atol=1e-5
    )
    # An image is its latent's: alone and inside another batch, the same.
    z = np.asarray(jax.random.normal(jax.random.key(1), (8, config.model.z_dim)))
    labels = np.arange(8, dtype=np.int32) % num_classes
    alone = np.asarray(sample(params, z[:2], labels[:2]))
    np.testing.assert_allclose(alone, np.asarray(sample(params, z, labels))[:2], atol=1e-6)
    # Batch statistics of two images would give other images (the mode this replaces).
    assert np.abs(alone - generator.apply({"params": params}, z[:2], labels[:2])).max() > 1e-2


def test_eval_batchnorm_must_be_batch_or_population():
    from jaxgan.core import errors

    config = sngan.get_config("smoke")
    config.eval_batchnorm = "running"
    with pytest.raises(errors.ConfigError, match="eval_batchnorm='running'.*'batch'.*'population'"):
        gan.METHOD.sampler(config, 1, 10, parallel.make_mesh(1))
