"""The evaluator's command line: scores a run's checkpoints, or two image sets.

  python -m jaxgan.evaluate --workdir=runs/x [--metrics=fid,kid,is,swd,ms_ssim,pr] [--steps=all]
  python -m jaxgan.evaluate --workdir=runs/x --watch            # beside a training run
  python -m jaxgan.evaluate --workdir=runs/cyclegan             # a translation run: both directions
  python -m jaxgan.evaluate --real=mnist5k:train --fake=samples.npz --metrics=fid
  python -m jaxgan.evaluate --list_metrics                      # what each metric needs

README.md ("Evaluating checkpoints") is the manual. Where things are: `eval/runner.py` (the two
modes, and a GAN run's job), `eval/translation.py` (a translation run's job), `eval/registry.py` (what each metric declares), `eval/metrics.py` and `eval/protocols.py`
(the registered metrics), `eval/imagesets.py` (what a SPEC means: a dataset string `mnist5k[:SPLIT]`,
`tfds:NAME[:SPLIT]`, `folder:PATH`, a folder, or an .npz of uint8 images `[N, H, W(, C)]` with
optional `labels`), `eval/sampling.py` (checkpoint -> images), `eval/cache.py` (the real-feature
cache), `eval/results.py` (the row schema and the log), `eval/report.py` (plots and the summary).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from absl import app, flags

from jaxgan import errors
from jaxgan.eval import features
from jaxgan.eval.options import Options
from jaxgan.eval.runner import DEFAULT_METRICS, evaluate_sets, evaluate_workdir

FLAGS = flags.FLAGS


def options_from_flags() -> Options:
    fields = [f.name for f in dataclasses.fields(Options) if f.name in FLAGS]
    given = frozenset(name for name in fields if FLAGS[name].present)
    return Options(**{name: getattr(FLAGS, name) for name in fields}, given=given)


def main(argv):
    del argv
    from jaxgan import logging as run_logging
    from jaxgan.eval import registry

    run_logging.quiet_library_logs()
    if FLAGS.list_metrics:
        print(registry.describe())
        return
    options = options_from_flags()
    try:
        if FLAGS.workdir and not (FLAGS.real or FLAGS.fake):
            evaluate_workdir(
                FLAGS.workdir,
                FLAGS.metrics,
                options,
                steps=FLAGS.steps,
                force=FLAGS.force,
                watch=FLAGS.watch,
                poll_seconds=FLAGS.poll_seconds,
                watch_timeout=FLAGS.watch_timeout,
            )
        elif FLAGS.real and FLAGS.fake and not FLAGS.workdir:
            rows = evaluate_sets(FLAGS.real, FLAGS.fake, FLAGS.metrics or DEFAULT_METRICS, options)
            for row in rows:
                print(json.dumps(row), flush=True)
            if FLAGS.output:
                os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
                with open(FLAGS.output, "a") as f:
                    f.writelines(json.dumps(r) + "\n" for r in rows)
        else:
            raise app.UsageError("Give --workdir=W, or --real=SPEC and --fake=SPEC (not both).")
    except (errors.UserError, FileNotFoundError) as e:  # bad input: the message says what to do
        sys.exit(f"{type(e).__name__}: {e}")  # (missing weights, data, config, a bad flag ...)


def define_flags() -> None:
    """Registered only when run as a program: importing this module defines no global flags."""
    if "metrics" in flags.FLAGS:  # already defined (a test may ask twice)
        return
    flags.DEFINE_string("workdir", None, "A training run's workdir: score its checkpoints.")
    flags.DEFINE_string(
        "real", None, "Two-set mode: the reference images (dataset, folder or .npz)."
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
        "classifier_recipe", "auto", "gan_train/gan_test classifier: auto, mnist5k or cifar10."
    )
    flags.DEFINE_integer("classifier_steps", 0, "Classifier training steps (0: the recipe's).")
    flags.DEFINE_integer("classifier_seed", 0, "Seed of the classifiers' weights and batches.")
    flags.DEFINE_integer("iw_steps", 2000, "Independent critic: WGAN-GP training steps.")
    flags.DEFINE_integer("iw_width", 32, "Independent critic: DCGAN critic width.")
    flags.DEFINE_integer("iw_batch_size", 64, "Independent critic: reals (and fakes) per step.")
    flags.DEFINE_integer("modes_images", 25_600, "modes: images per evaluation (PGGAN: 25,600).")
    flags.DEFINE_integer("modes_evals", 10, "modes: evaluations averaged (PGGAN: 10).")


if __name__ == "__main__":
    define_flags()
    app.run(main)
