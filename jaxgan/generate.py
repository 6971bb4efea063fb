"""Writes N images from a run's checkpoint (StyleGAN's `gen_images.py`, PGGAN's
`generate_fake_images`), for every latent method (DCGAN, WGAN-GP, AC-GAN, SNGAN, Progressive GAN).

  python -m jaxgan.generate --workdir=W --num=N --out=DIR|FILE.npz [--step=latest|S] [--seed=0]
      [--class=C] [--truncation=PSI] [--batch_size=200]

The images are drawn as the evaluator draws its fakes (`eval/sampling.py`; the same images for the
same seed, batch size and device count): the checkpoint's evaluated generator (the EMA one), in full
batches sharded over the devices. Image i's latent is a pure function of (seed, i): latent i is row i % 1000 of the block
`gan.sample_latents(config, fold_in(key(seed), i // 1000), 1000)`, so `--num=10` writes the first 10
latents of `--num=1000`. A generator whose BatchNorm normalises with its batch's statistics
(`eval_batchnorm='batch'`: DCGAN, WGAN-GP) makes image i depend on the other latents of its batch
too, so the batches are always `--batch_size` latents (rounded up to the devices), never cut to
`--num`: with the same --batch_size, the first k images of a larger --num are those of --num=k.

Labels: class-balanced, image i of class i % K, as the evaluator draws them; `--class=C` gives every
image class C (conditional generators only). `--truncation=PSI` is BigGAN's truncation trick (§3.1):
each latent entry is redrawn until |z| <= PSI, i.e. the block comes from
`jax.random.truncated_normal(key, -PSI, PSI)` with the same block keys (a truncated latent i is not
the untruncated latent i clipped). It is defined for Gaussian latents only: a run trained with
`--config.model.z_dist=uniform` (the DCGAN paper's U(-1, 1)) is refused. 0 or unset: no truncation.

Output: `--out=DIR` writes `DIR/seed<seed:04d>-<i:06d>.png` (atomically) and `DIR/generate.json`,
which records the checkpoint, seed, count, class, truncation, batch size and the latent rule; a
folder holding another setting's images is refused rather than mixed. `--out=FILE.npz` writes uint8
`images` [N, H, W, C] and, for a conditional generator, `labels` [N]: the file
`python -m jaxgan.evaluate --fake=FILE.npz` reads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterator

import jax
import numpy as np
from absl import app, flags

from jaxgan.core import batched, errors, paths, run_files, store
from jaxgan.eval import sampling
from jaxgan.methods import gan

FLAGS = flags.FLAGS

DEFAULT_BATCH_SIZE = 200  # jaxgan.evaluate's --batch_size: the same images as its fakes
SETTINGS_FILE = "generate.json"
PNG_NAME = "seed{seed:04d}-{index:06d}.png"
LATENT_RULE = (
    f"latent i = row i % {sampling.LATENT_BLOCK} of the block drawn from "
    f"jax.random.fold_in(jax.random.key(seed), i // {sampling.LATENT_BLOCK}) "
    f"({sampling.LATENT_BLOCK} x z_dim; truncated normal in (-truncation, truncation) when "
    f"truncation > 0); images sampled in batches of batch_size consecutive latents"
)


def png_name(seed: int, index: int) -> str:
    return PNG_NAME.format(seed=seed, index=index)


# ----------------------------------------------------------------------------------------------
# Checking the request: before any checkpoint is read.
# ----------------------------------------------------------------------------------------------


def output_kind(out: str) -> str:
    """'npz' for a .npz file, 'folder' for a folder (an existing one, or a path without an
    extension); an error for anything else."""
    extension = os.path.splitext(out.rstrip(os.sep))[1].lower()
    if extension == ".npz" and not os.path.isdir(out):
        return "npz"
    if os.path.isdir(out) or (not extension and not os.path.exists(out)):
        return "folder"
    raise errors.UserError(
        f"--out={out}: expected a folder (one PNG per image) or a .npz file (all images in one "
        f"array); {'it is an existing file' if not extension else repr(extension)} is neither."
    )


def check_counts(num: int, batch_size: int, truncation: float) -> None:
    if num < 1:
        raise errors.ConfigError(
            f"--num={num}: expected the number of images to write, at least 1."
        )
    if batch_size < 1:
        raise errors.ConfigError(f"--batch_size={batch_size}: expected at least 1.")
    if not truncation >= 0:  # also NaN
        raise errors.ConfigError(
            f"--truncation={truncation}: expected PSI > 0 (latent entries kept within [-PSI, PSI]) "
            f"or 0 for none."
        )


# ----------------------------------------------------------------------------------------------
# Latents and labels: what the run's config allows.
# ----------------------------------------------------------------------------------------------


def latent_draw(config, truncation: float):
    """`draw(config, key, n) -> [n, z_dim]` for `sampling.generation_inputs`: the run's
    distribution, or its truncation to [-truncation, truncation] (Gaussian latents only)."""
    if not truncation:
        return gan.sample_latents
    if config.model.z_dist != "normal":
        raise errors.ConfigError(
            f"--truncation={truncation}: this run draws its latents from "
            f"config.model.z_dist={config.model.z_dist!r} (U(-1, 1) for 'uniform'), and the "
            f"truncation trick resamples Gaussian latents; leave --truncation out for this run."
        )

    def truncated(config, key, n):
        return jax.random.truncated_normal(key, -truncation, truncation, (n, config.model.z_dim))

    return truncated


def check_class(class_: int | None, conditional: bool, num_classes: int, workdir: str) -> None:
    if class_ is None:
        return
    if not conditional:
        raise errors.ConfigError(
            f"--class={class_}: {workdir}'s generator is not class-conditional (it takes no "
            f"labels); leave --class out."
        )
    if not 0 <= class_ < num_classes:
        raise errors.ConfigError(
            f"--class={class_}: expected 0..{num_classes - 1}, one of the run's {num_classes} "
            f"classes."
        )


# ----------------------------------------------------------------------------------------------
# Generating.
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Generation:
    """What will be drawn: `num` images of `generator` from latents `z` [n_total, z_dim] and
    labels [n_total], n_total a multiple of `batch_size` (the last batch's extra images are dropped)."""

    generator: sampling.Generator
    z: np.ndarray
    labels: np.ndarray
    num: int
    batch_size: int
    conditional: bool
    settings: dict

    def batches(self, progress: bool = False) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(index of the first image, uint8 images [b, H, W, C], labels [b]) per batch, in order."""
        g = self.generator
        bar = run_files.progress_bar(self.num, unit="image", desc="generate") if progress else None
        try:
            for start in range(0, self.num, self.batch_size):
                end = start + self.batch_size
                z, labels = self.z[start:end], self.labels[start:end]
                kept = min(end, self.num) - start
                images = sampling.generate(
                    g.sample_fn, g.params, z, labels, kept, self.batch_size, g.mesh
                )
                if bar is not None:
                    bar.update(kept)
                yield start, images, labels[:kept]
        finally:
            if bar is not None:
                bar.close()


def prepare(
    workdir: str,
    num: int,
    seed: int = 0,
    step: str | int | None = "latest",
    class_: int | None = None,
    truncation: float = 0.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Generation:
    """The generator of checkpoint `step` of run `workdir` and the inputs of its `num` images."""
    check_counts(num, batch_size, truncation)
    generator = sampling.load_generator(workdir, "latest" if step is None else step)
    config = generator.config
    conditional = sampling.generator_is_conditional(config)
    check_class(class_, conditional, generator.num_classes, workdir)
    draw = latent_draw(config, truncation)
    batch_size = batched.round_up_to_devices(batch_size, generator.mesh)
    z, labels = sampling.generation_inputs(
        config, generator.num_classes, num, batch_size, seed, draw_latents=draw
    )
    if class_ is not None:
        labels = np.full_like(labels, class_)
    settings = {
        "workdir": store.workdir_path(workdir),
        "step": generator.step,
        "seed": seed,
        "num": num,
        "class": class_,
        "labels": (
            "none (unconditional)"
            if not conditional
            else f"class {class_}" if class_ is not None
            else f"class-balanced: image i has class i % {generator.num_classes}"
        ),
        "truncation": float(truncation),
        "batch_size": batch_size,
        "eval_batchnorm": config.get("eval_batchnorm", "batch"),
        "latent_rule": LATENT_RULE,
        "files": PNG_NAME.replace("{seed:04d}", f"{seed:04d}").replace("index", "i"),
    }  # fmt: skip
    return Generation(generator, z, labels, num, batch_size, conditional, settings)


def generate_images(
    workdir: str,
    num: int,
    seed: int = 0,
    step: str | int | None = "latest",
    class_: int | None = None,
    truncation: float = 0.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(uint8 images [num, H, W, C], labels [num] or None for an unconditional generator): what
    `python -m jaxgan.generate` writes with these arguments (see the module docstring)."""
    generation = prepare(workdir, num, seed, step, class_, truncation, batch_size)
    parts = list(generation.batches(progress))
    images = np.concatenate([images for _, images, _ in parts])
    labels = np.concatenate([labels for _, _, labels in parts])
    return images, labels if generation.conditional else None


# ----------------------------------------------------------------------------------------------
# Writing.
# ----------------------------------------------------------------------------------------------


def check_folder(out: str, settings: dict) -> None:
    """A folder that already holds another setting's images (its generate.json differs in
    anything but the count) is refused: mixed with these, no file's latent could be recovered."""
    path = os.path.join(out, SETTINGS_FILE)
    if not store.exists(path):
        return
    try:
        previous = json.loads(store.read_text(path))
    except ValueError:  # torn or edited by hand: its images cannot be told apart from ours
        previous = {}
    differs = sorted(
        k for k in settings if k != "num" and previous.get(k) != json.loads(json.dumps(settings[k]))
    )
    if differs:
        raise errors.UserError(
            f"--out={out} holds images generated with other settings ({', '.join(differs)} differ "
            f"in its {SETTINGS_FILE}): give an empty folder, or delete that one."
        )


def write_folder(generation: Generation, out: str, progress: bool = True) -> list[str]:
    """`out/seed<seed>-<i>.png` per image and `out/generate.json`; returns the PNG paths."""
    check_folder(out, generation.settings)
    store.makedirs(out)
    seed = generation.settings["seed"]
    written = []
    for start, images, _ in generation.batches(progress):
        for i, pixels in enumerate(images, start):
            written.append(os.path.join(out, png_name(seed, i)))
            run_files.save_png(written[-1], pixels)
    run_files.write_json(os.path.join(out, SETTINGS_FILE), generation.settings)
    return written


def write_npz(generation: Generation, out: str, progress: bool = True) -> None:
    """uint8 `images` [N, H, W, C] (+ `labels` [N] when conditional), written atomically."""
    parts = list(generation.batches(progress))
    arrays = {"images": np.concatenate([images for _, images, _ in parts])}
    if generation.conditional:
        arrays["labels"] = np.concatenate([labels for _, _, labels in parts]).astype(np.int32)
    store.makedirs(os.path.dirname(store.workdir_path(out)))
    store.write_atomic(out, store.written_bytes(lambda f: np.savez(f, **arrays)), suffix=".npz")


def generate_to(
    workdir: str,
    out: str,
    num: int,
    seed: int = 0,
    step: str | int | None = "latest",
    class_: int | None = None,
    truncation: float = 0.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> Generation:
    """Writes `num` images to `out` (a folder of PNGs or a .npz file); returns what was drawn."""
    kind = output_kind(out)  # before the checkpoint is read: a bad --out fails at once
    generation = prepare(workdir, num, seed, step, class_, truncation, batch_size)
    if kind == "npz":
        write_npz(generation, out, progress)
    else:
        write_folder(generation, out, progress)
    print(f"wrote {num} images of checkpoint {generation.generator.step} (seed {seed}) -> {out}")
    return generation


# ----------------------------------------------------------------------------------------------
# The command line.
# ----------------------------------------------------------------------------------------------


def main(argv, flag_values=FLAGS):
    del argv

    run_files.quiet_library_logs()
    paths.enable_compilation_cache()
    f = flag_values
    try:
        generate_to(
            f.workdir,
            f.out,
            f.num,
            seed=f.seed,
            step=f.step,
            class_=f["class"].value,
            truncation=f.truncation,
            batch_size=f.batch_size,
        )
    except (errors.UserError, FileNotFoundError) as e:  # bad input: the message says what to do
        sys.exit(f"{type(e).__name__}: {e}")


def define_flags(flag_values=FLAGS) -> None:
    """Registered only when run as a program (or on a test's own FlagValues): importing this module
    defines no global flags."""
    f = flag_values
    flags.DEFINE_string("workdir", None, "A training run's workdir.", flag_values=f)
    flags.DEFINE_string("step", "latest", "Checkpoint: latest, or a saved step.", flag_values=f)
    flags.DEFINE_integer("num", None, "Number of images to write.", flag_values=f)
    flags.DEFINE_string(
        "out", None, "A folder (one PNG per image + generate.json) or FILE.npz.", flag_values=f
    )
    flags.DEFINE_integer(
        "seed", 0, "Seed of the latents (latent i depends on seed and i).", flag_values=f
    )
    flags.DEFINE_integer(
        "class", None, "Conditional generators: every image of this class (default: balanced).",
        flag_values=f,
    )  # fmt: skip
    flags.DEFINE_float(
        "truncation", 0.0, "Truncation trick: latent entries within [-PSI, PSI] (0: off).",
        flag_values=f,
    )  # fmt: skip
    flags.DEFINE_integer(
        "batch_size", DEFAULT_BATCH_SIZE,
        "Latents per generator call (rounded up to the devices); batch-statistics BatchNorm makes "
        "images depend on it.",
        flag_values=f,
    )  # fmt: skip
    flags.mark_flags_as_required(["workdir", "num", "out"], flag_values=f)


def run():
    """The `jaxgan-generate` console script."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
