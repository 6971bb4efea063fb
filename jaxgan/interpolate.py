"""Latent space of any run's generator: looping videos, walks between latents, vector arithmetic.

  python -m jaxgan.interpolate [video] --workdir=W [--grid=4] [--seconds=10]
  python -m jaxgan.interpolate grid --workdir=W [--count=64] [--seed=0]
  python -m jaxgan.interpolate walk --workdir=W [--pairs=3-17,5-40] [--steps=10] [--space=slerp]
  python -m jaxgan.interpolate arithmetic --workdir=W --a=3,17,22 --b=5,9,31 --c=2,8,50
  common: [--step=N (default: the latest checkpoint)] [--out=PATH] [--zoom=2]

video       PGGAN's interpolation video (TF `util_scripts.generate_interpolation_video`, Theano
            `interpolate_latents`): i.i.d. N(0, I) latents per frame and grid cell, blurred along
            time with a Gaussian of σ = smoothing_seconds · fps frames (`mode='wrap'`: the walk
            loops), then put on the sphere of radius √z_dim. A looping GIF,
            `W/interpolation_<step>.gif`.
grid        `--count` samples of latents drawn from `--seed`, each tile numbered: pick the indices
            that `walk` and `arithmetic` take from it. `W/latents_<step>_seed<seed>.png`.
walk        DCGAN §6.1 (Fig. 4): from latent i to latent j of the grid (`--pairs=i-j,...`; default:
            8 pairs of consecutive indices) in `--steps` images, along the great circle (`slerp`,
            White 2016: a Gaussian latent's norm stays typical) or the straight line (`lerp`, the
            paper's). A PNG, one walk per row, and a GIF that runs each walk forward and back.
            `W/walk_<step>.png`, `.gif`.
arithmetic  DCGAN §6.3 (Fig. 7): a concept is the mean of the latents of k grid samples (the
            paper: 3); the result is mean(a) - mean(b) + mean(c). The figure shows each concept's
            samples and the image of its mean, then the result's image in the centre of a 3x3 grid
            whose other 8 add U(-0.25, 0.25) noise to it, as the paper's. `W/arithmetic_<step>.png`.

Every image is a function of its latent alone: a generator with BatchNorm (DCGAN's, SNGAN's)
normalises with statistics frozen from `STATISTICS_LATENTS` latents of seed `STATISTICS_SEED`
(`layers.batchnorm_statistics`) instead of its batch's, so a walk's endpoints are the grid's
images of those latents. Class-conditional generators draw grid tile i for class i % K; a walk
keeps its start's class, the arithmetic result takes c's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

import numpy as np
from absl import app, flags

from jaxgan.core import errors, parallel, paths, run_files
from jaxgan.eval import sampling
from jaxgan.methods import gan
from jaxgan.models import layers

FLAGS = flags.FLAGS

COMMANDS = ("video", "grid", "walk", "arithmetic")
STATISTICS_LATENTS = 512
STATISTICS_SEED = 2**31 - 1  # not a seed a user's grid is likely to use
ARITHMETIC_NOISE = 0.25  # DCGAN Fig. 7: uniform noise of this scale around the result


# ----------------------------------------------------------------------------------------------
# Latents.
# ----------------------------------------------------------------------------------------------


def latent_walk(
    num_frames: int, num_images: int, z_dim: int, smoothing_frames: float, seed: int
) -> np.ndarray:
    """[num_frames, num_images, z_dim] float32: a looping Gaussian-smoothed walk on the sphere √z_dim."""
    import scipy.ndimage

    z = np.random.RandomState(seed).randn(num_frames, num_images, z_dim).astype(np.float32)
    z = scipy.ndimage.gaussian_filter(z, [smoothing_frames, 0, 0], mode="wrap")
    return z * (np.sqrt(z_dim) / np.linalg.norm(z, axis=-1, keepdims=True))


def interpolate_latents(start: np.ndarray, end: np.ndarray, steps: int, space: str) -> np.ndarray:
    """[steps, z_dim]: from `start` to `end` inclusive. 'lerp': the straight line; 'slerp': the
    great circle, the norm interpolated linearly (exactly the endpoints at t = 0 and 1)."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    if space == "lerp":
        return ((1 - t) * start + t * end).astype(np.float32)
    if space != "slerp":
        raise ValueError(f"space={space!r}: expected 'slerp' or 'lerp'.")
    norms = np.linalg.norm(start), np.linalg.norm(end)
    u, v = start / norms[0], end / norms[1]
    omega = np.arccos(np.clip(u @ v, -1.0, 1.0))
    if omega < 1e-6:  # (nearly) parallel: the circle is the line
        direction = (1 - t) * u + t * v
    else:
        direction = (np.sin((1 - t) * omega) * u + np.sin(t * omega) * v) / np.sin(omega)
    return (((1 - t) * norms[0] + t * norms[1]) * direction).astype(np.float32)


def concept_arithmetic(z: np.ndarray, a: Sequence[int], b: Sequence[int], c: Sequence[int]):
    """mean(z[a]) - mean(z[b]) + mean(z[c]) and the three means, each [z_dim]."""
    means = [np.mean(z[list(indices)], axis=0) for indices in (a, b, c)]
    return means[0] - means[1] + means[2], means


# ----------------------------------------------------------------------------------------------
# A checkpoint's generator.
# ----------------------------------------------------------------------------------------------


class CheckpointGenerator:
    """The evaluated generator of one checkpoint of any method (`registry.Method.sampler`):
    `generator(z [N, z_dim], labels [N]) -> float images [N, R, R, C]` in [-1, 1], each a function
    of its own latent (BatchNorm statistics frozen, see the module docstring)."""

    def __init__(self, workdir: str, step: int | None = None, batch_size: int = 64):

        loaded = sampling.load_generator(workdir, step, parallel.make_mesh(1))
        self.config, self.params, self.step = loaded.config, loaded.params, loaded.step
        self.num_classes, self._sample = loaded.num_classes, loaded.sample_fn
        self.conditional = sampling.generator_is_conditional(self.config)
        self.z_dim, self.batch_size = self.config.model.z_dim, batch_size
        self._frozen = self._record_statistics()

    def latents(self, n: int, seed: int) -> np.ndarray:
        """[n, z_dim]: the run's latent distribution drawn from `seed` (`gan.sample_latents`)."""
        import jax

        return np.asarray(gan.sample_latents(self.config, jax.random.key(seed), n))

    def labels(self, indices) -> np.ndarray:
        """Grid tile i's class, i % K, for a conditional generator; zeros otherwise."""
        indices = np.asarray(indices, np.int32)
        return indices % self.num_classes if self.conditional else np.zeros_like(indices)

    def _eager_batchnorm(self, **statistics):
        """A context in which the sampler runs eagerly with `layers.batchnorm_statistics(
        **statistics)` intercepting its BatchNorm layers: the registry's sampler is already jitted,
        and a compiled function would not see the interceptor (nor could traced statistics leave it)."""
        import flax.linen as nn
        import jax

        scope = contextlib.ExitStack()
        scope.enter_context(jax.disable_jit())
        scope.enter_context(nn.intercept_methods(layers.batchnorm_statistics(**statistics)))
        return scope

    def _record_statistics(self) -> dict:
        """Every BatchNorm's statistics on the reference latents ({} for a generator without)."""
        import jax

        z = self.latents(STATISTICS_LATENTS, STATISTICS_SEED)
        recorded: dict = {}
        with self._eager_batchnorm(recorded=recorded):
            self._sample(self.params, z, self.labels(np.arange(STATISTICS_LATENTS)))
        return jax.device_get(recorded)

    def __call__(self, z: np.ndarray, labels: np.ndarray) -> np.ndarray:
        z, labels = np.asarray(z, np.float32), np.asarray(labels, np.int32)
        out = []
        for begin in range(0, len(z), self.batch_size):
            batch_z, batch_y = (
                z[begin : begin + self.batch_size],
                labels[begin : begin + self.batch_size],
            )
            pad = self.batch_size - len(batch_z)  # full batches: the jitted path compiles once
            batch_z = np.concatenate([batch_z, np.zeros((pad, self.z_dim), np.float32)])
            batch_y = np.concatenate([batch_y, np.zeros((pad,), np.int32)])
            scope = (
                self._eager_batchnorm(frozen=self._frozen)
                if self._frozen
                else contextlib.nullcontext()  # no BatchNorm: the jitted sampler as it is
            )
            with scope:
                images = self._sample(self.params, batch_z, batch_y)
            out.append(np.asarray(images, np.float32)[: self.batch_size - pad])
        return np.concatenate(out)


# ----------------------------------------------------------------------------------------------
# Pictures.
# ----------------------------------------------------------------------------------------------


def save_gif(path: str, frames: list[np.ndarray], fps: int) -> None:
    """uint8 [H, W, C] frames -> a looping GIF, written atomically."""
    from PIL import Image

    pictures = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in frames]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    run_files.atomic_write(
        path,
        lambda tmp: pictures[0].save(
            tmp, save_all=True, append_images=pictures[1:], duration=1000.0 / fps, loop=0
        ),
        suffix=".gif",
    )


def _zoom(pixels: np.ndarray, zoom: int) -> np.ndarray:
    return pixels.repeat(zoom, axis=0).repeat(zoom, axis=1)


def _number_tiles(pixels: np.ndarray, count: int, columns: int, tile: int, padding: int = 2):
    """Writes each tile's index in its top-left corner (white on a black box), RGB uint8."""
    from PIL import Image, ImageDraw

    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).convert("RGB")
    draw = ImageDraw.Draw(picture)
    for i in range(count):
        row, col = divmod(i, columns)
        x, y = padding + col * (tile + padding), padding + row * (tile + padding)
        box = draw.textbbox((x + 1, y), str(i))
        draw.rectangle(box, fill=(0, 0, 0))
        draw.text((x + 1, y), str(i), fill=(255, 255, 255))
    return np.asarray(picture)


def _output(workdir: str, out: str | None, name: str) -> str:
    return out or os.path.join(workdir, name)


def make_gif(
    workdir: str,
    step: int | None = None,
    out: str | None = None,
    grid: int = 4,
    seconds: float = 10.0,
    fps: int = 25,
    smoothing_seconds: float = 1.0,
    zoom: int = 2,
    seed: int = 1000,
    batch_size: int = 64,
) -> str:
    """`video`: the looping interpolation GIF of checkpoint `step` (default: latest); its path."""

    generator = CheckpointGenerator(workdir, step, batch_size)
    num_frames, n = int(round(seconds * fps)), grid * grid
    latents = latent_walk(num_frames, n, generator.z_dim, smoothing_seconds * fps, seed)
    labels = np.tile(generator.labels(np.arange(n)), num_frames)
    images = generator(latents.reshape(num_frames * n, -1), labels)
    images = images.reshape(num_frames, n, *images.shape[1:])
    frames = [_zoom(run_files.make_grid(f, grid), zoom) for f in images]
    path = _output(workdir, out, f"interpolation_{generator.step}.gif")
    save_gif(path, frames, fps)
    return path


def make_grid_picture(
    workdir: str, step: int | None = None, out: str | None = None, count: int = 64,
    seed: int = 0, zoom: int = 2, batch_size: int = 64,
) -> str:  # fmt: skip
    """`grid`: `count` numbered samples of latents from `seed`; its path."""

    generator = CheckpointGenerator(workdir, step, batch_size)
    images = generator(generator.latents(count, seed), generator.labels(np.arange(count)))
    columns = int(np.ceil(np.sqrt(count)))
    resolution = images.shape[1] * zoom
    pixels = _zoom(run_files.make_grid(images, columns), zoom)
    pixels = _number_tiles(pixels, count, columns, resolution, 2 * zoom)
    path = _output(workdir, out, f"latents_{generator.step}_seed{seed}.png")
    run_files.save_png(path, pixels)
    return path


def _check_indices(indices: Sequence[int], count: int, flag: str) -> None:

    bad = [i for i in indices if not 0 <= i < count]
    if not indices or bad:
        raise errors.ConfigError(
            f"--{flag}={','.join(map(str, indices))}: give grid indices from 0 to {count - 1} "
            f"(the numbers `python -m jaxgan.interpolate grid --count={count}` draws)."
        )


def make_walk(
    workdir: str, pairs: Sequence[tuple[int, int]] | None = None, step: int | None = None,
    out: str | None = None, steps: int = 10, space: str = "slerp", seed: int = 0,
    count: int = 64, zoom: int = 2, fps: int = 10, batch_size: int = 64,
) -> tuple[str, str]:  # fmt: skip
    """`walk`: the PNG (one walk per row) and the GIF (all walks forward and back); their paths."""

    pairs = list(pairs or [(2 * r, 2 * r + 1) for r in range(8)])
    _check_indices([i for pair in pairs for i in pair], count, "pairs")
    generator = CheckpointGenerator(workdir, step, batch_size)
    z = generator.latents(count, seed)
    walks = np.concatenate([interpolate_latents(z[i], z[j], steps, space) for i, j in pairs])
    labels = np.repeat(generator.labels([i for i, _ in pairs]), steps)
    images = generator(walks, labels)
    png = _output(workdir, out, f"walk_{generator.step}.png")
    run_files.save_png(png, _zoom(run_files.make_grid(images, steps), zoom))
    by_walk = images.reshape(len(pairs), steps, *images.shape[1:])
    order = list(range(steps)) + list(range(steps - 2, 0, -1))  # forward, then back: a loop
    columns = int(np.ceil(np.sqrt(len(pairs))))
    frames = [_zoom(run_files.make_grid(by_walk[:, t], columns), zoom) for t in order]
    gif = os.path.splitext(png)[0] + ".gif"
    save_gif(gif, frames, fps)
    return png, gif


def _sign(symbol: str, height: int, width: int, channels: int) -> np.ndarray:
    """A white uint8 [height, width, channels] spacer with '-', '+' or '=' drawn at its middle."""
    spacer = np.full((height, width, channels), 255, np.uint8)
    arm, mid, centre = max(width // 3, 1), height // 2, width // 2
    if symbol in "-+":
        spacer[mid, centre - arm : centre + arm + 1] = 0
    if symbol == "+":
        spacer[mid - arm : mid + arm + 1, centre] = 0
    if symbol == "=":
        spacer[[mid - 2, mid + 2], centre - arm : centre + arm + 1] = 0
    return spacer


def arithmetic_figure(concepts: list[np.ndarray], results: np.ndarray, gap: int = 12) -> np.ndarray:
    """DCGAN Fig. 7 as one uint8 picture: columns a - b + c = results. concepts: 3 arrays
    [k + 1, R, R, C] (the k samples, then the image of their mean); results [9, R, R, C] (the
    exact result 5th) as a 3x3 grid."""

    columns = [run_files.make_grid(c, 1) for c in concepts]
    block = run_files.make_grid(results, 3)
    height, channels = max(max(c.shape[0] for c in columns), block.shape[0]), block.shape[2]
    pad = lambda p: np.pad(  # noqa: E731
        p, ((0, height - p.shape[0]), (0, 0), (0, 0)), constant_values=255
    )
    pieces = [pad(columns[0])]
    for symbol, piece in zip("-+=", [*columns[1:], block]):
        pieces += [_sign(symbol, height, gap, channels), pad(piece)]
    return np.concatenate(pieces, axis=1)


def make_arithmetic(
    workdir: str, a: Sequence[int], b: Sequence[int], c: Sequence[int], step: int | None = None,
    out: str | None = None, seed: int = 0, count: int = 64, zoom: int = 2, noise_seed: int = 0,
    batch_size: int = 64,
) -> str:  # fmt: skip
    """`arithmetic`: mean(a) - mean(b) + mean(c) of grid latents; the figure's path."""

    for name, indices in (("a", a), ("b", b), ("c", c)):
        _check_indices(indices, count, name)
    generator = CheckpointGenerator(workdir, step, batch_size)
    z = generator.latents(count, seed)
    result, means = concept_arithmetic(z, a, b, c)
    noise = np.random.RandomState(noise_seed).uniform(
        -ARITHMETIC_NOISE, ARITHMETIC_NOISE, (8, z.shape[1])
    )
    variants = np.concatenate([result + noise[:4], result[None], result + noise[4:]]).astype(
        np.float32
    )
    concept_latents = np.concatenate(
        [np.concatenate([z[list(ix)], m[None]]) for ix, m in zip((a, b, c), means)]
    )
    concept_labels = np.concatenate([generator.labels([*ix, ix[0]]) for ix in (a, b, c)])
    images = generator(
        np.concatenate([concept_latents, variants]),
        np.concatenate([concept_labels, np.repeat(generator.labels([c[0]]), 9)]),
    )
    sizes = np.cumsum([len(a) + 1, len(b) + 1, len(c) + 1])
    concepts = np.split(images[: sizes[-1]], sizes[:-1])
    picture = arithmetic_figure(concepts, images[sizes[-1] :])
    path = _output(workdir, out, f"arithmetic_{generator.step}.png")
    run_files.save_png(path, _zoom(picture, zoom))
    return path


# ----------------------------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------------------------


def _indices(values: Sequence[str], flag: str) -> list[int]:

    try:
        return [int(v) for v in values]
    except ValueError:
        raise errors.ConfigError(
            f"--{flag}={','.join(values)}: expected grid indices like 3,17,22."
        ) from None


def _pairs(values: Sequence[str]) -> list[tuple[int, int]]:

    pairs = []
    for value in values:
        try:
            i, j = (int(v) for v in value.split("-"))
        except ValueError:
            raise errors.ConfigError(
                f"--pairs has {value!r}: expected START-END, e.g. 3-17."
            ) from None
        pairs.append((i, j))
    return pairs


def main(argv):
    import sys

    command = argv[1] if len(argv) > 1 else "video"
    if len(argv) > 2 or command not in COMMANDS:
        raise app.UsageError(
            f"Usage: python -m jaxgan.interpolate [{'|'.join(COMMANDS)}] --workdir=W"
        )
    run_files.quiet_library_logs()
    paths.enable_compilation_cache()
    common = dict(step=FLAGS.step, out=FLAGS.out, zoom=FLAGS.zoom, batch_size=FLAGS.batch_size)
    grid_seed = FLAGS.seed if FLAGS.seed is not None else 0
    try:
        if command == "video":
            seed = FLAGS.seed if FLAGS.seed is not None else 1000  # the references' random_seed
            files = [
                make_gif(
                    FLAGS.workdir, grid=FLAGS.grid, seconds=FLAGS.seconds, fps=FLAGS.fps,
                    smoothing_seconds=FLAGS.smoothing_seconds, seed=seed, **common,
                )
            ]  # fmt: skip
        elif command == "grid":
            files = [make_grid_picture(FLAGS.workdir, count=FLAGS.count, seed=grid_seed, **common)]
        elif command == "walk":
            files = make_walk(
                FLAGS.workdir, _pairs(FLAGS.pairs), steps=FLAGS.steps, space=FLAGS.space,
                seed=grid_seed, count=FLAGS.count, fps=FLAGS.fps, **common,
            )  # fmt: skip
        else:
            files = [
                make_arithmetic(
                    FLAGS.workdir, _indices(FLAGS.a, "a"), _indices(FLAGS.b, "b"),
                    _indices(FLAGS.c, "c"), seed=grid_seed, count=FLAGS.count, **common,
                )
            ]  # fmt: skip
    except (errors.UserError, FileNotFoundError) as e:
        sys.exit(f"{type(e).__name__}: {e}")
    for path in files:
        print(path)


def define_flags() -> None:
    """Registered only when run as a program: importing this module defines no global flags."""
    if "smoothing_seconds" in flags.FLAGS:  # already defined (a test may ask twice)
        return
    flags.DEFINE_string("workdir", None, "A training run's workdir (with checkpoints/).")
    flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
    flags.DEFINE_string("out", None, "Output path (default: in the workdir, named by the command).")
    flags.DEFINE_integer("zoom", 2, "Nearest-neighbour magnification of each picture.")
    flags.DEFINE_integer(
        "seed", None, "Latent seed (video: 1000, the references'; grid/walk/arithmetic: 0)."
    )
    flags.DEFINE_integer("batch_size", 64, "Images generated per call.")
    flags.DEFINE_integer("grid", 4, "video: images per row and per column.")
    flags.DEFINE_float("seconds", 10.0, "video: length of the loop.")
    flags.DEFINE_integer("fps", 25, "video, walk: frames per second (GIF delays: 10 ms steps).")
    flags.DEFINE_float(
        "smoothing_seconds", 1.0, "video: σ of the temporal Gaussian blur, in seconds."
    )
    flags.DEFINE_integer("count", 64, "grid, walk, arithmetic: latents in the numbered grid.")
    flags.DEFINE_list(
        "pairs", [], "walk: START-END grid indices per row (default 0-1,2-3,...,14-15)."
    )
    flags.DEFINE_integer("steps", 10, "walk: images per walk, endpoints included.")
    flags.DEFINE_enum("space", "slerp", ["slerp", "lerp"], "walk: great circle or straight line.")
    flags.DEFINE_list("a", [], "arithmetic: grid indices of concept a (the paper: 3).")
    flags.DEFINE_list("b", [], "arithmetic: grid indices of concept b, subtracted.")
    flags.DEFINE_list("c", [], "arithmetic: grid indices of concept c, added.")
    flags.mark_flags_as_required(["workdir"])


if __name__ == "__main__":
    define_flags()
    app.run(main)
