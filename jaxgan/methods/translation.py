"""Unpaired image-to-image translation on the run loop: what CycleGAN and NICE-GAN share.

A translation method is a module (`cyclegan.py`, `nicegan.py`) with `build(config, mesh) ->
Model` (its fresh state, its compiled step, its translator) and `METHOD = translation.method(build,
eval_params)`. Everything around the step is here, once: the two-domain data stream, the sample
grid, the learning-rate schedule, the direction names and the LSGAN loss both papers use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxgan import data
from jaxgan.core import errors, parallel, run_files
from jaxgan.data import two_domain
from jaxgan.training import benchmark, registry

State = dict[str, Any]

DIRECTIONS = ("AtoB", "BtoA")


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise errors.ConfigError(
            f"direction {direction!r}: expected AtoB (domain A to B) or BtoA (B to A)."
        )
    return direction


def trained_directions(meta: dict) -> tuple[str, ...]:
    """The directions checkpoint `meta` has trained networks for: both, but for a run imported
    from one released generator (`jaxgan.import_weights`), whose meta lists the one it has."""
    return tuple(meta.get("directions", DIRECTIONS))


def untrained_message(meta: dict, direction: str, workdir: str) -> str | None:
    """Why `direction` cannot be translated with checkpoint `meta` of `workdir`, or None."""
    trained = trained_directions(meta)
    if direction in trained:
        return None
    return (
        f"{workdir} has no trained {direction} generator: it was imported from "
        f"{meta.get('imported_from', 'released weights')}, which hold(s) the "
        f"{', '.join(trained)} network(s) only. Translate --direction={trained[0]}, or import the "
        f"{direction} generator too (python -m jaxgan.import_weights, into a new --workdir)."
    )


class Model(NamedTuple):
    """One translation model built for a config: what the shared Trainer and the evaluator call.

    init_state() -> the fresh state on the mesh (replicated).
    train_step(state, {'A': uint8 [1, N, H, W, C], 'B': ...}) -> (state, metrics), jitted.
    translate(params, images [N, H, W, C] in [-1, 1], direction) -> images, jitted per shape;
        params: the state's `eval_params` entry (or {entry: tree} for several).
    """

    init_state: Callable[[], State]
    train_step: Callable[[State, dict], tuple[State, dict]]
    translate: Callable[[Any, jax.Array, str], jax.Array]


def learning_rate_fn(base_lr: float, num_steps: int, decay_steps: int) -> Callable:
    """lr(step): `base_lr` for the first num_steps - decay_steps iterations, then linearly to 0.

    The CycleGAN paper's convention (the Lua code's niter / niter_decay: 100 epochs constant, then
    linearly to zero over 100), applied per iteration. Not the PyTorch code's, which updates the
    factor at the start of each epoch since 2020 and so starts decaying one epoch early and runs
    its last epoch at lr 0: an artefact of where `scheduler.step()` moved, not a choice of the
    paper. (NICE-GAN decrements before its step's update: `nicegan.py` reads this one step on.)
    """
    if decay_steps <= 0:  # constant (and num_steps out of the compiled step: a resumed run that
        return lambda step: base_lr  # changes it compiles the same program)
    constant = num_steps - decay_steps

    def lr(step):
        # The default float: float64 under x64, where the equivalence tests run (1e-3 in float32
        # is off by 5e-8, which shows after one Adam update).
        progress = (jnp.asarray(step, jnp.result_type(float)) - constant) / max(decay_steps, 1)
        return base_lr * jnp.clip(1.0 - progress, 0.0, 1.0)

    return lr


class Trainer:
    """A translation method's side of a run (`registry.Trainer`), for any `Model`."""

    def __init__(
        self,
        config: ml_collections.ConfigDict,
        workdir: str,
        mesh,
        *,
        build: Callable[..., Model],
        params_entry: str | tuple[str, ...],
    ):
        del workdir  # everything this method writes goes through the loop
        parallel.check_divisible(config.batch_size, mesh, "batch_size")
        self.config, self.mesh, self.params_entry = config, mesh, params_entry
        d = config.data
        self.sources = two_domain.open_domains(d.dataset, "train", d.data_dir, d.channels)
        self.model = build(config, mesh)
        # The sample grids' inputs: test images of each domain spread evenly over its (sorted)
        # test split, so the grid shows more than the first few file names' kind of image.
        test_a, test_b = two_domain.open_domains(d.dataset, "test", d.data_dir, d.channels)
        spread = lambda source: data.sources.take(  # noqa: E731
            source,
            np.linspace(0, len(source) - 1, min(config.num_samples, len(source))).astype(int),
        )
        self.sample_inputs = {
            name: data.to_float(
                jnp.asarray(
                    two_domain.eval_images(
                        spread(source), d.resolution, d.channels, preprocess=d.preprocess
                    )
                ),
                jax.random.key(0),
            )
            for name, source in (("A", test_a), ("B", test_b))
        }
        self.batches = None

    def init_state(self) -> State:
        return self.model.init_state()

    def start(self, meta: dict) -> None:
        self.batches = two_domain.TwoDomainBatches(
            *self.sources,
            self.config.batch_size,
            self.config.data.resolution,
            seed=self.config.seed,
            cursor=meta.get("data_cursor", 0),
            channels=self.config.data.channels,
            sharding=parallel.sharded_on(self.mesh, 1),
            preprocess=self.config.data.preprocess,
        )

    def step(self, state: State) -> tuple[State, dict]:
        return self.model.train_step(state, next(self.batches))

    def finished(self, step: int) -> bool:
        return step >= self.config.num_steps

    def progress(self, step: int) -> tuple[int, int, str]:
        return step, self.config.num_steps, "step"

    def images_seen(self) -> int:
        return 2 * self.batches.cursor  # one image of each domain per position

    def meta(self) -> dict:
        return {"data_cursor": self.batches.cursor}

    def sample_grid(self, state: State) -> np.ndarray:
        """Rows A, A->B, A->B->A, then B, B->A, B->A->B: one column per test image."""
        if isinstance(self.params_entry, str):
            params = state[self.params_entry]
        else:
            params = {entry: state[entry] for entry in self.params_entry}
        rows = []
        for source, there, back in (("A", "AtoB", "BtoA"), ("B", "BtoA", "AtoB")):
            x = self.sample_inputs[source]
            translated = self.model.translate(params, x, there)
            rows += [
                x,
                jax.device_get(translated),
                jax.device_get(self.model.translate(params, translated, back)),
            ]
        return run_files.make_grid(np.concatenate(rows), columns=len(self.sample_inputs["A"]))

    def finish(self, state: State) -> None:
        pass

    def close(self) -> None:
        if self.batches is not None:
            self.batches.close()


def bench_step(
    config,
    mesh,
    stage_resolution: int = 0,
    stage_alpha: float = 0.5,
    *,
    build: Callable[..., Model],
) -> benchmark.BenchStep:
    """`build(config, mesh)`'s step on one synthetic A and one B batch of the config's shape: both
    generators' and both critics' update, one A and one B image per batch position, counted both,
    as `Trainer.images_seen` does (no stages: `stage_resolution` and `stage_alpha` are not used)."""
    del stage_resolution, stage_alpha
    parallel.check_divisible(config.batch_size, mesh, "batch_size")  # as the Trainer refuses it
    model = build(config, mesh)
    batch = data.to_global(
        {
            domain: benchmark.random_images(
                config.batch_size, config.data.resolution, config.data.channels, seed
            )[None]
            for seed, domain in enumerate("AB")
        },
        parallel.sharded_on(mesh, 1),
    )
    return benchmark.BenchStep(
        model.train_step, model.init_state(), (batch,), 2 * config.batch_size
    )


def method(
    build: Callable[..., Model], eval_params: str | tuple[str, ...], cpu_convolutions: str = "ynn"
) -> registry.Method:
    """The registry's `Method` of a translation model: the shared Trainer around `build`,
    `build(config, mesh).translate` as the evaluator's and `jaxgan.translate`'s translator, and
    its step on synthetic batches as the benchmark's (`cpu_convolutions`: `registry.Method`'s)."""
    return registry.Method(
        trainer=functools.partial(Trainer, build=build, params_entry=eval_params),
        sampler=None,
        is_conditional=lambda config: False,
        translator=lambda config, mesh: build(config, mesh).translate,
        eval_params=eval_params,
        bench_step=functools.partial(bench_step, build=build),
        cpu_convolutions=cpu_convolutions,
    )
