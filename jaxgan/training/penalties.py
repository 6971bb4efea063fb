"""Critic regularisers as pure functions, picked by name (compare_gan `penalty_lib`).

Every penalty has the signature `penalty(critic_fn, reals, fakes, real_scores, key) -> scalar`,
where `critic_fn(images [N,H,W,C]) -> scores [N]` closes over the critic's parameters, so that
`jax.grad` of the critic loss w.r.t. those parameters differentiates through the input gradient
(double backprop) with no extra machinery. The config multiplies each by its weight.

The input gradient is taken as grad(sum_i D(x_i)), which equals the per-sample gradients only
when samples do not interact inside the critic: that is why no gradient-penalised critic may use
BatchNorm (the models offer LayerNorm or none, as WGAN-GP does).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

CriticFn = Callable[[jax.Array], jax.Array]
Penalty = Callable[..., jax.Array]

# Inside the square root: d sqrt(s)/ds is infinite at s = 0, which turns a zero input gradient
# (e.g. a dead ReLU critic) into NaN parameters (keras-io#910). 1e-12 changes no norm above 1e-6.
NORM_EPSILON = 1e-12


def _input_gradient_norm(critic_fn: CriticFn, x: jax.Array) -> jax.Array:
    grads = jax.grad(lambda images: jnp.sum(critic_fn(images)))(x)
    return jnp.sqrt(jnp.sum(jnp.square(grads), axis=tuple(range(1, x.ndim))) + NORM_EPSILON)


def wgan_gp(critic_fn: CriticFn, reals, fakes, real_scores, key, target: float = 1.0):
    """Gulrajani et al. 2017: E[(‖∇D(x̂)‖₂ - γ)²] / γ², x̂ = real + u·(fake - real), u ~ U(0,1) per sample.

    γ = 1 in WGAN-GP; PGGAN's CIFAR-10 run uses γ = 750 (`iwass_target`), scaled by 1/γ² as there.
    """
    del real_scores
    u = jax.random.uniform(key, (reals.shape[0],) + (1,) * (reals.ndim - 1), reals.dtype)
    interpolates = reals + u * (fakes - reals)
    norms = _input_gradient_norm(critic_fn, interpolates)
    return jnp.mean(jnp.square(norms - target)) / target**2


def drift(critic_fn: CriticFn, reals, fakes, real_scores, key):
    """PGGAN's ε-drift term E[D(real)²], which keeps critic outputs near zero."""
    del critic_fn, reals, fakes, key
    return jnp.mean(jnp.square(real_scores))


def r1(critic_fn: CriticFn, reals, fakes, real_scores, key):
    """Mescheder et al. 2018: E ‖∇D(real)‖² (the weight carries the γ/2)."""
    del fakes, real_scores, key
    return jnp.mean(jnp.square(_input_gradient_norm(critic_fn, reals)))


PENALTIES: dict[str, Penalty] = {"wgan_gp": wgan_gp, "drift": drift, "r1": r1}
# Penalties that differentiate the critic w.r.t. its input: these forbid BatchNorm in the critic.
INPUT_GRADIENT_PENALTIES = frozenset({"wgan_gp", "r1"})


def get(name: str) -> Penalty:
    if name not in PENALTIES:
        raise ValueError(
            f"config.penalties has unknown penalty {name!r}; choose from {sorted(PENALTIES)}."
        )
    return PENALTIES[name]
