"""jaxgan from Python: train a config, load a run's generator. (Metrics: `jaxgan.metrics`.)

    import jaxgan
    jaxgan.train("wgan_gp:smoke", "runs/x")            # or a ConfigDict: jaxgan.configs.get(...)
    g = jaxgan.load_generator("runs/x")                # the newest checkpoint's EMA generator
    z, labels = g.latents(16, seed=0)                  # the evaluator's latents
    images = g(z, labels)                              # float32 [16, R, R, C] in [-1, 1]

The same functions the commands run (`jaxgan.main`, `jaxgan.evaluate`), without flags.
"""

from __future__ import annotations

import dataclasses

import jax
import ml_collections
import numpy as np

from jaxgan import configs
from jaxgan.core import parallel
from jaxgan.eval import sampling
from jaxgan.training import loop, registry


def train(config: ml_collections.ConfigDict | str, workdir: str):
    """Trains `config` (a ConfigDict, or `NAME[:PRESET]` / a config file path as on the command line)
    in `workdir`, resuming from its newest readable checkpoint; returns the final train state."""
    if isinstance(config, str):
        config = configs.load(config)
    registry.use_cpu_convolutions_of(config)  # where JAX has not started yet (`core.cpu_backend`)
    return loop.train_and_evaluate(config, workdir)


@dataclasses.dataclass(frozen=True)
class LatentGenerator:
    """A checkpoint's generator as a function: `g(z [N, z_dim], labels [N] | None) -> images`.

    Images are float32 [N, R, R, C] in [-1, 1] (`jaxgan.core.run_files.to_uint8` quantises them as
    every jaxgan output does). The networks' BatchNorm uses the statistics of the batch it is given,
    as the reference code samples, so an image depends on the other latents of its call: pass the
    same batches to get the same images (the evaluator uses `eval.batch_size` images per call).
    """

    generator: sampling.Generator

    @property
    def step(self) -> int:
        return self.generator.step

    @property
    def z_dim(self) -> int:
        return self.generator.config.model.z_dim

    @property
    def num_classes(self) -> int:
        """Classes the generator is conditioned on (0: unconditional)."""
        conditional = sampling.generator_is_conditional(self.generator.config)
        return self.generator.num_classes if conditional else 0

    def latents(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """n latents and class-balanced labels, as `jaxgan.evaluate` and `jaxgan.generate` draw
        them: latent i depends only on (seed, i)."""
        z, labels = sampling.generation_inputs(
            self.generator.config, self.num_classes or 1, n, n, seed
        )
        return z[:n], labels[:n]

    def __call__(self, z, labels=None) -> np.ndarray:
        z = np.asarray(z, np.float32)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z: expected latents [N, {self.z_dim}], got shape {z.shape}.")
        if labels is None:
            if self.num_classes:
                raise ValueError(
                    f"labels: this generator is conditional on {self.num_classes} classes; pass "
                    "labels [N] (e.g. the second result of .latents(n))."
                )
            labels = np.zeros(len(z), np.int32)
        labels = np.asarray(labels, np.int32)
        mesh = self.generator.mesh
        divisible = len(z) % mesh.devices.size == 0
        sharding = parallel.sharded_on(mesh, 0) if divisible else parallel.replicated(mesh)
        images = self.generator.sample(
            jax.device_put(z, sharding), jax.device_put(labels, sharding)
        )
        return np.asarray(jax.device_get(images), np.float32)


def load_generator(workdir: str, step: int | None = None) -> LatentGenerator:
    """The generator of checkpoint `step` of the run in `workdir` (None: the newest), with the
    parameters the evaluator scores (the EMA generator where the run keeps one)."""
    return LatentGenerator(sampling.load_generator(workdir, "latest" if step is None else step))
