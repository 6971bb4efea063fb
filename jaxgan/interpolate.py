"""Latent-interpolation GIF of a progressive run's EMA generator, made as the paper's video is.

  python -m jaxgan.interpolate --workdir=runs/pggan [--step=N] [--grid=4] [--seconds=10]

TF `util_scripts.generate_interpolation_video` (Theano `interpolate_latents`): i.i.d. N(0, I)
latents, one per frame and grid cell, blurred along time with a Gaussian of σ = smoothing_seconds ·
fps frames (`scipy.ndimage.gaussian_filter`, mode 'wrap', so the walk loops), then put on the
hypersphere of radius √z_dim (the references divide by the global RMS and let G's latent pixel norm
project each vector; normalising each vector here does the same for any G). Each frame is the
generator at the checkpoint's lod, full resolution, tiled into a grid; the GIF loops forever.
Writes `<workdir>/interpolation_<step>.gif` unless --out is given.
"""

from __future__ import annotations

import os

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS


def latent_walk(
    num_frames: int, num_images: int, z_dim: int, smoothing_frames: float, seed: int
) -> np.ndarray:
    """[num_frames, num_images, z_dim] float32: a looping Gaussian-smoothed walk on the sphere √z_dim."""
    import scipy.ndimage

    z = np.random.RandomState(seed).randn(num_frames, num_images, z_dim).astype(np.float32)
    z = scipy.ndimage.gaussian_filter(z, [smoothing_frames, 0, 0], mode="wrap")
    return z * (np.sqrt(z_dim) / np.linalg.norm(z, axis=-1, keepdims=True))


def render_frames(sample, params, latents: np.ndarray, labels: np.ndarray, batch_size: int):
    """latents [F, n, z_dim] -> images [F, n, R, R, C] in [-1, 1], `batch_size` images per call.

    The last call is padded to `batch_size` so that `sample` compiles once.
    """
    frames, n, z_dim = latents.shape
    flat = latents.reshape(frames * n, z_dim)
    flat_labels = np.tile(labels, frames)
    out = []
    for begin in range(0, len(flat), batch_size):
        z = flat[begin : begin + batch_size]
        y = flat_labels[begin : begin + batch_size]
        pad = batch_size - len(z)
        if pad:
            z = np.concatenate([z, np.zeros((pad, z_dim), z.dtype)])
            y = np.concatenate([y, np.zeros((pad,), y.dtype)])
        out.append(np.asarray(sample(params, z, y))[: batch_size - pad])
    images = np.concatenate(out)
    return images.reshape(frames, n, *images.shape[1:])


def save_gif(path: str, frames: list[np.ndarray], fps: int) -> None:
    """uint8 [H, W, C] frames -> a looping GIF, written atomically."""
    from PIL import Image

    pictures = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in frames]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.gif"
    pictures[0].save(tmp, save_all=True, append_images=pictures[1:], duration=1000.0 / fps, loop=0)
    os.replace(tmp, path)


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
    """Writes the interpolation GIF of checkpoint `step` (default: latest) of `workdir`; its path."""
    import ml_collections

    from jaxgan import checkpoint, data, parallel, progressive
    from jaxgan import logging as run_logging

    ckpt = checkpoint.Checkpointer(workdir, read_only=True)
    steps = ckpt.all_steps()
    if not steps:
        raise FileNotFoundError(f"{workdir} has no checkpoints to interpolate.")
    step = steps[-1] if step is None else step
    if step not in steps:
        raise ValueError(f"No checkpoint at step {step} in {workdir}; have {steps}.")
    meta = ckpt.restore_meta(step)
    config = ml_collections.ConfigDict(meta["config"])
    if config.method != "progressive":
        raise ValueError(f"{workdir} is a {config.method!r} run, not 'progressive'.")
    source = data.open_source(
        config.data.dataset, "train", config.data.data_dir, config.data.channels or None
    )
    channels, num_classes = config.data.channels or source.channels, source.num_classes
    abstract = progressive.abstract_state(config, channels, num_classes, parallel.make_mesh(1))
    state, _ = ckpt.restore(step, abstract)
    ckpt.close()
    sample = progressive.make_eval_sampler(config, meta, channels, num_classes)

    num_frames = int(round(seconds * fps))
    n = grid * grid
    latents = latent_walk(num_frames, n, config.model.z_dim, smoothing_seconds * fps, seed)
    conditional = progressive.generator_is_conditional(config)
    labels = (np.arange(n) % num_classes if conditional else np.zeros(n)).astype(np.int32)
    images = render_frames(sample, state["ema_params"], latents, labels, batch_size)
    frames = [
        run_logging.make_grid(f, grid).repeat(zoom, axis=0).repeat(zoom, axis=1) for f in images
    ]
    path = out or os.path.join(workdir, f"interpolation_{step}.gif")
    save_gif(path, frames, fps)
    return path


def main(argv):
    del argv
    from jaxgan import logging as run_logging

    run_logging.quiet_library_logs()
    path = make_gif(
        FLAGS.workdir,
        FLAGS.step,
        FLAGS.out,
        FLAGS.grid,
        FLAGS.seconds,
        FLAGS.fps,
        FLAGS.smoothing_seconds,
        FLAGS.zoom,
        FLAGS.seed,
        FLAGS.batch_size,
    )
    print(path)


def define_flags() -> None:
    """Registered only when run as a program: importing this module defines no global flags."""
    if "smoothing_seconds" in flags.FLAGS:  # already defined (a test may ask twice)
        return
    flags.DEFINE_string("workdir", None, "A progressive run's workdir (with checkpoints/).")
    flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
    flags.DEFINE_string("out", None, "Output path (default <workdir>/interpolation_<step>.gif).")
    flags.DEFINE_integer("grid", 4, "Images per row and per column.")
    flags.DEFINE_float("seconds", 10.0, "Length of the loop.")
    flags.DEFINE_integer("fps", 25, "Frames per second (GIF delays are multiples of 10 ms).")
    flags.DEFINE_float("smoothing_seconds", 1.0, "σ of the temporal Gaussian blur, in seconds.")
    flags.DEFINE_integer("zoom", 2, "Nearest-neighbour magnification of each frame.")
    flags.DEFINE_integer("seed", 1000, "Seed of the latent walk (the references' random_seed).")
    flags.DEFINE_integer("batch_size", 64, "Images generated per call.")
    flags.mark_flags_as_required(["workdir"])


if __name__ == "__main__":
    define_flags()
    app.run(main)
