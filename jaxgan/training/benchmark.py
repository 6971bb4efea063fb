"""What `python -m jaxgan.bench` times of a method: its compiled train step on synthetic inputs of
the config's shapes (`BenchStep`, built by the method's `Method.bench_step`)."""

from __future__ import annotations

import time

import jax
import numpy as np


def count_params(tree) -> int:
    """Number of parameters (array elements) in a pytree."""
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


class BenchStep:
    """A compiled train step and what it runs on, built by `Method.bench_step` for
    `python -m jaxgan.bench`: `fn(state, *inputs) -> (state, metrics)`.

    The state is donated at each call, so the timed steps chain through it; every call runs on the
    same synthetic batch (the values do not change the work). `images_per_step` is what one call
    counts as train img/s; `param_counts` holds each network side's parameters ({entry: count} of
    `param_entries` of the state, every network of a side together, as the PyTorch twins print
    them), counted here, before the timed steps donate the state.
    """

    def __init__(
        self,
        fn,
        state,
        inputs: tuple,
        images_per_step: int,
        param_entries: tuple[str, ...] = ("g_params", "d_params"),
    ):
        self.fn, self.state, self.inputs = fn, state, inputs
        self.images_per_step = images_per_step
        self.param_counts = {entry: count_params(state[entry]) for entry in param_entries}

    def warm_up(self) -> float:
        """Seconds of the first step, compilation included."""
        return self.time(1)

    def time(self, steps: int) -> float:
        """Seconds of `steps` steps, waited for only at the end."""
        start = time.perf_counter()
        for _ in range(steps):
            self.state, metrics = self.fn(self.state, *self.inputs)
        jax.block_until_ready(metrics)
        return time.perf_counter() - start

    def flops(self) -> float:
        """XLA's cost analysis of one step: floating-point operations (0 where it gives none)."""
        cost = self.fn.lower(self.state, *self.inputs).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list | tuple) else cost
        return float((cost or {}).get("flops", 0.0))


def random_images(count: int, size: int, channels: int, seed: int = 0) -> np.ndarray:
    """uint8 [count, size, size, channels], uniform: timing inputs (their values do not matter)."""
    return np.random.default_rng(seed).integers(
        0, 256, (count, size, size, channels), dtype=np.uint8
    )
