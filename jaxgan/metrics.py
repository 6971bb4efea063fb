"""Metrics between two sets of images from Python, shaped like `torch_fidelity.calculate_metrics`
and `cleanfid.fid.compute_fid`:

    import jaxgan
    scores = jaxgan.metrics.compute(real, fake, metrics=("fid", "kid"))
    scores["fid"], scores["kid"], scores["kid_std"]

`real` and `fake` are uint8 arrays [N, H, W, C] (or [N, H, W]), or what `python -m jaxgan.evaluate
--real= --fake=` takes: a folder, an .npz of uint8 images, a dataset string (`mnist5k:test`,
`tfds:cifar10`, ...). The numbers are those of the command's rows (`value`, `std`, `values`), with
the same options (`jaxgan.eval.options.Options` fields as keyword arguments).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from jaxgan.core import batched
from jaxgan.eval import catalog, imagesets, runner
from jaxgan.eval.options import Options

ImagesOrSpec = np.ndarray | str


def compute(
    real: ImagesOrSpec,
    fake: ImagesOrSpec,
    metrics: Sequence[str] = ("fid",),
    labels_real: np.ndarray | None = None,
    labels_fake: np.ndarray | None = None,
    progress: bool = False,
    **options,
) -> dict[str, float]:
    """{metric: value} for each of `metrics` (`python -m jaxgan.evaluate --list_metrics`), plus
    `<metric>_std` where the metric has a spread (KID, IS) and `<metric>_<name>` for each further
    value of a row (e.g. `pr_recall`). `options`: any `Options` field (`feature_network`, `resize`,
    `num_samples`, `seed`, ...); labels: for the class-aware metrics."""
    return to_dict(rows(real, fake, metrics, labels_real, labels_fake, progress, **options))


def rows(
    real: ImagesOrSpec,
    fake: ImagesOrSpec,
    metrics: Sequence[str] = ("fid",),
    labels_real: np.ndarray | None = None,
    labels_fake: np.ndarray | None = None,
    progress: bool = False,
    **options,
) -> list[dict]:
    """The evaluator's rows (as `python -m jaxgan.evaluate --real= --fake=` prints them)."""
    unknown = set(options) - {f.name for f in dataclasses.fields(Options)}
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}: see jaxgan.eval.options.Options.")
    opts = Options(progress=progress, given=frozenset(options), **options)
    catalog.parse(metrics)  # an unknown metric fails before any image is read
    if isinstance(real, str) and isinstance(fake, str) and labels_real is labels_fake is None:
        return runner.evaluate_sets(real, fake, metrics, opts)
    real_set = _image_set("real", real, labels_real, opts.resolution, 0, opts)
    size, channels = real_set.images.shape[1], real_set.images.shape[-1]
    fake_set = _image_set("fake", fake, labels_fake, size, channels, opts)
    real_spec = real if isinstance(real, str) else ""  # picks a domain network for a dataset
    return runner.score_sets(real_set, fake_set, metrics, opts, real_spec)


def _image_set(name, images, labels, resolution, channels, options) -> imagesets.ImageSet:
    """A set of `images` (uint8 array or spec) at `resolution` x `channels` (0: as they are)."""
    limit = options.num_real if name == "real" else options.num_samples
    if isinstance(images, str):
        if labels is not None:
            raise ValueError(
                f"jaxgan.metrics: labels_{name} go with arrays; {images!r} has its own."
            )
        return imagesets.spec_set(images, "train", resolution, channels, limit, options.seed)
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    batched.check_uint8_images(images, f"jaxgan.metrics: {name}")
    wanted = (
        resolution or images.shape[1],
        resolution or images.shape[2],
        channels or images.shape[3],
    )
    if images.shape[1:] != wanted:
        raise ValueError(
            f"jaxgan.metrics: {name} images are {images.shape[1:]}, the real ones {wanted}: "
            "resize them to the same size and channels first."
        )
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"jaxgan.metrics: {len(labels)} labels for {len(images)} {name} images.")
    # The seeded order every set of the evaluator is read in (imagesets), so that an array scores
    # as the same images in an .npz file do: KID's subsets and SWD's first N pick the same images.
    order = np.random.RandomState(options.seed).permutation(len(images))[: limit or None]
    labels = None if labels is None else np.asarray(labels, np.int32)[order]
    return imagesets.ImageSet.from_arrays(name, images[order], labels)


def to_dict(metric_rows: Sequence[dict]) -> dict[str, float]:
    """{metric: value, <metric>_std, <metric>_<value name>} of rows."""
    out: dict[str, float] = {}
    for row in metric_rows:
        name = row["metric"]
        out[name] = row["value"]
        if row.get("std") is not None:
            out[f"{name}_std"] = row["std"]
        first = next(iter(row["values"]))
        out.update({f"{name}_{k}": v for k, v in row["values"].items() if k != first})
    return out
