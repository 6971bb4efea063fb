"""Throughput benchmarks. Each prints its result as the last line, `<name>: <number>`.

  python -m jaxgan.bench --config=wgan_gp [--steps=20]   # train_img_per_s
  python -m jaxgan.bench --config=cyclegan [--steps=20]  # train_img_per_s, translation
  python -m jaxgan.bench --features=mnist_cnn [--num_images=10000]  # features_img_per_s
  python -m jaxgan.bench --features=inception_v3 [--num_images=500 --image_size=32]
  python -m jaxgan.bench --conv                                     # conv formulations, ms/step
  python -m jaxgan.bench --data=prepared:DIR [--batch_size=64]       # data_img_per_s, host input
  python -m jaxgan.bench --swd [--num_images=4000 --image_size=32]   # swd_s, one checkpoint's SWD
  python -m jaxgan.bench --config=CONFIG --vs=torch [--rounds=5]      # against the PyTorch twin
                         [--twin_flags=--fused]                     # (the ResNet twin: jaxgan's algebra)
  JAXGAN_CONV_IMPL=patches python -m jaxgan.bench --config=...     # a whole step, one formulation
  python -m jaxgan.bench --presets=paper [--rows_out=rows.jsonl]     # every paper preset, real size
  python -m jaxgan.bench --presets=pggan:celebahq,cyclegan:horse2zebra  # a chosen list
  python -m jaxgan.bench --config=wgan_gp --profile [--steps=10]     # where a step's time goes
  python -m jaxgan.bench --config=cyclegan --choose_cpu_convolutions [--rounds=3]  # kept per CPU
  python -m jaxgan.bench --features=inception_v3 --profile --steps=2  # where one batch's time goes

`--conv` times a gradient-penalty step of two small critics per formulation
(`layers.CONV_FORMULATIONS`): the strided stack is where patches win by far. For stride-1 stacks
isolated numbers vary by shape; the convolution autotune chooses per shape and CPU
(`conv_autotune`; docs/performance.md has the numbers).

Train throughput counts real images through the critics per second, timed over `--steps`
iterations after one compiled warm-up step (`compile_s`), on synthetic uint8 batches of the
config's shape (no data is opened; the input pipeline is measured by the training run's own img/s).
The step is the one `config.method` trains with, as its `Method.bench_step` builds it (a method
without one cannot be timed): for a GAN (`gan.py`) an iteration is
n_critic critic batches and one generator batch, steps · n_critic · batch_size images; for
translation (`cyclegan.py`, `nicegan.py`) it is both generators' and both critics' update on one
A and one B batch, steps · 2 · batch_size images, as `translation.Trainer.images_seen` counts.
`benchmarks/torch_wgan_gp.py` and `benchmarks/torch_cyclegan.py` time the same iterations in
PyTorch, printing the same last line. On CPU the CycleGAN generator's last 7×7 conv (32 -> 3
channels on a reflection-padded input) is XLA:CPU's slow case.

`--choose_cpu_convolutions` runs that timing (`--config`, `--steps` and the rest as given) once
per round for each of XLA:CPU's convolution kernels (`core.cpu_backend`: eigen, xla, ynn), each in
a process of its own (XLA reads the choice as it starts), alternating `--rounds` times, and keeps
the fastest for the method on this CPU where it beats the method's default beyond the spread
(`cpu_backend.fastest`): training and the benchmarks of that method here then use it.

`--presets` builds each preset at its real size (its networks' widths, its batch, PGGAN at its
final resolution or `--stage_resolution`/`--stage_alpha`) on one device and synthetic batches,
and prints one line per preset (`preset_line`; `--rows_out` appends the rows as JSON): G and D
parameters against the reference implementation's count where one is known (`REFERENCE_PARAMS`),
the trace and XLA compile seconds, XLA's GFLOP per step and the bytes the program needs against
the free memory (a step that cannot fit is refused: "does not fit: needs X GiB, has Y GiB"), then
the median of two steps, the peak memory (host RSS on CPU, the device's peak on an accelerator) and
that step time times the paper's schedule (generator iterations, or a progressive run's kimg). The
step is compiled from shapes (`benchmark.abstract_step`), so nothing is allocated before the fit
check; a step whose FLOPs project it past `--preset_max_step_s` is compiled but not run, and its
line says so (on CPU, so that `--presets=paper` takes minutes, not hours).

Feature throughput is the evaluator's extraction as it runs (`classifier_training.make_predictor`,
`inception.make_feature_extractor`): `--num_images` random uint8 images (mnist_cnn: 32x32x1;
inception_v3: `--image_size` squared x 3, resized to 299 inside) in batches of `--batch_size`
(0: 500 / 50) sharded over `--num_devices` (0: all), host -> device copies and the copy back
included. One warm-up batch (compilation) is timed and printed apart; then `--repeats` passes over
all images, whose median is the last line and whose range is printed above it. Inception runs with
random weights of the right shapes (timing only: the real ones cannot be downloaded everywhere).
`benchmarks/torch_features.py` does the same extraction as pytorch-fid does, printing the same lines.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import statistics
import sys
import time
from collections.abc import Callable

from absl import app, flags

from jaxgan import configs, data
from jaxgan.core import batched, cpu_backend, errors, parallel, paths, run_files
from jaxgan.eval import classifier_training, features, inception, metrics, swd
from jaxgan.methods import gan, progressive
from jaxgan.models import classifier, conv_autotune, layers
from jaxgan.training import benchmark, penalties, registry, xla_profile

FLAGS = flags.FLAGS


def bench_train(config, steps: int, stage_resolution: int = 0, stage_alpha: float = 0.5) -> dict:
    """One method's compiled train step on synthetic batches: the lines `--config` prints."""
    import jax

    mesh = parallel.make_mesh(config.num_devices or None)
    step = build_step(config, mesh, stage_resolution, stage_alpha)
    compile_s = step.warm_up()
    seconds = step.time(steps)
    return {
        "devices": mesh.devices.size,
        "backend": jax.default_backend(),
        "xla_cpu_convolutions": cpu_backend.current(),
        **step.param_counts,
        "compile_s": compile_s,
        "step_ms": 1e3 * seconds / steps,
        "train_img_per_s": steps * step.images_per_step / seconds,
    }


def build_step(
    config, mesh, stage_resolution: int = 0, stage_alpha: float = 0.5
) -> benchmark.BenchStep:
    """The step `config.method` trains with, on synthetic batches of the config's shape: its
    method's `bench_step` (for a progressive config: at the stage given)."""
    method = registry.get(config.method)
    if method.bench_step is None:
        raise errors.ConfigError(
            f"config.method={config.method!r} has no benchmark step: its `METHOD` in "
            f"{registry.REGISTRY[config.method]} gives no `bench_step`, so --config cannot time it."
        )
    return method.bench_step(config, mesh, stage_resolution, stage_alpha)


def bench_conv() -> dict:
    """A GP critic step (3 stride-2 5×5 convs, and a stride-1 3×3 stack), per formulation."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    results = {}
    for name, kernel, stride, depth in (("strided_5x5", 5, 2, 3), ("plain_3x3", 3, 1, 4)):
        shapes = [(kernel, kernel, 1 if i == 0 else 64, 64) for i in range(depth)]
        params = [jnp.asarray(rng.normal(size=s) * 0.05, jnp.float32) for s in shapes]
        reals = jnp.asarray(rng.normal(size=(64, 32, 32, 1)), jnp.float32)

        def critic(params, x):
            for w in params:
                x = jax.nn.leaky_relu(layers.conv2d(x, w, stride, "SAME"), 0.2)
            return jnp.mean(x, axis=(1, 2, 3))

        def loss(params, key):
            return penalties.wgan_gp(lambda x: critic(params, x), reals, 0.5 * reals, None, key)

        for impl in layers.CONV_FORMULATIONS:
            os.environ["JAXGAN_CONV_IMPL"] = impl
            step = jax.jit(jax.grad(loss))
            jax.block_until_ready(step(params, jax.random.key(0)))
            start = time.perf_counter()
            for i in range(5):
                grads = step(params, jax.random.key(i))
            jax.block_until_ready(grads)
            results[f"{name}_{impl}_ms"] = 1e3 * (time.perf_counter() - start) / 5
    os.environ.pop("JAXGAN_CONV_IMPL")
    return results


# ----------------------------------------------------------------------------------------------
# jaxgan against its PyTorch twin, alternating in one invocation (`--vs=torch`).
# ----------------------------------------------------------------------------------------------

TWINS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def twin_command(config, stage_resolution: int, stage_alpha: float) -> list[str]:
    """[script, flags...] of the PyTorch twin that times the same iteration as `config`'s step.

    The flags give the twin the config's networks and batch shapes; that they are the same
    networks is checked afterwards by the parameter counts.
    """

    def same_width(model):
        if model.g_width != model.d_width:
            raise errors.ConfigError(
                f"--vs=torch: the PyTorch twins take one width; config.model.g_width="
                f"{model.g_width} and d_width={model.d_width} differ."
            )
        return model.g_width

    m, channels = config.model, config.data.channels
    amp = ["--amp"] if config.get("compute_dtype", "float32") == "bfloat16" else []
    if config.method == "gan":
        if (
            m.name not in ("dcgan", "resnet")
            or config.loss != "wasserstein"
            or sorted(config.penalties) != ["wgan_gp"]
            or gan.is_conditional(config)  # a conditional G, or a label-reading critic
            or (m.name == "dcgan" and m.critic_norm != "none")
            or config.data.resolution != 32
        ):
            raise errors.ConfigError(
                "--vs=torch: benchmarks/torch_wgan_gp.py twins an unconditional 32x32 WGAN-GP "
                "with the dcgan (critic_norm 'none') or resnet networks: jaxgan/configs/wgan_gp.py and "
                "its :cifar10 preset. This config is another; time it with --config alone."
            )
        channels = gan.synthetic_channels(config)
        return [
            "torch_wgan_gp.py",
            f"--arch={m.name}",
            f"--width={same_width(m)}",
            f"--batch_size={config.batch_size}",
            f"--g_batch_size={config.g_batch_size}",
            f"--channels={channels}",
            f"--n_critic={config.n_critic}",
            *amp,
        ]
    if config.method in ("cyclegan", "translation"):
        return [
            "torch_cyclegan.py",
            f"--size={config.data.resolution}",
            f"--width={same_width(m)}",
            f"--blocks={m.num_blocks}",
            f"--batch={config.batch_size}",
            f"--channels={channels}",
            *amp,
        ]
    if config.method == "progressive":
        if (
            config.loss != "wasserstein"
            or sorted(config.penalties) != ["drift", "wgan_gp"]
            or m.ac_head
            or progressive.generator_is_conditional(config)
            or m.use_batchnorm
            or m.use_layernorm
            or m.tanh_output
            or m.fmap_decay != 1.0
            or config.penalties.wgan_gp.weight != 10.0
            or config.penalties.drift.weight != 0.001
            or not (m.use_wscale and m.use_pixelnorm and m.use_leakyrelu and m.normalize_latents)
        ):
            raise errors.ConfigError(
                "--vs=torch: benchmarks/torch_pggan.py twins PGGAN's unconditional WGAN-GP + drift "
                "networks (equalized lr, pixel norm, LReLU): jaxgan/configs/pggan.py and its :cifar10 "
                "preset. This config is another; time it with --config alone."
            )
        channels = gan.synthetic_channels(config)
        table = progressive.parse_table(config.schedule.batch_by_resolution, int)
        resolution = stage_resolution or config.data.resolution
        return [
            "torch_pggan.py",
            f"--final_resolution={config.data.resolution}",
            f"--resolution={resolution}",
            f"--alpha={stage_alpha}",
            f"--channels={channels}",
            f"--batch_size={table.get(resolution, config.batch_size)}",
            f"--fmap_base={m.fmap_base}",
            f"--fmap_max={m.fmap_max}",
            f"--z_dim={m.z_dim}",
            f"--mbstd_group_size={m.mbstd_group_size}",
            f"--gp_target={config.penalties.wgan_gp.target}",
            f"--n_critic={config.n_critic}",
            "--simultaneous" if config.simultaneous_updates else "--no-simultaneous",
            "--ema_warmup" if config.ema_warmup else "--no-ema_warmup",
            *amp,
        ]
    raise errors.ConfigError(
        f"--vs=torch: no PyTorch twin of method {config.method!r}; twins exist for 'gan' "
        f"(jaxgan/configs/wgan_gp.py), 'progressive' (jaxgan/configs/pggan.py) and 'cyclegan'."
    )


def run_twin(python: str, command: list[str]) -> dict[str, str]:
    """Runs one twin and returns its `name: value` lines; a failing twin stops the comparison."""
    import subprocess

    result = subprocess.run(
        [python, os.path.join(TWINS_DIR, command[0]), *command[1:]],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(
            f"The PyTorch twin failed ({' '.join(command)}), exit {result.returncode}:\n"
            f"{result.stderr[-2000:]}"
        )
    lines = (line.partition(": ") for line in result.stdout.splitlines())
    return {name: value for name, sep, value in lines if sep}


def check_torch(python: str) -> str:
    """PyTorch's version as `python` imports it, or a UsageError saying how to get it."""
    import subprocess

    if not os.path.isdir(TWINS_DIR):
        raise app.UsageError(
            f"--vs=torch runs the PyTorch twins in {TWINS_DIR}, which this installation lacks: "
            f"run it from a clone of the repository."
        )
    probe = subprocess.run(
        [python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        raise app.UsageError(
            f"--vs=torch: {python} cannot import torch. Install it (pip install torch; the CPU "
            f"build is enough here) or pass --torch_python=PATH of a Python that has it."
        )
    return probe.stdout.strip()


def device_name() -> str:
    """The accelerator's name, or the CPU's model name (what a speed claim must name)."""
    import platform

    import jax

    device = jax.devices()[0]
    if device.platform != "cpu":
        return f"{device.device_kind} ({device.platform})"

    fields = paths.cpuinfo()
    # A model name can be as vague as 'AMD EPYC': family and model tell the generations apart
    # (AMD family 25 is Zen 3/4, 26 is Zen 5), and with them which instructions XLA compiled for.
    name = fields.get("model name") or platform.processor() or "unknown CPU"
    if "cpu family" in fields:
        name += f", family {fields['cpu family']} model {fields.get('model', '?')}"
    avx512 = " with AVX-512" if "avx512f" in fields.get("flags", "").split() else ""
    return f"{name} (cpu{avx512})"


def matmul_peak_flops(dtype="float32", repeats: int = 5) -> float:
    """Floating-point operations per second of XLA's best square matmul here (best of `repeats`):
    the reference for what fraction of the machine a step uses."""
    import jax
    import jax.numpy as jnp

    n = 2048 if jax.default_backend() == "cpu" else 8192
    a = jnp.ones((n, n), dtype)
    return 2.0 * n**3 / conv_autotune.fastest_call(jax.jit(jnp.matmul), (a, a), repeats)


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.1f} (range {min(values):.1f}-{max(values):.1f})"


def compare_with_torch(
    config,
    rounds: int,
    steps: int,
    python: str,
    stage_resolution: int,
    stage_alpha: float,
    twin_flags: tuple[str, ...] = (),
) -> list[str]:
    """jaxgan's step and its twin's iteration, alternating `rounds` times: the lines to print.

    Each round times `steps` jaxgan steps (compiled once, before the first round), then runs the
    twin once per memory layout (its own warm-up, then `steps` iterations), so both sides see the
    same machine state. On a GPU the twin also runs with AMP when the config computes in bf16.
    `twin_flags` go to the twin as they are (`--fused`: the ResNet twin with jaxgan's algebra).
    """
    import jax

    check_torch(python)
    command = [*twin_command(config, stage_resolution, stage_alpha), *twin_flags]
    threads = len(os.sched_getaffinity(0))
    device = ["--device=cpu", f"--threads={threads}"]
    if jax.default_backend() == "gpu":
        device = ["--device=cuda"]
    mesh = parallel.make_mesh(config.num_devices or None)
    step = build_step(config, mesh, stage_resolution, stage_alpha)
    params = (step.param_counts["g_params"], step.param_counts["d_params"])
    flops = step.flops()
    step.warm_up()
    layouts = {"torch_nchw": [], "torch_channels_last": ["--channels_last"]}
    times = {"jaxgan": [], **{side: [] for side in layouts}}
    twin_lines = {}
    for round_index in range(rounds):
        times["jaxgan"].append(1e3 * step.time(steps) / steps)
        for side, layout in layouts.items():
            twin_lines = run_twin(python, [*command, *device, *layout, f"--steps={steps}"])
            times[side].append(float(twin_lines["step_ms"]))
        print(
            f"round {round_index + 1}/{rounds}: "
            + ", ".join(f"{side} {ms[-1]:.1f} ms" for side, ms in times.items()),
            flush=True,
        )
    twin_params = (int(twin_lines["g_params"]), int(twin_lines["d_params"]))
    if twin_params != params:
        raise SystemExit(
            f"The twin's networks are not jaxgan's: parameters (G, D) {twin_params} against "
            f"{params}. Fix benchmarks/{command[0]} before comparing."
        )
    compute_dtype = config.get("compute_dtype", "float32")
    peak = matmul_peak_flops(compute_dtype)
    medians = {side: statistics.median(ms) for side, ms in times.items()}
    best_torch = min((ms, side) for side, ms in medians.items() if side != "jaxgan")
    floor_ms = 1e3 * flops / peak if flops else float("nan")
    return [
        f"device: {device_name()}",
        f"jax: {jax.__version__}, XLA CPU threads: {threads} (the process's CPUs), "
        f"convolutions: {cpu_backend.current()}",
        f"torch: {twin_lines['torch']}",
        f"twin: benchmarks/{' '.join(command)}",
        f"params: G {params[0]:,}, D {params[1]:,} (the same in both)",
        f"images_per_step: {step.images_per_step}",
        *(f"{side}_step_ms: {spread(ms)}" for side, ms in times.items()),
        f"xla_gflop_per_step: {flops / 1e9:.2f}",
        f"matmul_peak_gflop_per_s: {peak / 1e9:.1f} ({compute_dtype}, XLA, best of 5)",
        f"compute_floor_ms: {floor_ms:.1f} (XLA's FLOP count at the matmul peak)",
        f"jaxgan_fraction_of_floor: {floor_ms / medians['jaxgan']:.2f}",
        f"speedup_vs_torch_best: {best_torch[0] / medians['jaxgan']:.2f} ({best_torch[1]} median"
        f" / jaxgan median; > 1: jaxgan is faster)",
    ]


# ----------------------------------------------------------------------------------------------
# XLA:CPU's convolution kernels for a method, measured on this CPU (`--choose_cpu_convolutions`).
# ----------------------------------------------------------------------------------------------

CHOOSER_FLAGS = ("choose_cpu_convolutions", "nochoose_cpu_convolutions", "rounds")


def step_command(argv: list[str]) -> list[str]:
    """The command that times the step once: this one's arguments without the chooser's flags."""
    kept, skip_value = [], False
    for arg in argv:
        name, has_value, _ = arg.lstrip("-").partition("=")
        if skip_value or name in CHOOSER_FLAGS:
            skip_value = not skip_value and name == "rounds" and not has_value  # `--rounds 3`
            continue
        kept.append(arg)
    return [sys.executable, "-m", "jaxgan.bench", *kept]


def step_ms_under(choice: str, command: list[str]) -> float:
    """The step's ms/step as `command` prints it, run in a process of its own with `choice`'s
    kernels (XLA reads them once, as its backend starts)."""
    import subprocess

    result = subprocess.run(
        command, env={**os.environ, cpu_backend.CHOICE_ENV: choice}, capture_output=True, text=True
    )
    lines = dict(line.partition(": ")[::2] for line in result.stdout.splitlines())
    if result.returncode != 0 or "step_ms" not in lines:
        raise SystemExit(
            f"The step with {cpu_backend.CHOICE_ENV}={choice} failed, exit {result.returncode} "
            f"({' '.join(command)}):\n{result.stderr[-2000:]}"
        )
    return float(lines["step_ms"])


def choose_cpu_convolutions(
    method: str, rounds: int, time_step: Callable[[str], float], measured_with: str
) -> list[str]:
    """Times the step under each of XLA:CPU's kernel choices (`time_step(choice)` -> ms),
    alternating `rounds` times, keeps the fastest for `method` on this machine where it is faster
    beyond the spread of the method's default (`cpu_backend.fastest`), and returns the lines to
    print. Training and the benchmarks of `method` on this CPU then use it."""
    times = {choice: [] for choice in cpu_backend.CHOICES}
    for round_index in range(rounds):
        for choice, ms in times.items():
            ms.append(time_step(choice))
        print(
            f"round {round_index + 1}/{rounds}: "
            + ", ".join(f"{choice} {ms[-1]:.1f} ms" for choice, ms in times.items()),
            flush=True,
        )
    default = registry.get(method).cpu_convolutions
    chosen = cpu_backend.fastest(times, default)
    medians = {choice: statistics.median(ms) for choice, ms in times.items()}
    best = min(medians, key=medians.get)
    if chosen != default:
        ratio = medians[default] / medians[chosen]
        why = f"{ratio:.2f}x as fast as {default} by the median, ranges apart"
    elif best != default:
        why = (
            f"{best} was {medians[default] / medians[best]:.2f}x faster by the median, within "
            f"{default}'s range: the method's default stays"
        )
    else:
        why = "the method's default was the fastest"
    answer = {
        "choice": chosen,
        "default": default,
        "step_ms": times,
        "date": datetime.date.today().isoformat(),
        "command": measured_with,
    }
    path = cpu_backend.record_measured(method, answer)
    return [
        f"device: {device_name()}",
        *(f"{choice}_step_ms: {spread(ms)}" for choice, ms in times.items()),
        f"chosen: {chosen} for method {method} on this CPU ({why}); kept in {path}",
    ]


# ----------------------------------------------------------------------------------------------
# The papers' presets at their real size (`--presets=paper`).
# ----------------------------------------------------------------------------------------------

PAPER_PRESETS = (
    "wgan_gp:cifar10",
    "wgan_gp:resnet64",
    "acgan:cifar10",
    "sngan:cifar10",
    "pggan:cifar10",
    "pggan:celebahq",
    "dcgan:celeba64",
    "cyclegan:horse2zebra",
    "nicegan:horse2zebra",
    "transfer:paper",
)
PRESET_STEPS = 2  # timed steps after the compile; their median is the step time
# --preset_max_step_s's default: on a CPU the heavier presets' steps are skipped, so that
# `--presets=paper` takes minutes (docs/performance.md); an accelerator's are all far under it.
PRESET_MAX_STEP_S = 60.0
# The fraction of XLA's matmul peak a whole train step is assumed to reach, to project a step's
# time from its FLOPs before running it: below the fractions docs/performance.md measured, since it
# only decides whether a step is tried within --preset_max_step_s.
STEP_FRACTION_OF_PEAK = 0.3
GIB = 2**30


def gib(size: int) -> str:
    """Bytes as GiB to 3 significant digits (a smoke preset's program is a thousandth of one)."""
    return f"{size / GIB:.3g} GiB"


@dataclasses.dataclass(frozen=True)
class ReferenceCount:
    """The reference implementation's parameter count of a preset's networks, as `BenchStep`
    counts them: trainable parameters, every network of a side together (CycleGAN's and NICE-GAN's
    two generators are one side). tests/test_bench_presets.py derives each from the reference's
    layers."""

    g_params: int
    d_params: int
    source: str


_GAN_64X64 = "igul222/improved_wgan_training gan_64x64.py GoodGenerator/GoodDiscriminator, DIM=64"
REFERENCE_PARAMS = {
    # gan_cifar_resnet.py's printed totals also count its BatchNorms' moving averages, which are
    # not trained: the trainable variables are compared.
    "wgan_gp:cifar10": ReferenceCount(
        1_204_483, 1_053_825, "igul222/improved_wgan_training gan_cifar_resnet.py, unconditional"
    ),
    "acgan:cifar10": ReferenceCount(
        1_218_307, 1_055_115, "gan_cifar_resnet.py with CONDITIONAL = ACGAN = True"
    ),
    "wgan_gp:resnet64": ReferenceCount(8_540_483, 7_491_841, _GAN_64X64),
    # transfer_gan.py's networks with ACGAN = False are gan_64x64.py's (its default, True, adds
    # per-class BatchNorm and an AC head: the conditional experiments).
    "transfer:paper": ReferenceCount(
        8_540_483, 7_491_841, "yaxingwang/Transferring-GANs transfer_gan.py, ACGAN=False"
    ),
    "sngan:cifar10": ReferenceCount(
        4_304_387,
        1_055_104,
        "pfnet-research/sngan_projection sn_cifar10.yml: ResNetGenerator ch 256, "
        "SNResNetProjectionDiscriminator ch 128",
    ),
    # networks.py's G_paper/D_paper have a toRGB / fromRGB per resolution, all counted.
    "pggan:cifar10": ReferenceCount(
        1_296_908,
        1_298_689,
        "tkarras/progressive_growing_of_gans networks.py G_paper/D_paper at fmap_base 4096, "
        "fmap_max 128, latent 128, 32x32",
    ),
    "pggan:celebahq": ReferenceCount(
        23_079_115,
        23_087_249,
        "networks.py G_paper/D_paper at 1024x1024 (paper Table 2: 23.1M each)",
    ),
    "dcgan:celeba64": ReferenceCount(
        3_576_704, 2_765_568, "pytorch/examples dcgan/main.py, nz 100, ngf = ndf = 64"
    ),
    "cyclegan:horse2zebra": ReferenceCount(
        2 * 11_378_179,
        2 * 2_764_737,
        "junyanz/pytorch-CycleGAN-and-pix2pix: 2 x ResNet-9 G (11.378 M) and 2 x 70x70 "
        "PatchGAN D (2.765 M), as it prints them",
    ),
    "nicegan:horse2zebra": ReferenceCount(
        2 * 8_104_640,
        2 * 46_874_433,
        "alpc91/NICE-GAN-pytorch networks.py: 2 x ResnetGenerator(ngf 64, 6 blocks, light), "
        "2 x Discriminator(ndf 64, n_layers 7)",
    ),
}


def preset_specs(value: str) -> list[str]:
    """`--presets`: 'paper' (PAPER_PRESETS) or a comma list of NAME:PRESET."""
    if value == "paper":
        return list(PAPER_PRESETS)
    specs = [spec.strip() for spec in value.split(",") if spec.strip()]
    for spec in specs:
        name, colon, preset = spec.partition(":")
        if not (colon and name and preset):
            raise app.UsageError(
                f"--presets: {spec!r} is not NAME:PRESET; give 'paper' or a comma list such as "
                f"--presets=wgan_gp:cifar10,cyclegan:horse2zebra."
            )
    return specs


def load_preset(spec: str):
    """The config of `NAME:PRESET`; a name or preset that does not exist is a UsageError."""
    name, _, preset = spec.partition(":")
    try:
        return configs.get(name, preset)
    except ValueError as error:
        raise app.UsageError(
            f"--presets: {spec}: {str(error).removeprefix('--config: ')}"
        ) from None


def params_check(spec: str, counts: dict[str, int]) -> str:
    """How `counts` compare with the reference's count of `spec`'s networks, in words."""
    reference = REFERENCE_PARAMS.get(spec)
    if reference is None:
        return "(no reference count)"
    expected = {"g_params": reference.g_params, "d_params": reference.d_params}
    wrong = [
        f"{entry[0].upper()} {counts[entry]:,} vs {count:,} ({counts[entry] - count:+,})"
        for entry, count in expected.items()
        if counts[entry] != count
    ]
    if wrong:
        return f"PARAMETER MISMATCH: {', '.join(wrong)} in {reference.source}"
    return f"= {reference.source}"


def paper_schedule(config, images_per_step: int) -> tuple[float, str]:
    """(steps of the timed kind in the preset's whole training, what they are)."""
    if "schedule" in config:  # progressive: a length in real images shown, stages of every size
        kimg = config.schedule.total_kimg
        return kimg * 1000 / images_per_step, (
            f"{kimg:,.0f} kimg at {images_per_step} images per step, all at the timed stage's cost"
        )
    unit = "generator iterations" if "n_critic" in config else "iterations"
    return float(config.num_steps), f"{config.num_steps:,} {unit}"


def bench_preset(
    row: dict,
    config,
    mesh,
    *,
    steps: int,
    stage_resolution: int,
    stage_alpha: float,
    max_step_s: float,
    flops_per_s: Callable[[], float],
    available_bytes: int | None,
) -> None:
    """One preset at its real size, into `row` as it goes (a failure keeps what came before):
    parameters, compile, fit, `steps` steps, peak memory and the time of the paper's schedule.

    The step is compiled from its shapes first, so a step that cannot fit in `available_bytes`
    (None: what the device has now) is refused before its state exists, and one whose projected
    time (its FLOPs at `flops_per_s()` x STEP_FRACTION_OF_PEAK) exceeds `max_step_s` (0: no limit)
    is compiled but not run.
    """
    device = mesh.devices.flat[0]
    row["method"] = config.method
    if "schedule" in config:
        row["stage"] = f"{stage_resolution or config.data.resolution}², alpha {stage_alpha}"

    def build():
        return build_step(config, mesh, stage_resolution, stage_alpha)

    start = time.perf_counter()
    shapes = benchmark.abstract_step(build)  # nothing allocated yet
    row.update(shapes.param_counts)
    row["params_check"] = params_check(row["preset"], shapes.param_counts)
    row["images_per_step"] = shapes.images_per_step
    compiled = benchmark.compile_step(shapes)
    row["trace_s"] = time.perf_counter() - start - compiled.compile_s
    row["compile_s"] = compiled.compile_s
    row["gflop_per_step"] = compiled.flops / 1e9
    if available_bytes is None:
        available_bytes = benchmark.available_memory_bytes(device)
    row["needed_bytes"], row["available_bytes"] = compiled.needed_bytes, available_bytes
    schedule_steps, row["schedule"] = paper_schedule(config, shapes.images_per_step)

    if not benchmark.fits(compiled.needed_bytes, available_bytes):
        row["status"] = (
            f"does not fit: needs {gib(compiled.needed_bytes)}, has {gib(available_bytes)}"
        )
        return
    if max_step_s and compiled.flops:
        projected_s = compiled.flops / (flops_per_s() * STEP_FRACTION_OF_PEAK)
        if projected_s > max_step_s:
            row["status"] = (
                f"steps skipped: {row['gflop_per_step']:,.0f} GFLOP project {projected_s:,.0f} s "
                f"per step, over --preset_max_step_s={max_step_s:g}"
            )
            row["projected_h"] = projected_s * schedule_steps / 3600
            row["projected_from"] = "the FLOP estimate"
            return

    # An accelerator's allocator keeps one peak for the process; the host's can be reset.
    peak_is_this_presets = device.platform == "cpu" and benchmark.reset_peak_rss()
    step = build()
    step.fn = compiled.executable
    row["step_s_runs"] = step.seconds_per_step(steps)
    row["step_s"] = statistics.median(row["step_s_runs"])
    row["peak_bytes"], row["peak_kind"] = benchmark.peak_memory(device)
    if not peak_is_this_presets:
        row["peak_kind"] += " (of the whole process)"
    row["projected_h"] = row["step_s"] * schedule_steps / 3600
    row["projected_from"] = "the measured step"
    row["status"] = "ran"


def preset_line(row: dict) -> str:
    """One preset's row as one line: what it measured, then what stopped it, if anything."""
    parts = [row["preset"] + (f" at {row['stage']}" if "stage" in row else "")]
    if "g_params" in row:
        parts.append(f"G {row['g_params']:,} D {row['d_params']:,} params {row['params_check']}")
    if "compile_s" in row:
        needed, available = row["needed_bytes"], row["available_bytes"]
        parts += [
            f"compile {row['compile_s']:.1f} s (trace {row['trace_s']:.1f} s)",
            f"{row['gflop_per_step']:,.1f} GFLOP/step",
            "needs "
            + ("? (no memory analysis)" if needed is None else gib(needed))
            + ("" if available is None else f" of {gib(available)}"),
        ]
    if "step_s" in row:
        runs = ", ".join(f"{s:.3g}" for s in row["step_s_runs"])
        parts += [
            f"step {row['step_s']:.3g} s (median of {len(row['step_s_runs'])}: {runs})",
            f"{row['peak_kind']} {gib(row['peak_bytes'])}",
        ]
    elif "status" in row:
        parts.append(row["status"])
    if "projected_h" in row:
        parts.append(
            f"paper schedule, {row['schedule']}: {row['projected_h']:,.1f} h here "
            f"(from {row['projected_from']})"
        )
    return " | ".join(parts)


def bench_presets(
    specs: list[str],
    *,
    steps: int = PRESET_STEPS,
    stage_resolution: int = 0,
    stage_alpha: float = 0.5,
    max_step_s: float = 0.0,
    available_bytes: int | None = None,
    flops_per_s: float | None = None,
    rows_out: str | None = None,
) -> list[dict]:
    """`--presets`: each preset at its real size on synthetic data (`bench_preset`), its line
    printed (and its JSON row appended to `rows_out`) as it finishes. A preset that fails says so
    in its row (status 'failed: ...') and the next one runs. `flops_per_s` (None: XLA's matmul
    peak here, measured when first needed) prices a step's FLOPs for `max_step_s`."""
    import functools

    import jax

    presets = [(spec, load_preset(spec)) for spec in specs]  # every name checked before any work
    # One process, one choice of XLA:CPU's kernels: the methods' own where they agree, else ynn.
    kernels = {registry.cpu_convolutions_for(config.method) for _, config in presets}
    cpu_backend.configure(*(kernels.pop() if len(kernels) == 1 else ("ynn", "the presets differ")))
    # One device: the papers' batches (1 image for the translation presets, 3 for PGGAN at 1024²)
    # do not split over more without changing them.
    mesh = parallel.make_mesh(1)
    peak = functools.cache(lambda: flops_per_s or matmul_peak_flops())
    print(
        f"device: {device_name()} (one device), jax {jax.__version__}, "
        f"convolutions: {cpu_backend.current()}"
    )
    rows = []
    for spec, config in presets:
        row = {"preset": spec}
        try:
            bench_preset(
                row,
                config,
                mesh,
                steps=steps,
                stage_resolution=stage_resolution,
                stage_alpha=stage_alpha,
                max_step_s=max_step_s,
                flops_per_s=peak,
                available_bytes=available_bytes,
            )
        except Exception as error:  # noqa: BLE001 - one broken preset is a finding; the rest run
            first_line = (str(error).strip().splitlines() or [""])[0]
            row["status"] = f"failed: {type(error).__name__}: {first_line}"
        finally:
            jax.clear_caches()  # the preset's compiled programs, before the next one's
        print(preset_line(row), flush=True)
        if rows_out:
            run_files.append_jsonl(rows_out, row)
        rows.append(row)
    return rows


# name -> (default number of images, default batch size): batches are the evaluator's defaults
# (`features.load`); 10,000 digits are an evaluation's worth, 500 images a quick Inception run.
FEATURE_DEFAULTS = {"mnist_cnn": (10_000, 500), "inception_v3": (500, 50)}


def time_extraction(extract, images, batch_size: int, repeats: int) -> dict:
    """Times `extract(images)`: {"warmup_s": one batch, compile included; "img_per_s": per pass}.

    The warm-up batch compiles every program a pass uses (all batches share one shape); each of
    the `repeats` passes then extracts all images, results back on the host.
    """
    start = time.perf_counter()
    extract(images[:batch_size])
    warmup_s = time.perf_counter() - start
    img_per_s = []
    for _ in range(repeats):
        start = time.perf_counter()
        extract(images)
        img_per_s.append(len(images) / (time.perf_counter() - start))
    return {"warmup_s": warmup_s, "img_per_s": img_per_s}


def feature_extractor(name: str, batch_size: int, mesh):
    """(extract, weights description) of feature network `name`, sharded over `mesh`."""
    if name == "mnist_cnn":
        model = classifier.get("mnist_cnn")
        params, _ = classifier.load_params(features.mnist_cnn_weights_path(), model)
        extract = classifier_training.make_predictor(model, params, batch_size, mesh=mesh)
        return extract, "shipped weights (jaxgan/assets/mnist_cnn.npz)"

    extract = inception.make_feature_extractor(inception.random_params(0), batch_size, mesh=mesh)
    return extract, "random weights: timing only"


def inception_step(batch_size: int, image_size: int) -> benchmark.BenchStep:
    """The FID Inception on one batch of random uint8 images (resize included), as a `BenchStep`
    for `--profile`: its "state" is the network's variables, passed through unchanged."""
    import jax

    features = jax.jit(
        lambda variables, images: (variables, inception.inception_features(variables, images))
    )
    images = benchmark.random_images(batch_size, image_size, 3)
    return benchmark.BenchStep(features, inception.random_params(0), (images,), batch_size, ())


def print_profile(step: benchmark.BenchStep) -> None:
    """`--profile`: the step warmed up, then `--steps` of it under XLA's profiler, reported."""
    import jax

    step.warm_up()
    jax.block_until_ready(step.state)
    table = xla_profile.profile(step, FLAGS.steps)
    print(xla_profile.report(table, FLAGS.profile_top))
    if FLAGS.rows_out:
        run_files.write_json(FLAGS.rows_out, table)


def bench_features(
    name: str, num_images: int, batch_size: int, image_size: int, repeats: int, num_devices: int
) -> dict:
    """The printed lines of `--features=name`: setup, warm-up and img/s (runs, range, median)."""
    import jax

    default_images, default_batch = FEATURE_DEFAULTS[name]
    num_images, batch_size = num_images or default_images, batch_size or default_batch
    size, channels = (32, 1) if name == "mnist_cnn" else (image_size, 3)
    mesh = parallel.make_mesh(num_devices or None)
    extract, weights = feature_extractor(name, batch_size, mesh)
    timing = time_extraction(
        extract, benchmark.random_images(num_images, size, channels), batch_size, repeats
    )
    rates = timing["img_per_s"]
    return {
        "network": f"{name}, {weights}",
        "images": f"{num_images} x {size}x{size}x{channels} uint8",
        "batch_size": batched.round_up_to_devices(batch_size, mesh),
        "devices": f"{mesh.devices.size} ({jax.default_backend()})",
        "xla_cpu_convolutions": cpu_backend.current(),
        "warmup_s": f"{timing['warmup_s']:.2f} (one batch, compilation included; not timed)",
        "img_per_s_runs": ", ".join(f"{r:.1f}" for r in rates),
        "features_img_per_s_range": f"{min(rates):.1f}-{max(rates):.1f}",
        "features_img_per_s": f"{statistics.median(rates):.1f}",
    }


def bench_swd(num_images: int, image_size: int, repeats: int) -> dict:
    """The evaluator's SWD of one checkpoint (real and fake descriptors, then the distances, as
    `metrics.sliced_wasserstein` runs them with the pggan preset) on two sets of random uint8 RGB
    images; one untimed warm-up (compilation), then the median of `repeats`."""
    import numpy as np

    preset = swd.SWD_PRESETS["pggan"]
    real, fake = (benchmark.random_images(num_images, image_size, 3, seed) for seed in (0, 1))

    def evaluate():
        rng = np.random.RandomState(1)
        real_descriptors = metrics._swd_descriptors(real, image_size, 0, preset)
        fake_descriptors = metrics._swd_descriptors(fake, image_size, rng, preset)
        return swd.sliced_wasserstein_distances(
            real_descriptors, fake_descriptors, swd.swd_resolutions(image_size), rng, preset
        )

    start = time.perf_counter()
    values = evaluate()
    warmup_s = time.perf_counter() - start
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        evaluate()
        seconds.append(time.perf_counter() - start)
    return {
        "images": f"{num_images} real + {num_images} fake, {image_size}x{image_size}x3 uint8",
        "swd_x1e3_avg": f"{values['SWDx1e3_avg']:.4f}",
        "warmup_s": f"{warmup_s:.2f} (compilation included)",
        "swd_s_runs": ", ".join(f"{s:.2f}" for s in seconds),
        "swd_s": f"{statistics.median(seconds):.2f}",
    }


def bench_data(dataset: str, resolution: int, batch_size: int, num_images: int) -> dict:
    """Host input throughput: `data.Batches` over `dataset` (the training stream: shuffled
    indices, fitted uint8 batches) for `num_images` images after one warm-up batch."""

    source = data.open_source(dataset, "train")
    shape = getattr(source, "images", None)
    resolution = resolution or (shape.shape[1] if shape is not None else 64)
    batches = data.Batches(source, batch_size, resolution, source.channels, seed=0)
    try:
        next(batches)
        start, seen = time.perf_counter(), 0
        while seen < num_images:
            seen += next(batches)["image"].shape[1]
        seconds = time.perf_counter() - start
    finally:
        batches.close()
    return {"images": seen, "resolution": resolution, "data_img_per_s": round(seen / seconds)}


def main(argv):
    del argv
    # No persistent compilation cache (`core.paths.enable_compilation_cache`): compile_s and the
    # warm-up times measure XLA's compile, which a cache read would replace.
    if FLAGS.data:
        result = bench_data(
            FLAGS.data, FLAGS.data_resolution, FLAGS.batch_size or 64, FLAGS.num_images or 50_000,
        )  # fmt: skip
        for name, value in result.items():
            print(f"{name}: {value}")
        return
    if FLAGS.swd:
        result = bench_swd(FLAGS.num_images or 4000, FLAGS.image_size, FLAGS.repeats)
        for name, value in result.items():
            print(f"{name}: {value}")
        return
    if FLAGS.features:
        if FLAGS.features not in FEATURE_DEFAULTS:
            raise app.UsageError(
                f"--features={FLAGS.features!r}: expected one of {', '.join(FEATURE_DEFAULTS)}."
            )
        if FLAGS.profile:
            if FLAGS.features != "inception_v3":
                raise app.UsageError("--profile with --features: inception_v3 is the one profiled.")
            print_profile(inception_step(FLAGS.batch_size or 50, FLAGS.image_size))
            return
        result = bench_features(
            FLAGS.features,
            FLAGS.num_images,
            FLAGS.batch_size,
            FLAGS.image_size,
            FLAGS.repeats,
            FLAGS.num_devices,
        )
        for name, value in result.items():
            print(f"{name}: {value}")
        return
    if FLAGS.conv:
        for name, value in bench_conv().items():
            print(f"{name}: {value:.1f}")
        return
    if FLAGS.presets:
        rows = bench_presets(
            preset_specs(FLAGS.presets),
            stage_resolution=FLAGS.stage_resolution,
            stage_alpha=FLAGS.stage_alpha,
            max_step_s=FLAGS.preset_max_step_s,
            available_bytes=int(FLAGS.available_memory_gib * GIB) or None,
            rows_out=FLAGS.rows_out,
        )
        failed = [row["preset"] for row in rows if row["status"].startswith("failed")]
        if failed:
            raise SystemExit(f"{len(failed)} preset(s) failed: {', '.join(failed)}")
        return
    if FLAGS.config is None:
        raise app.UsageError(
            "Give --config=CONFIG (or --presets=paper, --features=NETWORK, or --conv)."
        )
    if FLAGS.choose_cpu_convolutions:
        if FLAGS.vs or FLAGS.profile:
            raise app.UsageError(
                "--choose_cpu_convolutions times the plain step: give it without --vs or --profile."
            )
        if "as XLA_FLAGS" in cpu_backend.current():
            raise app.UsageError(
                f"--choose_cpu_convolutions: XLA_FLAGS sets {cpu_backend.FLAG} itself, which "
                "would win over every choice; unset it to measure them."
            )
        command = step_command(sys.argv[1:])
        for line in choose_cpu_convolutions(
            FLAGS.config.method,
            FLAGS.rounds,
            lambda choice: step_ms_under(choice, command),
            "python -m jaxgan.bench " + " ".join(sys.argv[1:]),
        ):
            print(line)
        return
    registry.use_cpu_convolutions_of(FLAGS.config)  # the method's kernels, as its training uses
    if FLAGS.vs:
        if FLAGS.vs != "torch":
            raise app.UsageError(f"--vs={FLAGS.vs!r}: the one comparison is --vs=torch.")
        for line in compare_with_torch(
            FLAGS.config,
            FLAGS.rounds,
            FLAGS.steps,
            FLAGS.torch_python or sys.executable,
            FLAGS.stage_resolution,
            FLAGS.stage_alpha,
            tuple(FLAGS.twin_flags.split()),
        ):
            print(line)
        return
    if FLAGS.profile:
        step = build_step(
            FLAGS.config, parallel.make_mesh(FLAGS.config.num_devices or None),
            FLAGS.stage_resolution, FLAGS.stage_alpha,
        )  # fmt: skip
        print_profile(step)
        return
    result = bench_train(FLAGS.config, FLAGS.steps, FLAGS.stage_resolution, FLAGS.stage_alpha)
    for name, value in result.items():
        print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}")


def define_flags() -> None:
    """Registered only when run as a program: importing this module defines no global flags."""
    if "conv" in flags.FLAGS:  # already defined (a test may ask twice)
        return
    configs.define_config_flag("A training config: NAME[:PRESET] (e.g. wgan_gp) or a config file.")
    flags.DEFINE_integer("steps", 20, "Timed generator iterations (after one warm-up step).")
    flags.DEFINE_string(
        "features", None, "Benchmark a feature network instead: mnist_cnn or inception_v3."
    )
    flags.DEFINE_integer("num_images", 0, "Images per timed pass (0: 10,000 / 500).")
    flags.DEFINE_integer(
        "batch_size", 0, "Feature batch size (0: 500 / 50), rounded up to the devices."
    )
    flags.DEFINE_integer("image_size", 32, "inception_v3 input height = width (resized to 299).")
    flags.DEFINE_integer("repeats", 5, "Timed passes over all images (median and range printed).")
    flags.DEFINE_integer("num_devices", 0, "Devices to shard feature batches over (0: all).")
    flags.DEFINE_bool(
        "conv", False, "Time the two convolution formulations on a WGAN-GP critic step."
    )
    flags.DEFINE_bool(
        "swd",
        False,
        "Time the evaluator's SWD of --num_images (0: 4,000) random --image_size images.",
    )
    flags.DEFINE_string(
        "data", None, "Time the input stream of a dataset string instead (e.g. prepared:DIR)."
    )
    flags.DEFINE_string(
        "vs", None, "torch: time --config's step against its PyTorch twin, alternating."
    )
    flags.DEFINE_integer(
        "rounds", 5, "--vs, --choose_cpu_convolutions: alternations (median and range printed)."
    )
    flags.DEFINE_bool(
        "choose_cpu_convolutions",
        False,
        "--config: time the step under each of XLA:CPU's convolution kernels (eigen, xla, ynn), "
        "alternating --rounds, and keep the fastest for the method on this CPU.",
    )
    flags.DEFINE_string(
        "torch_python", None, "--vs: the Python that runs the twin (default: this one)."
    )
    flags.DEFINE_string(
        "twin_flags",
        "",
        "--vs: more flags for the twin script, e.g. '--fused' (the ResNet twin computing each "
        "resampling convolution as one convolution, as jaxgan's ResNets do).",
    )
    flags.DEFINE_integer(
        "stage_resolution", 0, "A progressive config: the stage timed (0: the final resolution)."
    )
    flags.DEFINE_float("stage_alpha", 0.5, "A progressive config: the stage's fade-in alpha.")
    flags.DEFINE_integer(
        "data_resolution", 0, "--data: batches' resolution (0: a prepared dataset's own, else 64)."
    )
    flags.DEFINE_string(
        "presets",
        None,
        "Time presets at their real size instead: 'paper' (every paper preset) or NAME:PRESET,...",
    )
    flags.DEFINE_float(
        "preset_max_step_s",
        PRESET_MAX_STEP_S,
        "--presets: skip the steps of a preset whose step its FLOPs project past this (0: none).",
    )
    flags.DEFINE_float(
        "available_memory_gib", 0.0, "--presets: the memory a step may take (0: what is free)."
    )
    flags.DEFINE_string(
        "rows_out", None, "--presets: also append each row to this JSONL file; --profile: the JSON."
    )
    flags.DEFINE_bool(
        "profile",
        False,
        "--config (or --features=inception_v3): where the step's (or one batch's) time goes, by "
        "XLA instruction.",
    )
    flags.DEFINE_integer("profile_top", 15, "--profile: the lines of each list.")


if __name__ == "__main__":
    define_flags()
    app.run(main)
