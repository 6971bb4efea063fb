"""`python -m jaxgan.experiments EXPERIMENT --workdir=W [...]`: one command per paper table.

  diversity, augmentation   "How good is my GAN?" (jaxgan/experiments/how_good.py)
  transfer                  Transferring GANs' tables (jaxgan/experiments/transfer.py)
  dcgan_features            DCGAN's critic as a feature extractor (jaxgan/experiments/dcgan_features.py)
  nearest                   fakes beside their nearest training images (jaxgan/experiments/nearest.py)
  cyclegan_ablation         CycleGAN's loss ablation, Table 4 (jaxgan/experiments/cyclegan_ablation.py)
  pggan_table1              PGGAN's Table 1 rows (a)-(h), SWD and MS-SSIM (jaxgan/experiments/pggan_table1.py)

Each module's docstring holds its command line, outputs and what each row means; every experiment
writes W/eval/<experiment>.json and .png (jaxgan/experiments/tables.py).
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from jaxgan.core import errors, paths, run_files
from jaxgan.eval import options as eval_options
from jaxgan.experiments import (
    cyclegan_ablation,
    dcgan_features,
    how_good,
    nearest,
    pggan_table1,
    transfer,
)

FLAGS = flags.FLAGS

EXPERIMENTS = (
    "diversity", "augmentation", "transfer", "dcgan_features", "nearest", "cyclegan_ablation",
    "pggan_table1",
)  # fmt: skip


def main(argv):
    if len(argv) != 2 or argv[1] not in EXPERIMENTS:
        raise app.UsageError(
            f"Usage: python -m jaxgan.experiments {{{'|'.join(EXPERIMENTS)}}} --workdir=W"
        )
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required.")
    run_files.quiet_library_logs()
    paths.enable_compilation_cache()
    options = eval_options.from_flags()
    try:
        if argv[1] == "diversity":
            sizes = [int(n) for n in FLAGS.sizes]
            table = how_good.diversity(FLAGS.workdir, sizes, options, FLAGS.checkpoint)
        elif argv[1] == "transfer":
            table = transfer.run_table(
                FLAGS.workdir, FLAGS.table, [int(k) for k in FLAGS.per_class], FLAGS.train_steps,
                options, FLAGS.source, FLAGS.target, FLAGS.transfer_metrics,
                [int(s) for s in FLAGS.train_seeds], FLAGS.sources, FLAGS.freeze_blocks,
            )  # fmt: skip
            print(transfer.markdown(table), flush=True)
        elif argv[1] == "dcgan_features":
            table = dcgan_features.dcgan_features(
                FLAGS.workdir, FLAGS.target, [int(n) for n in FLAGS.labels],
                [int(s) for s in FLAGS.label_seeds], FLAGS.validation, FLAGS.checkpoint,
                FLAGS.kmeans_centroids, FLAGS.batch_size,
            )  # fmt: skip
            print(dcgan_features.markdown(table), flush=True)
        elif argv[1] == "nearest":
            table = nearest.nearest(
                FLAGS.workdir, options, FLAGS.num_fakes, FLAGS.num_neighbours, FLAGS.checkpoint
            )
            print(nearest.markdown(table), flush=True)
        elif argv[1] == "cyclegan_ablation":
            table = cyclegan_ablation.run_ablation(
                FLAGS.workdir, options, FLAGS.pair, FLAGS.train_steps,
                [int(s) for s in FLAGS.train_seeds], FLAGS.ablation_resolution,
            )  # fmt: skip
            print(cyclegan_ablation.markdown(table), flush=True)
        elif argv[1] == "pggan_table1":
            table = pggan_table1.run_table(
                FLAGS.workdir, FLAGS.rows, options, [int(s) for s in FLAGS.train_seeds],
                [int(s) for s in FLAGS.eval_seeds], FLAGS.kimg, FLAGS.width_scale,
            )  # fmt: skip
            print(pggan_table1.markdown(table), flush=True)
        else:
            table = how_good.augmentation(
                FLAGS.workdir, FLAGS.subset_runs, FLAGS.num_generated, options, FLAGS.checkpoint
            )
    except (errors.UserError, FileNotFoundError) as e:
        sys.exit(f"{type(e).__name__}: {e}")
    print(json.dumps(table["rows"]), flush=True)
    print(
        f"wrote {os.path.join(FLAGS.workdir, 'eval', table['experiment'])}.json and .png",
        flush=True,
    )


def define_flags() -> None:
    """The evaluator's flags plus these; registered only when run as a program."""
    if "sizes" in flags.FLAGS:  # already defined (a test may ask twice)
        return
    eval_options.define_flags()
    flags.DEFINE_list("sizes", ["500", "1000", "2000", "4000"], "diversity: numbers of images N.")
    flags.DEFINE_list(
        "subset_runs",
        [],
        "augmentation: workdirs of GANs trained on subsets of W's data (DATASET:n=K).",
    )
    flags.DEFINE_integer(
        "num_generated", 0, "augmentation: fakes added (0: the train split's size)."
    )
    flags.DEFINE_string("checkpoint", "latest", "The checkpoint to sample: latest or a step.")
    flags.DEFINE_list("rows", list(pggan_table1.ROWS), "pggan_table1: Table 1 rows (e_star: (e*)).")
    flags.DEFINE_list("eval_seeds", ["0", "1", "2"], "pggan_table1: evaluation seeds per run.")
    flags.DEFINE_float("kimg", 24.0, "pggan_table1: thousands of real images per row (h: twice).")
    flags.DEFINE_float("width_scale", 0.125, "pggan_table1: widths and latent size × this.")
    flags.DEFINE_list(
        "per_class", ["10", "100", "0"], "transfer: target images per class (0: all)."
    )
    flags.DEFINE_integer(
        "train_steps", 1000, "transfer, cyclegan_ablation: generator iterations of every run."
    )
    flags.DEFINE_string(
        "source", None, "transfer: the source run (default: WORKDIR/source, trained)."
    )
    flags.DEFINE_string("target", "fashion_mnist", "transfer, dcgan_features: the target dataset.")
    flags.DEFINE_enum(
        "table", "size", list(transfer.TABLES),
        "transfer: which table (jaxgan/experiments/transfer.py says what each trains).",
    )  # fmt: skip
    flags.DEFINE_list(
        "transfer_metrics", [], "transfer: metrics scored at every checkpoint (default: fid; "
        "conditional: fid,class_fid,gan_test).",
    )  # fmt: skip
    flags.DEFINE_list(
        "train_seeds",
        ["0"],
        "transfer, cyclegan_ablation, pggan_table1: training seeds of every row.",
    )
    flags.DEFINE_list(
        "sources", ["mnist5k", "fashion_mnist:class=0"], "transfer --table=source: source datasets."
    )
    flags.DEFINE_integer("freeze_blocks", 1, "transfer --table=fewshot: FreezeD's frozen blocks.")
    flags.DEFINE_list(
        "labels", ["100", "1000", "0"], "dcgan_features: labelled target images N (0: all)."
    )
    flags.DEFINE_list(
        "label_seeds", ["0", "1", "2"], "dcgan_features: seeds of the labelled draws."
    )
    flags.DEFINE_integer(
        "validation", 1000, "dcgan_features: class-balanced train images held out to choose C."
    )
    flags.DEFINE_integer(
        "kmeans_centroids", 800, "dcgan_features: K of the k-means baseline (4K features)."
    )
    flags.DEFINE_integer("num_fakes", 16, "nearest: generated images, each a row of the PNG.")
    flags.DEFINE_integer("num_neighbours", 5, "nearest: training images shown per fake and space.")
    flags.DEFINE_string(
        "pair", "folder:data/emoji", "cyclegan_ablation: the two-domain data (jaxgan.data.prepare "
        "emoji --out=DIR writes it).",
    )  # fmt: skip
    flags.DEFINE_integer(
        "ablation_resolution", 32, "cyclegan_ablation: data.resolution of every run."
    )


def run() -> None:
    define_flags()
    app.run(main)
