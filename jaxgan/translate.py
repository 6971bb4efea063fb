"""Applies a trained translation run (CycleGAN, NICE-GAN) to a folder of images.

  python -m jaxgan.translate --workdir=runs/cyclegan --direction=AtoB --input=photos/ --output=out/
      [--step=latest|N] [--batch_size=8]

As the reference's `test.py` with `--preprocess none`: every image is
translated at its own size, except that a side which is not a multiple of 4 is resized (bicubic) to
the nearest one, `round(side / 4) * 4` with Python's round, as `base_dataset.py::__make_power_2`
does; the output has that size. Both methods halve the size twice on the way in (CycleGAN's
generator, NICE-GAN's encoder) and double it twice on the way out, which needs multiples of 4, and
their reflection pads need a side of at least 8.

Input: the image files directly in --input (`sources.IMAGE_EXTENSIONS`; sorted by name), converted to
the run's channels (transparent images composited on white first, as `jaxgan.data.prepare` writes
its datasets) and mapped to [-1, 1] as training maps them (`data.to_float`). Output: one PNG per
input, the input's stem + `.png`, written atomically, quantised with `logging.to_uint8`.

Images of one size are translated together in batches of --batch_size (fewer when a size has fewer
images), rounded up to the device count; a short last batch is filled with copies and the extras
dropped, so each image size compiles once. Instance norm is per image, so the batch does not change
an image's translation (beyond XLA's float rounding: at most one grey level).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import numpy as np
from absl import app, flags, logging

from jaxgan.core import checkpoint, errors, parallel, paths, run_files
from jaxgan.data import sources, two_domain
from jaxgan.eval import sampling
from jaxgan.eval.translation import device_batch, translate_images
from jaxgan.methods import translation
from jaxgan.training import registry

FLAGS = flags.FLAGS

SIZE_BASE = two_domain.SIZE_BASE
MIN_SIDE = 8  # after two halvings, the residual blocks' reflection pad of 1 needs 2 pixels


# ----------------------------------------------------------------------------------------------
# Inputs: which files, at which size, as which arrays.
# ----------------------------------------------------------------------------------------------


def list_images(input_dir: str) -> list[str]:
    """The image files directly in `input_dir`, sorted by name (sub-folders are not read)."""
    if not os.path.isdir(input_dir):
        raise errors.DataError(
            f"--input={input_dir} does not exist or is not a directory: give the folder of images "
            f"to translate."
        )
    paths = sources.list_images(input_dir)
    if not paths:
        raise errors.DataError(
            f"--input={input_dir} holds no images (looked for "
            f"{', '.join(sources.IMAGE_EXTENSIONS)} files directly in it, not in sub-folders)."
        )
    return paths


def reference_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) the reference translates an image of this size at: each side to the nearest
    multiple of 4, Python's round (half to even: 18 -> 16, 22 -> 24), as `__make_power_2`."""
    rows, cols = two_domain.multiple_of_base_shape(height, width)
    return cols, rows


def read_size(path: str) -> tuple[int, int]:
    """(width, height) from the file's header (PIL decodes no pixels for this)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except Exception as e:  # PIL raises many types for a file it cannot read
        raise errors.DataError(
            f"{path} is not a readable image ({e}): remove it from --input."
        ) from None


def translation_size(path: str, width: int, height: int) -> tuple[int, int]:
    """(height, width) an image of `width`x`height` at `path` is translated at; an error naming the
    file where that is too small."""
    new_width, new_height = reference_size(width, height)
    if min(new_width, new_height) < MIN_SIDE:
        raise errors.UserError(
            f"{path} is {width}x{height} (WxH): too small to translate; the generator needs sides "
            f"of at least {MIN_SIDE} pixels after rounding to a multiple of {SIZE_BASE} (so at "
            f"least 6 before). Enlarge it or remove it from --input."
        )
    return new_height, new_width


def group_by_size(sizes: dict[str, tuple[int, int]]) -> dict[tuple[int, int], list[str]]:
    """{(height, width): paths of that size}, sizes in order of first appearance, paths in order."""
    groups: dict[tuple[int, int], list[str]] = {}
    for path, size in sizes.items():
        groups.setdefault(size, []).append(path)
    return groups


def read_image(path: str, channels: int, size: tuple[int, int]) -> np.ndarray:
    """uint8 [height, width, channels] of `path` at `size` (height, width): transparency composited
    on white, then L or RGB, then a bicubic resize where the file is not already that size (the
    reference's order: `convert('RGB')`, then `__make_power_2`)."""
    from PIL import Image

    with Image.open(path) as image:
        image = sources.opaque(image).convert("L" if channels == 1 else "RGB")
        height, width = size
        if image.size != (width, height):
            image = image.resize((width, height), Image.BICUBIC)
        array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def output_paths(paths: Sequence[str], output_dir: str) -> dict[str, str]:
    """{input path: output_dir/<stem>.png}; an error if two inputs share a stem (a.jpg, a.png)."""
    outputs: dict[str, str] = {}
    by_output: dict[str, str] = {}
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        out = os.path.join(output_dir, stem + ".png")
        if out in by_output:
            raise errors.UserError(
                f"{os.path.basename(by_output[out])} and {os.path.basename(path)} would both be "
                f"written to {out}: rename one of them."
            )
        by_output[out], outputs[path] = path, out
    return outputs


def check_output_dir(input_dir: str, output_dir: str) -> None:
    if os.path.realpath(input_dir) == os.path.realpath(output_dir):
        raise errors.UserError(
            f"--output={output_dir} is the --input folder: the translations would replace the "
            f"images (a.png -> a.png). Give another folder."
        )


# ----------------------------------------------------------------------------------------------
# The run: config, method, checkpoint.
# ----------------------------------------------------------------------------------------------


def load_translation_config(workdir: str):
    """W/config.json and the run's method, which must have a `translator`."""

    config = sampling.load_config(workdir)
    method = registry.get(config.method)
    if method.translator is None:
        raise errors.ConfigError(
            f"{workdir} is a {config.method!r} run, not a translation run (e.g. "
            f"jaxgan/configs/cyclegan.py): it generates images from latents rather than translating them. "
            f"Use jaxgan.interpolate or jaxgan.evaluate on it."
        )
    return config, method


# ----------------------------------------------------------------------------------------------
# Translating.
# ----------------------------------------------------------------------------------------------


def translate_folder(
    workdir: str,
    direction: str,
    input_dir: str,
    output_dir: str,
    step: str | int = "latest",
    batch_size: int = 8,
    progress: bool = True,
) -> list[str]:
    """Translates every image of `input_dir` with checkpoint `step` of run `workdir` in `direction`
    ('AtoB' or 'BtoA'); writes `output_dir/<stem>.png` for each; returns those paths in input order.

    Every input is checked (readable, large enough, no two with one output name) before the
    checkpoint is read, so a bad folder fails in a second, not after a restore and a compile.
    """

    if batch_size < 1:
        raise errors.ConfigError(f"--batch_size={batch_size}: expected at least 1.")
    config, method = load_translation_config(workdir)
    translation.check_direction(direction)
    paths = list_images(input_dir)
    check_output_dir(input_dir, output_dir)
    outputs = output_paths(paths, output_dir)
    original = {path: read_size(path) for path in paths}  # (width, height)
    sizes = {path: translation_size(path, *original[path]) for path in paths}  # (height, width)

    mesh = parallel.make_mesh()
    params, meta, step = checkpoint.restore_params(workdir, method.eval_params, step, mesh)
    untrained = translation.untrained_message(meta, direction, workdir)
    if untrained:  # a run imported from one released generator (jaxgan.import_weights)
        raise errors.ConfigError(untrained)
    network_config = sampling.checkpoint_config(meta, config)
    translate = method.translator(network_config, mesh)
    channels = network_config.data.channels

    resized = [p for p in paths if original[p] != sizes[p][::-1]]
    if resized:
        logging.warning(
            "Resized %d of %d images to sides that are multiples of %d (bicubic, as the "
            "reference's __make_power_2); their translations have the new size, e.g. %s.",
            len(resized), len(paths), SIZE_BASE,
            ", ".join(f"{os.path.basename(p)} {original[p][0]}x{original[p][1]} -> "
                      f"{sizes[p][1]}x{sizes[p][0]}" for p in resized[:3]),
        )  # fmt: skip

    os.makedirs(output_dir, exist_ok=True)
    bar = run_files.progress_bar(len(paths), unit="image", desc="translate") if progress else None
    try:
        for size, group in group_by_size(sizes).items():
            # One batch shape per size: at most batch_size, rounded up to the devices.
            group_batch = device_batch(batch_size, len(group), mesh)
            for start in range(0, len(group), group_batch):
                chunk = group[start : start + group_batch]  # read a batch at a time, not all
                images = np.stack([read_image(p, channels, size) for p in chunk])
                translated = translate_images(
                    translate, params, images, direction, group_batch, mesh
                )
                for path, pixels in zip(chunk, translated):
                    run_files.save_png(outputs[path], pixels)
                if bar is not None:
                    bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    print(f"translated {len(paths)} images {direction} with checkpoint {step} -> {output_dir}")
    return [outputs[p] for p in paths]


# ----------------------------------------------------------------------------------------------
# The command line.
# ----------------------------------------------------------------------------------------------


def main(argv, flag_values=FLAGS):
    del argv

    run_files.quiet_library_logs()
    paths.enable_compilation_cache()
    f = flag_values
    try:
        translate_folder(f.workdir, f.direction, f.input, f.output, f.step, f.batch_size)
    except errors.UserError as e:  # bad input: the message says what to do
        sys.exit(f"{type(e).__name__}: {e}")


def define_flags(flag_values=FLAGS) -> None:
    """Registered only when run as a program (or on a test's own FlagValues): importing this module
    defines no global flags."""
    f = flag_values
    flags.DEFINE_string("workdir", None, "A translation run's workdir.", flag_values=f)
    flags.DEFINE_string(
        "direction", "AtoB", "AtoB (G_A: domain A to B) or BtoA (G_B: B to A).", flag_values=f
    )
    flags.DEFINE_string(
        "input", None, "Folder of images to translate (not recursive).", flag_values=f
    )
    flags.DEFINE_string("output", None, "Folder for the translations (<stem>.png).", flag_values=f)
    flags.DEFINE_string("step", "latest", "Checkpoint: latest, or a saved step.", flag_values=f)
    flags.DEFINE_integer(
        "batch_size", 8, "Images per call (rounded up to the devices).", flag_values=f
    )
    flags.mark_flags_as_required(["workdir", "input", "output"], flag_values=f)


def run():
    """The `jaxgan-translate` console script."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
