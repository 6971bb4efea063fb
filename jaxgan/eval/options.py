"""The evaluator's settings: one dataclass, the CLI flags of the same names (`jaxgan.evaluate`).

Defaults follow the papers each metric is named after (the sample counts are the metric's own, in
`eval/registry.py`); a number computed with other settings says so in its row.
"""

from __future__ import annotations

import dataclasses
import os

from absl import flags

from jaxgan.core import paths
from jaxgan.eval import features

FLAGS = flags.FLAGS

MAX_DEFAULT_REAL = 50_000  # the reference set: the whole split, as TTUR's statistics, at most this
RESIZE_MODES = ("legacy", "clean")
DEFAULT_METRICS = ("fid", "kid", "is", "swd", "ms_ssim", "pr")  # a GAN run's; eval/runner.job_for


@dataclasses.dataclass
class Options:
    """Everything but the inputs. `num_samples=0` gives every metric its paper's count of fakes."""

    num_samples: int = 0
    num_real: int = 0
    real_split: str = "train"
    baseline_split: str = "test"
    baseline: bool = True
    feature_network: str = "auto"
    inception_weights: str | None = None
    resize: str = "legacy"
    seed: int = 0
    batch_size: int = 200
    feature_batch_size: int = 0
    cache_dir: str | None = None
    swd_preset: str = "pggan"
    ms_ssim_pairs: int = 10_000
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    pr_k: int = 3
    resolution: int = 0
    classifier_recipe: str = "auto"
    classifier_steps: int = 0
    classifier_seed: int = 0
    iw_steps: int = 2000
    iw_width: int = 32
    iw_batch_size: int = 64
    modes_images: int = 25_600
    modes_evals: int = 10
    progress: bool = True
    save_stats: str | None = None  # write the reals' FID statistics here (eval/fid_stats.py)
    # The fields the user set (`jaxgan.evaluate`'s flags given): a job may replace the defaults of
    # the others with its protocol's (a translation run's KID subsets are NICE-GAN's 50).
    given: frozenset[str] = frozenset()


def default_cache_dir() -> str:
    return os.path.join(paths.cache_dir(), "eval")


def from_flags() -> Options:
    """The Options of the flags `define_flags` registered; `given` records which were set."""
    fields = [f.name for f in dataclasses.fields(Options) if f.name in FLAGS]
    given = frozenset(name for name in fields if FLAGS[name].present)
    return Options(**{name: getattr(FLAGS, name) for name in fields}, given=given)


def define_flags() -> None:
    """The evaluator's flags (`jaxgan.evaluate`, `jaxgan.experiments`); registered only when a
    command runs: importing this module defines no global flags."""
    if "metrics" in flags.FLAGS:  # already defined (a test may ask twice)
        return
    flags.DEFINE_string("workdir", None, "A training run's workdir: score its checkpoints.")
    flags.DEFINE_string(
        "real",
        None,
        "Two-set mode: the reference images (dataset, folder or .npz), or stats:FILE.npz, FID "
        "statistics (--save_stats's, pytorch-fid's or TTUR's mu/sigma) for --metrics=fid.",
    )
    flags.DEFINE_string(
        "fake", None, "Two-set mode: the images to score (dataset, folder or .npz)."
    )
    flags.DEFINE_list(
        "metrics",
        None,
        f"Comma-separated; --list_metrics describes each. Default: a GAN run's (and two sets) "
        f"{','.join(DEFAULT_METRICS)}; a translation run's fid,kid (+paired_l1,paired_ssim where "
        f"its test images have ground-truth pairs).",
    )
    flags.DEFINE_bool(
        "list_metrics", False, "Print every metric, what it needs and its count; exit."
    )
    flags.DEFINE_string("steps", "all", "Checkpoints to score: all, latest, or a list N,M,...")
    flags.DEFINE_integer(
        "num_samples", 0, "Fakes per metric (0: each metric's paper's count; rows warn otherwise)."
    )
    flags.DEFINE_integer("num_real", 0, "Real images (0: the whole split, at most 50,000).")
    flags.DEFINE_string("real_split", "train", "Reference split for workdir mode.")
    flags.DEFINE_string(
        "baseline_split", "test", "Split scored against the reference as real-vs-real."
    )
    flags.DEFINE_bool("baseline", True, "Workdir mode: also write the real-vs-real baseline rows.")
    flags.DEFINE_enum(
        "feature_network",
        "auto",
        ["auto", *features.NAMES],
        "Network for features.",
    )
    flags.DEFINE_string("inception_weights", None, "Converted Inception .npz (default: the cache).")
    flags.DEFINE_enum(
        "resize", "legacy", ["legacy", "clean"],
        "Inception's input resize: legacy = TF1 bilinear (TTUR/PGGAN numbers), clean = PIL bicubic (clean-fid).",
    )  # fmt: skip
    flags.DEFINE_integer("seed", 0, "Seed of latents, real order, subsets, pairs and projections.")
    flags.DEFINE_integer(
        "batch_size", 200, "Generator batch when sampling (rounded to the devices)."
    )
    flags.DEFINE_integer(
        "feature_batch_size", 0, "Feature-network batch (0: the network's default)."
    )
    flags.DEFINE_bool("force", False, "Recompute rows that are already in metrics.jsonl.")
    flags.DEFINE_bool("watch", False, "Keep scoring new checkpoints as the run writes them.")
    flags.DEFINE_float("poll_seconds", 60.0, "--watch: seconds between looks for new checkpoints.")
    flags.DEFINE_float(
        "watch_timeout", 0.0, "--watch: stop after this long without one (0: never)."
    )
    flags.DEFINE_string("cache_dir", None, "Real-feature cache (default ~/.cache/jaxgan/eval).")
    flags.DEFINE_enum("swd_preset", "pggan", ["pggan", "shmelkov"], "SWD patch/direction counts.")
    flags.DEFINE_integer("ms_ssim_pairs", 10_000, "MS-SSIM random pairs (PGGAN: 10,000).")
    flags.DEFINE_integer("kid_subsets", 100, "KID subsets (a translation run: NICE-GAN's 50).")
    flags.DEFINE_integer("kid_subset_size", 1000, "KID subset size (clipped to the set sizes).")
    flags.DEFINE_integer("is_splits", 10, "Inception Score splits.")
    flags.DEFINE_integer("pr_k", 3, "Precision/recall neighbourhood size.")
    flags.DEFINE_integer("resolution", 0, "Two-set mode: image size (0: the real images' size).")
    flags.DEFINE_string("output", None, "Two-set mode: also append the rows to this JSONL file.")
    flags.DEFINE_string(
        "save_stats",
        None,
        "Write the real set's FID statistics (pytorch-fid's mu/sigma .npz, with how they were "
        "made) to this file; score against it later with --real=stats:FILE.",
    )
    flags.DEFINE_string(
        "classifier_recipe", "auto", "gan_train/gan_test classifier: auto, mnist5k or cifar10."
    )
    flags.DEFINE_integer("classifier_steps", 0, "Classifier training steps (0: the recipe's).")
    flags.DEFINE_integer("classifier_seed", 0, "Seed of the classifiers' weights and batches.")
    flags.DEFINE_integer("iw_steps", 2000, "Independent critic: WGAN-GP training steps.")
    flags.DEFINE_integer("iw_width", 32, "Independent critic: DCGAN critic width.")
    flags.DEFINE_integer("iw_batch_size", 64, "Independent critic: reals (and fakes) per step.")
    flags.DEFINE_integer("modes_images", 25_600, "modes: images per evaluation (PGGAN: 25,600).")
    flags.DEFINE_integer("modes_evals", 10, "modes: evaluations averaged (PGGAN: 10).")
