"""Pieces of the z-to-image train steps (`methods/gan.py`, `methods/progressive.py`) that both
build the same way: the penalty terms of `config.penalties`, the networks' applies in the compute
dtype, the batch sharding constraint and the labels of generated images."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections

from jaxgan.core import parallel, precision
from jaxgan.training import penalties


def penalty_terms(config: ml_collections.ConfigDict) -> list[tuple[str, float, Callable]]:
    """(name, weight, penalty) for each entry of `config.penalties`, in its order: the penalty of
    `penalties.get(name)` with the entry's other fields as keyword arguments."""
    terms = []
    for name, spec in config.penalties.items():
        kwargs = {k: v for k, v in spec.items() if k != "weight"}
        terms.append((name, spec.weight, functools.partial(penalties.get(name), **kwargs)))
    return terms


def in_compute_dtype(config: ml_collections.ConfigDict, *modules) -> tuple[Callable, ...]:
    """Each module's `apply`, computing in `config.compute_dtype` (params, optimizer and losses
    stay float32: `precision.in_compute_dtype`)."""
    dtype = precision.compute_dtype(config)
    return tuple(precision.in_compute_dtype(module.apply, dtype) for module in modules)


def shard_batch(x: jax.Array, mesh) -> jax.Array:
    """`x` constrained to be sharded along its first (batch) axis over `mesh`."""
    return jax.lax.with_sharding_constraint(x, parallel.sharded_on(mesh, 0))


def fake_labels(key: jax.Array, n: int, num_classes: int, conditional: bool, mesh) -> jax.Array:
    """int32 [n] labels for generated images: uniform over the classes (batch-sharded) for a
    conditional model, zeros otherwise."""
    if not conditional:
        return jnp.zeros((n,), jnp.int32)
    return shard_batch(jax.random.randint(key, (n,), 0, num_classes), mesh)
