"""Adversarial losses as pure functions of critic scores, picked by name (compare_gan `loss_lib`).

Each loss is a pair: `critic(real_scores, fake_scores) -> scalar` (minimised by the critic) and
`generator(fake_scores) -> scalar` (minimised by the generator). Scores are raw critic outputs
(logits for the probabilistic losses), shape [N].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class Loss(NamedTuple):
    critic: Callable[[jax.Array, jax.Array], jax.Array]
    generator: Callable[[jax.Array], jax.Array]


def wasserstein() -> Loss:
    """WGAN: E D(fake) - E D(real) for the critic, -E D(fake) for the generator."""
    return Loss(
        critic=lambda real, fake: jnp.mean(fake) - jnp.mean(real),
        generator=lambda fake: -jnp.mean(fake),
    )


def non_saturating() -> Loss:
    """The original GAN with the -log D(G(z)) generator (BCE on logits, as the DCGAN references)."""
    # -log σ(x) = softplus(-x); -log(1 - σ(x)) = softplus(x).
    return Loss(
        critic=lambda real, fake: (
            jnp.mean(jax.nn.softplus(-real)) + jnp.mean(jax.nn.softplus(fake))
        ),
        generator=lambda fake: jnp.mean(jax.nn.softplus(-fake)),
    )


def hinge() -> Loss:
    """Hinge loss of SNGAN / the projection discriminator."""
    return Loss(
        critic=lambda real, fake: (
            jnp.mean(jax.nn.relu(1.0 - real)) + jnp.mean(jax.nn.relu(1.0 + fake))
        ),
        generator=lambda fake: -jnp.mean(fake),
    )


def least_squares() -> Loss:
    """LSGAN (a, b, c) = (0, 1, 1): ½E(D(real)-1)² + ½E D(fake)² ; ½E(D(fake)-1)²."""
    return Loss(
        critic=lambda real, fake: (
            0.5 * jnp.mean(jnp.square(real - 1.0)) + 0.5 * jnp.mean(jnp.square(fake))
        ),
        generator=lambda fake: 0.5 * jnp.mean(jnp.square(fake - 1.0)),
    )


def pggan_lsgan() -> Loss:
    """PGGAN's LSGAN (paper App. B; Theano `evaluate_loss(type='lsgan')`): reals -> 0, fakes -> 1,
    fake term × L2_fake_weight 0.1. D: E[D(real)²] + 0.1·E[(D(fake) - 1)²]; G: E[D(fake)²]."""
    return Loss(
        critic=lambda real, fake: jnp.mean(jnp.square(real)) + 0.1 * jnp.mean(jnp.square(fake - 1)),
        generator=lambda fake: jnp.mean(jnp.square(fake)),
    )


def mse_lsgan() -> Loss:
    """The translation references' LSGAN (CycleGAN's gan_mode 'lsgan', NICE-GAN): `MSELoss`
    against 1 (real) and 0 (fake), mean over elements.

    Not `least_squares`, whose ½ factors are the LSGAN paper's form; CycleGAN halves its critic
    loss itself (backward_D_basic), NICE-GAN does not.
    """
    return Loss(
        critic=lambda real, fake: jnp.mean(jnp.square(real - 1.0)) + jnp.mean(jnp.square(fake)),
        generator=lambda fake: jnp.mean(jnp.square(fake - 1.0)),
    )


LOSSES: dict[str, Callable[[], Loss]] = {
    "wasserstein": wasserstein,
    "non_saturating": non_saturating,
    "hinge": hinge,
    "least_squares": least_squares,
    "pggan_lsgan": pggan_lsgan,
    "mse_lsgan": mse_lsgan,
}


def get(name: str) -> Loss:
    if name not in LOSSES:
        raise ValueError(
            f"config.loss={name!r} is not a known loss; choose one of {sorted(LOSSES)}."
        )
    return LOSSES[name]()


def classification(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy: the AC-GAN auxiliary-classifier term."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def l1(x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean absolute difference: the translation methods' cycle and identity terms."""
    return jnp.mean(jnp.abs(x - y))
