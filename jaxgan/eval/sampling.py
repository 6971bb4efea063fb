"""Checkpoint -> images: the generator of each checkpoint, built from the config it was saved
with, through the method registry (`jaxgan/training/registry.py`), as the run loop builds it.

Only the EMA generator is restored (an Orbax partial restore). Latents come from `--seed` in fixed
blocks, so the first n fakes are the same images whatever the total: every checkpoint is sampled
from the same latents (a curve is not noisier than the models are), and each metric scores a prefix
of the same fakes. Conditional generators get class-balanced labels `arange(n) % num_classes`. The
generator's BatchNorm uses batch statistics when sampling (as the references do), so fakes depend
on `sample_batch_size`, which rows record; every batch is full (extra latents, never zero padding).
Images are quantised with `logging.to_uint8`, the references' rounding.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxgan import data
from jaxgan.core import batched, checkpoint, errors, parallel, run_files, store
from jaxgan.methods import gan
from jaxgan.training import contract, registry

LATENT_BLOCK = 1000


def load_config(workdir: str):
    import ml_collections

    store.check_workdir(workdir)  # an object store that cannot be reached: one line, first
    path = os.path.join(workdir, "config.json")
    if not store.exists(path):
        raise errors.DataError(
            f"{path} not found: --workdir must be a training run's directory (jaxgan.main writes "
            f"config.json there before training)."
        )
    stored = json.loads(store.read_text(path))  # with the fields it predates (contract.upgrade)
    return ml_collections.ConfigDict(contract.upgrade(stored))


def select_steps(available: Sequence[int], spec: str) -> list[int]:
    """--steps: 'all', 'latest' or 'N,M,...' (listed steps that are not saved are left out)."""
    if spec == "all":
        return list(available)
    if spec == "latest":
        return list(available[-1:])
    try:
        wanted = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise errors.ConfigError(
            f"--steps={spec!r}: expected all, latest or a list like 1000,2000."
        ) from None
    return [s for s in wanted if s in set(available)]


def generator_is_conditional(config) -> bool:
    """Whether fakes are drawn for the labels given (what labelled metrics compare them with)."""

    return registry.get(config.method).is_conditional(config)


def generation_inputs(
    config,
    num_classes: int,
    n: int,
    batch_size: int,
    seed: int,
    draw_latents: Callable = gan.sample_latents,
):
    """Latents [n_total, z_dim] and labels [n_total] for n images in full batches of batch_size.

    n_total = ceil(n / batch_size) * batch_size: the generator's BatchNorm uses batch statistics, so
    the last batch is filled with further latents rather than zeros; the extra images are dropped.
    Labels are class-balanced, `arange % num_classes` (gan_evaluation `gan.py::generate`).
    `draw_latents(config, key, count)` draws one block (default: the run's latent distribution;
    `jaxgan.generate` passes a truncated one).
    """
    import jax

    n_total = -(-n // batch_size) * batch_size
    key = jax.random.key(seed)
    blocks = [  # latent i is the same whatever n: a metric's fakes are a prefix of everyone's
        np.asarray(draw_latents(config, jax.random.fold_in(key, b), LATENT_BLOCK))
        for b in range(-(-n_total // LATENT_BLOCK))
    ]
    z = np.concatenate(blocks)[:n_total]
    if gan.is_conditional(config):
        labels = np.arange(n_total, dtype=np.int32) % num_classes
    else:
        labels = np.zeros(n_total, np.int32)
    return z, labels


def generate(sample, params, z, labels, n: int, batch_size: int, mesh) -> np.ndarray:
    """uint8 [n, R, R, C]: `sample` over full batches (sharded over the mesh), `to_uint8`-quantised."""
    import jax

    batch_sharding = parallel.sharded_on(mesh, 0)
    images = []
    for start in range(0, len(z), batch_size):
        batch_z = jax.device_put(z[start : start + batch_size], batch_sharding)
        batch_labels = jax.device_put(labels[start : start + batch_size], batch_sharding)
        images.append(run_files.to_uint8(jax.device_get(sample(params, batch_z, batch_labels))))
    return np.concatenate(images)[:n]


def checkpoint_config(meta: dict, run_config):
    """The config checkpoint `meta` was saved with (`meta["config"]`), else `run_config`.

    A run may be resumed with changed fields that are safe mid-run (num_steps, cadences, learning
    rates), so `W/config.json` is only the latest config; a checkpoint written before meta held a
    config falls back to it.
    """
    import ml_collections

    stored = meta.get("config")
    return run_config if stored is None else ml_collections.ConfigDict(contract.upgrade(stored))


def network_fields(config) -> dict:
    """The config without the fields a run may change mid-run (`contract.SAFE_TO_CHANGE` and the
    method's own): what the generator is built from. Checkpoints of a resumed run that changed
    num_steps or a learning rate share one compiled sampler."""

    safe = contract.SAFE_TO_CHANGE | frozenset(registry.get(config.method).safe_to_change)
    return {k: v for k, v in contract.flatten(config.to_dict()).items() if k not in safe}


class Samplers:
    """A run's generators: `samplers(config, meta) -> sample(params, z, labels)` for a checkpoint
    saved with `config` and `meta`, built (and so compiled) once per distinct network config, not
    once per checkpoint."""

    def __init__(self, channels: int, num_classes: int, mesh):
        self.channels, self.num_classes, self.mesh = channels, num_classes, mesh
        self._by_config: dict[str, Callable[[dict], Callable]] = {}

    def __call__(self, config, meta: dict) -> Callable:
        key = json.dumps(network_fields(config), sort_keys=True, default=str)
        if key not in self._by_config:
            build = registry.get(config.method).sampler
            self._by_config[key] = build(config, self.channels, self.num_classes, self.mesh)
        return self._by_config[key](meta)


@dataclasses.dataclass(frozen=True)
class Generator:
    """One checkpoint's evaluated generator (`load_generator`): `sample(z [N, z_dim], labels [N])
    -> images [N, R, R, C]` in [-1, 1], as the evaluator samples it (`sample_fn(params, z, labels)`,
    built by the method's `sampler` from the checkpoint's config, `eval_batchnorm` included).
    `config` is the run's (W/config.json: latents, labels); `meta` holds the checkpoint's own."""

    config: Any
    params: Any
    meta: dict
    step: int
    channels: int
    num_classes: int
    mesh: Any
    sample_fn: Callable

    def sample(self, z, labels):
        return self.sample_fn(self.params, z, labels)


def load_generator(
    workdir: str,
    step: str | int | None = "latest",
    mesh=None,
    config=None,
    samplers: Samplers | None = None,
) -> Generator:
    """The generator of checkpoint `step` ('latest', None or a step) of a run: its method's eval
    params (`registry.Method.eval_params`, an Orbax partial restore) replicated on `mesh` (default:
    `samplers.mesh`, else all devices), sampled through `samplers` (default: a new `Samplers`).
    `config`: the run's, when the caller has it (default: W/config.json)."""

    config = load_config(workdir) if config is None else config
    method = registry.get(config.method)
    if method.sampler is None:
        raise errors.ConfigError(
            f"{workdir} is a {config.method!r} run: its generators map images to images, not "
            f"latents; apply them with python -m jaxgan.translate."
        )
    _, channels, num_classes = data.open_run_source(config)
    if mesh is None:
        mesh = samplers.mesh if samplers is not None else parallel.make_mesh()
    samplers = samplers or Samplers(channels, num_classes, mesh)
    params, meta, step = checkpoint.restore_params(workdir, method.eval_params, step, mesh)
    sample_fn = samplers(checkpoint_config(meta, config), meta)
    return Generator(config, params, meta, step, channels, num_classes, mesh, sample_fn)


def sample_checkpoint(
    workdir: str,
    config,
    step: str | int,
    n: int,
    seed: int,
    batch_size: int = 200,
    samplers: Samplers | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """n uint8 fakes [n, R, R, C] of checkpoint `step` ('latest' or a step) of a run, with their
    labels [n] (class-balanced for conditional generators) and the step: the workdir mode's
    sampling (same latents for a given seed and n), for the experiments (`jaxgan.experiments`).

    `config` is the run's (W/config.json); the generator is built from the checkpoint's own
    (`checkpoint_config`). Pass one `samplers` to calls on the same run to compile once per config.
    """

    generator = load_generator(workdir, step, config=config, samplers=samplers)
    batch_size = batched.round_up_to_devices(min(batch_size, n), generator.mesh)
    z, labels = generation_inputs(config, generator.num_classes, n, batch_size, seed)
    images = generate(
        generator.sample_fn, generator.params, z, labels, n, batch_size, generator.mesh
    )
    return images, labels[:n], generator.step
