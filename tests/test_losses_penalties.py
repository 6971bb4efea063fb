"""Each loss and penalty against a value computed by hand (or by finite differences)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.training import losses, penalties

REAL = np.array([2.0, -1.0, 0.5])
FAKE = np.array([-0.5, 1.5, 0.0])


def _softplus(x):
    return np.log1p(np.exp(x))


@pytest.mark.parametrize(
    "name, critic, generator",
    [
        # E D(f) - E D(r) = (1/3)(1.0) - (1/3)(1.5); -E D(f)
        ("wasserstein", 1.0 / 3 - 1.5 / 3, -1.0 / 3),
        (
            "non_saturating",
            np.mean(_softplus(-np.array([2.0, -1.0, 0.5])))
            + np.mean(_softplus(np.array([-0.5, 1.5, 0.0]))),
            np.mean(_softplus(np.array([0.5, -1.5, 0.0]))),
        ),
        # relu(1 - r) = [0, 2, 0.5]; relu(1 + f) = [0.5, 2.5, 1]
        ("hinge", 2.5 / 3 + 4.0 / 3, -1.0 / 3),
        # (r - 1)^2 = [1, 4, 0.25]; f^2 = [0.25, 2.25, 0]; (f - 1)^2 = [2.25, 0.25, 1]
        ("least_squares", 0.5 * 5.25 / 3 + 0.5 * 2.5 / 3, 0.5 * 3.5 / 3),
    ],
)
def test_losses_match_hand_computed_values(name, critic, generator):
    loss = losses.get(name)
    # In float64: a handful of roundings and XLA's exp/log1p (last-bit results vary by CPU)
    # stay within ~1e-15 of the hand values; in float32 they were a few ulps from rtol 1e-6.
    with jax.enable_x64(True):
        real, fake = jnp.asarray(REAL), jnp.asarray(FAKE)
        assert loss.critic(real, fake).dtype == jnp.float64
        np.testing.assert_allclose(loss.critic(real, fake), critic, rtol=1e-12)
        np.testing.assert_allclose(loss.generator(fake), generator, rtol=1e-12)


def test_classification_is_mean_cross_entropy():
    labels = jnp.array([0, 2])
    expected = np.mean([-np.log(np.exp(2) / (np.exp(2) + 1 + np.exp(-1))), np.log(3.0)])
    with jax.enable_x64(True):  # as above: float64, ~1e-15 from the hand value on any CPU
        logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
        np.testing.assert_allclose(losses.classification(logits, labels), expected, rtol=1e-12)


def test_unknown_names_fail_clearly():
    with pytest.raises(ValueError, match="not a known loss.*hinge"):
        losses.get("wgan")
    with pytest.raises(ValueError, match="unknown penalty 'gp'.*wgan_gp"):
        penalties.get("gp")


def test_wgan_gp_of_linear_critic_matches_analytic_gradient():
    # D(x) = <w, x>: the input gradient is w for every sample, so the penalty is (|w| - γ)² / γ².
    w = jnp.arange(1.0, 13.0).reshape(1, 2, 2, 3) / 10.0
    critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))
    reals = jax.random.normal(jax.random.key(0), (4, 2, 2, 3))
    fakes = jax.random.normal(jax.random.key(1), (4, 2, 2, 3))
    norm = np.linalg.norm(np.asarray(w))
    for target in (1.0, 750.0):
        value = penalties.wgan_gp(critic, reals, fakes, None, jax.random.key(2), target=target)
        # float32: the input gradient is w exactly; a 12-term norm and 3 more roundings, ~1e-6.
        np.testing.assert_allclose(value, (norm - target) ** 2 / target**2, rtol=1e-5)


def _small_conv_critic(params, x):
    h = jax.lax.conv_general_dilated(
        x, params["w1"], (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    h = jnp.tanh(h)  # smooth, so finite differences are accurate
    return jnp.sum(h * params["w2"], axis=(1, 2, 3))


def test_wgan_gp_matches_finite_differences_of_a_conv_critic():
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.key(0), 5)
        params = {
            "w1": jax.random.normal(keys[0], (3, 3, 2, 4), jnp.float64) * 0.5,
            "w2": jax.random.normal(keys[1], (1, 3, 3, 4), jnp.float64),
        }
        reals = jax.random.normal(keys[2], (3, 6, 6, 2), jnp.float64)
        fakes = jax.random.normal(keys[3], (3, 6, 6, 2), jnp.float64)
        u = jax.random.uniform(keys[4], (3, 1, 1, 1), jnp.float64)
        x_hat = np.asarray(reals + u * (fakes - reals))

        # Central differences of D at x̂, one input coordinate at a time, in float64.
        def critic_np(x):
            return np.asarray(_small_conv_critic(params, jnp.asarray(x)))

        grads = np.zeros_like(x_hat)
        eps = 1e-6
        for idx in np.ndindex(*x_hat.shape[1:]):
            delta = np.zeros_like(x_hat)
            delta[(slice(None), *idx)] = eps
            grads[(slice(None), *idx)] = (critic_np(x_hat + delta) - critic_np(x_hat - delta)) / (
                2 * eps
            )
        expected = np.mean((np.linalg.norm(grads.reshape(3, -1), axis=1) - 1.0) ** 2)

        # The penalty draws u from the same key the same way: reuse it.
        value = penalties.wgan_gp(
            lambda x: _small_conv_critic(params, x), reals, fakes, None, keys[4]
        )
        # Central differences in float64, h = 1e-6: truncation ~h² = 1e-12, rounding
        # ~2^-53·|D|/h ~ 1e-10 per coordinate: 1e-7 leaves ~1000x room.
        np.testing.assert_allclose(value, expected, rtol=1e-7)


def test_wgan_gp_is_finite_when_the_input_gradient_is_zero():
    # A constant critic has zero input gradient; without ε inside the sqrt, d/dθ would be NaN.
    def loss(scale):
        return penalties.wgan_gp(
            lambda x: scale * jnp.zeros(x.shape[0]),
            jnp.ones((2, 2, 2, 1)),
            jnp.zeros((2, 2, 2, 1)),
            None,
            jax.random.key(0),
        )

    value, grad = jax.value_and_grad(loss)(1.0)
    np.testing.assert_allclose(value, 1.0, rtol=1e-5)  # (sqrt(1e-12) - 1)² = 1 - 2e-6
    assert np.isfinite(grad)


def test_drift_and_r1():
    scores = jnp.array([1.0, -2.0, 3.0])
    # Small integers: exact in float32 up to the final division (drift) or sqrt (r1), ~1e-7.
    np.testing.assert_allclose(penalties.drift(None, None, None, scores, None), 14.0 / 3, rtol=1e-6)
    # D(x) = sum(x²): ∇ = 2x, so E |∇|² = 4 E |x|².
    reals = jnp.array([[[[1.0]], [[2.0]]], [[[0.0]], [[3.0]]]])  # [2, 2, 1, 1]
    value = penalties.r1(lambda x: jnp.sum(x**2, axis=(1, 2, 3)), reals, None, None, None)
    np.testing.assert_allclose(value, 4 * np.mean([5.0, 9.0]), rtol=1e-5)
