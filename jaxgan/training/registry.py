"""The method registry: `config.method` -> what the run loop and the evaluator need from a method.

A method is a registry line here, a module that defines `METHOD`, a model file and a config. The
run loop (`jaxgan/training/loop.py`) owns everything a run does around its steps; a method supplies only
what differs, through a `Trainer` (its state, its compiled step for the current phase, its sample
grid, its part of the checkpoint meta). The evaluator builds generators through `sampler` (or a
translation method's `translator`); translation methods share their Trainer (`translation.py`).
`python -m jaxgan.bench` times a method's step through its `bench_step` (`training/benchmark.BenchStep`).
Modules are imported only when their method is asked for, so `--help` and the other methods'
runs do not pay for them.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from jaxgan.core import cpu_backend, errors
from jaxgan.training.benchmark import BenchStep

State = dict[str, Any]

# name -> the module whose `METHOD` it is.
REGISTRY = {
    "gan": "jaxgan.methods.gan",
    "progressive": "jaxgan.methods.progressive",
    "cyclegan": "jaxgan.methods.cyclegan",
    "nicegan": "jaxgan.methods.nicegan",
    "translation": "jaxgan.methods.cyclegan",  # CycleGAN's name before NICE-GAN: its runs still evaluate
}


class Trainer(Protocol):
    """One method's side of one run, built by `Method.trainer(config, workdir, mesh)`.

    The loop calls, in order: `init_state` (or restores a checkpoint into its shape), `start(meta)`
    with the restored checkpoint's meta ({} for a fresh run), then `step` until `finished`.
    """

    def init_state(self) -> State:
        """The fresh train state, placed on the mesh: one pytree (`step`, `rng`, params, ...)."""

    def start(self, meta: dict) -> None:
        """Continue from a checkpoint's meta (data cursor, schedule position); {} starts afresh."""

    def step(self, state: State) -> tuple[State, dict]:
        """One update: its batch, its compiled step for the current phase; metrics stay on device."""

    def finished(self, step: int) -> bool:
        """Whether the run is complete after `step` updates."""

    def progress(self, step: int) -> tuple[int, int, str]:
        """(done, total, unit) for the progress bar, e.g. (step, num_steps, 'step')."""

    def images_seen(self) -> int:
        """Real images consumed so far (what img/s counts)."""

    def meta(self) -> dict:
        """The method's part of the checkpoint meta (JSON): what `start` needs to continue exactly."""

    def sample_grid(self, state: State) -> np.ndarray:
        """uint8 [H, W, C]: the EMA generator on the run's fixed latents."""

    def finish(self, state: State) -> None:
        """After the last step of a completed run (e.g. a picture per resolution)."""

    def close(self) -> None:
        """Stops input threads."""


@dataclasses.dataclass(frozen=True)
class Method:
    """What a training method gives the loop and the evaluator.

    trainer(config, workdir, mesh) -> Trainer.
    sampler(config, channels, num_classes, mesh) -> sampler_for(meta) -> sample(params, z, labels)
        -> images [N, R, R, C] in [-1, 1]: the evaluator's generator for a checkpoint (whose meta
        may say where in a schedule it was taken). None for a method whose generators map images
        to images (then `translator`).
    translator(config, mesh) -> translate(params, images [N, H, W, C] in [-1, 1], direction)
        -> images: a translation method's generator of one direction ('AtoB' or 'BtoA'), at any
        size its networks take; the evaluator scores it on each domain's test images and
        `jaxgan.translate` applies it to a folder.
    eval_params: the entry of the checkpointed state that `sample` / `translate` take, or a tuple
        of entries, which they take as {entry: tree} (`Checkpointer.restore_state_entry`).
    is_conditional(config): whether G draws fakes for given labels (labelled metrics need it).
    safe_to_change: config fields (dotted) this method lets a resumed run change, besides the
        loop's own (`contract.SAFE_TO_CHANGE`).
    bench_step(config, mesh, stage_resolution, stage_alpha) -> BenchStep: the step the method
        trains `config` with, compiled on synthetic inputs of the config's shapes (no data is
        opened), for `python -m jaxgan.bench`. A method with a schedule of stages times the one
        `stage_resolution` (0: the final one) and fade-in `stage_alpha` give; the others ignore
        them. None: the method cannot be benchmarked.
    cpu_convolutions: the kernels XLA:CPU runs this method's convolutions with (`core.cpu_backend`;
        a training command sets them before JAX starts) where none was measured on the CPU:
        `ynn`, jaxlib's default, unless `eigen` or `xla` was measured faster for its steps.
    """

    trainer: Callable[..., Trainer]
    sampler: Callable[..., Callable[[dict], Callable]] | None
    is_conditional: Callable[[Any], bool]
    safe_to_change: tuple[str, ...] = ()
    translator: Callable[..., Callable] | None = None
    eval_params: str | tuple[str, ...] = "ema_params"
    bench_step: Callable[..., BenchStep] | None = None
    cpu_convolutions: str = "ynn"


def cpu_convolutions_for(method: str) -> tuple[str, str]:
    """(choice, why) of XLA:CPU's convolution kernels for `method` (`core.cpu_backend`): the one
    measured for it on this CPU where there is one, else the method's default."""
    answer = cpu_backend.measured(method)
    if answer:
        date = answer.get("date", "(no date)")
        return answer["choice"], f"chosen for {method} by a measurement on this CPU, {date}"
    return get(method).cpu_convolutions, f"{method}'s default"


def use_cpu_convolutions_of(config) -> str:
    """Sets `config.method`'s kernels (`cpu_convolutions_for`) before JAX's backend starts;
    returns the choice in force."""
    return cpu_backend.configure(*cpu_convolutions_for(config.method))


def get(name: str) -> Method:
    if name not in REGISTRY:
        raise errors.ConfigError(
            f"config.method={name!r} is not a training method; there are {', '.join(REGISTRY)}."
        )
    return importlib.import_module(REGISTRY[name]).METHOD
