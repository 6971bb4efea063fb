"""The classifier experiments of "How good is my GAN?" (Shmelkov et al. 2018) on a conditional run.

  python -m jaxgan.experiments diversity --workdir=W [--sizes=500,1000,2000,4000]
  python -m jaxgan.experiments augmentation --workdir=W --subset_runs=W10,W25 [--num_generated=0]
  python -m jaxgan.experiments transfer --workdir=OUT --table=size|network|source|conditional|fewshot
      (Transferring GANs' tables: jaxgan/experiments/transfer.py)
  python -m jaxgan.experiments dcgan_features --workdir=W --target=DATASET [--labels=100,1000,0]
      (DCGAN's critic as a feature extractor, Tables 1-2: jaxgan/experiments/dcgan_features.py)
  common: [--checkpoint=latest|STEP] [--classifier_recipe=auto] [--classifier_steps=0]
      [--classifier_seed=0] [--seed=0] [--batch_size=200] [--real_split=train]
      [--baseline_split=test]

diversity     (the paper's §5.3, Fig. 4) GAN-train against the number N of generated images: for
              each N, a fresh classifier trained on the first N class-balanced fakes and another on
              N real training images (a class-balanced subset, `classifier_metrics.balanced_subset`)
              are scored on the real test split. Where the GAN-train curve flattens, more samples
              add no new information; the real curve is what N distinct images are worth.
augmentation  (§5.4, Fig. 5, Table 4) for W and each of `--subset_runs` — the same GAN trained on
              a class-balanced subset of W's data (`--config.data.dataset=mnist5k:n=40`: 10 %) —
              the run's own real training images alone, the same images plus `--num_generated`
              fakes (default: as many as the whole train split has) of THAT run's generator, and
              the fakes alone; each trains a fresh classifier scored on the real test split. A
              subset is never augmented by a GAN that saw the whole training set; each row names
              its GAN (`gan`: workdir, dataset, checkpoint).

Every classifier is the evaluator's GAN-train classifier: the `--classifier_recipe` (auto: mnist5k's
CNN for grayscale, cifar10's ResNet-32 otherwise; `jaxgan/models/classifier.py`) for
`--classifier_steps` steps (0: the recipe's; a fixed count whatever the training set's size, as the
reference's fixed `max_iterations`), seeded by `--classifier_seed`. Fakes are sampled from
checkpoint `--checkpoint` of W exactly as `python -m jaxgan.evaluate` samples them (EMA generator,
latents from `--seed`, labels `arange(N) % num_classes`).

Outputs: `W/eval/diversity.png` + `W/eval/diversity.json`, `W/eval/augmentation.png` +
`W/eval/augmentation.json`. The JSON holds the table (`rows`) and how it was made:
  {"experiment": "diversity", "workdir": W, "checkpoint": 2400, "dataset": "mnist5k",
   "train_set": "mnist5k:train", "n_train": 4000, "test_set": "mnist5k:test", "n_test": 1000,
   "classifier": {"recipe": "mnist5k", "settings": {...}, "steps": 1250, "seed": 0}, "seed": 0,
   "rows": [{"n": 500, "gan_train": 0.91, "real": 0.93}, ...], "wall_time_s": 812.0,
   "timestamp": "..."}
  augmentation: "n_generated": 4000, "rows": [{"real_fraction": 0.1, "n_real": 400, "gan":
   {"workdir": W10, "dataset": "mnist5k:n=40", "checkpoint": 2400, "trained_on":
   "mnist5k:train:n=40"}, "real": 0.90, "real_plus_generated": 0.95, "generated_only": 0.9}, ...].
Training classifiers takes most of the time: the default diversity curve trains 8 mnist5k
classifiers (1,250 steps each), the augmentation experiment 3 per run; `--classifier_steps=300`
cuts both ~4x.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
from absl import logging

from jaxgan import data
from jaxgan.core import errors
from jaxgan.eval import classifier_metrics, imagesets, protocols, sampling
from jaxgan.eval.options import Options
from jaxgan.experiments.tables import figure, write_table


class _Setup:
    """What both experiments need from a run: its config, real splits, recipe and classifier."""

    def __init__(self, workdir: str, options: Options, checkpoint: str | int):
        self.workdir, self.options, self.checkpoint = workdir, options, checkpoint
        self.config = config = sampling.load_config(workdir)
        if not sampling.generator_is_conditional(config):
            raise ValueError(
                f"{workdir} is not a class-conditional run: the experiments train classifiers on "
                f"generated images and the labels they were generated for, which needs "
                f"config.model.conditional_generator=True (with config.model.ac_head=True for "
                f"AC-GAN; an AC head alone leaves the generator unconditional)."
            )
        _, self.channels, _ = data.open_run_source(config, options.real_split)
        self.splits = imagesets.real_splits(
            config.data.dataset,
            config.data.data_dir,
            config.data.resolution,
            self.channels,
            options,
        )
        name, self.recipe, self.steps, self.classifier_seed = protocols.classifier_recipe(
            options, self.splits.dataset, self.channels
        )
        self.classifier = {
            "recipe": name,
            "settings": self.recipe.asdict(),
            "steps": self.steps,
            "seed": self.classifier_seed,
        }

    def sample(self, n: int) -> tuple[np.ndarray, np.ndarray, int]:
        return sampling.sample_checkpoint(
            self.workdir,
            self.config,
            self.checkpoint,
            n,
            self.options.seed,
            self.options.batch_size,
        )

    def accuracy(self, images: np.ndarray, labels: np.ndarray) -> float:
        """A fresh classifier trained on (images, labels), scored on the real test split."""
        test = self.splits.test
        result = classifier_metrics.gan_train(
            images,
            labels,
            test.images,
            test.labels,
            self.recipe,
            self.classifier_seed,
            self.splits.num_classes,
            self.steps,
        )
        return result["accuracy"]

    def real_subset(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        train = self.splits.train
        index = classifier_metrics.balanced_subset(train.labels, n, self.options.seed)
        return train.images[index], train.labels[index]

    def header(self, experiment: str, step: int) -> dict:
        s = self.splits
        return {
            "experiment": experiment,
            "workdir": os.path.abspath(self.workdir),
            "checkpoint": step,
            "dataset": s.dataset,
            "train_set": s.train.name,
            "n_train": s.train.size,
            "test_set": s.test.name,
            "n_test": s.test.size,
            "classifier": self.classifier,
            "seed": self.options.seed,
        }


def diversity(
    workdir: str,
    sizes: Sequence[int],
    options: Options,
    checkpoint: str | int = "latest",
) -> dict:
    """GAN-train and real accuracy against N; writes W/eval/diversity.{json,png}; the table."""
    start = time.perf_counter()
    setup = _Setup(workdir, options, checkpoint)
    sizes = sorted({int(n) for n in sizes})
    fakes, labels, step = setup.sample(max(sizes))
    rows = []
    for n in sizes:
        # The first n fakes are class-balanced: their labels are arange(n) % num_classes.
        row = {"n": n, "gan_train": setup.accuracy(fakes[:n], labels[:n]), "real": None}
        if n <= setup.splits.train.size:
            row["real"] = setup.accuracy(*setup.real_subset(n))
        logging.info("diversity: %s", row)
        rows.append(row)
    table = {**setup.header("diversity", step), "rows": rows}
    table["wall_time_s"] = round(time.perf_counter() - start, 1)
    return write_table(table, workdir, _plot_diversity)


def augmentation(
    workdir: str,
    subset_runs: Sequence[str],
    num_generated: int,
    options: Options,
    checkpoint: str | int = "latest",
) -> dict:
    """For W and each run of `subset_runs` (the same kind of GAN trained on a class-balanced subset
    of W's dataset, `--config.data.dataset=DATASET:n=K`): a classifier on that run's real training
    images alone, on them plus `num_generated` fakes of that same run's generator, and on the fakes
    alone. Writes W/eval/augmentation.{json,png}; returns the table."""
    start = time.perf_counter()
    setup = _Setup(workdir, options, checkpoint)
    full_size = setup.splits.train.size
    base = data.parse_per_class(setup.config.data.dataset)[0]
    rows = []
    for run in [*subset_runs, workdir]:
        gan = setup if run == workdir else _Setup(run, options, checkpoint)
        dataset = gan.config.data.dataset
        if data.parse_per_class(dataset)[0] != base or gan.config.data.resolution != (
            setup.config.data.resolution
        ):
            raise errors.ConfigError(
                f"{run} trained on {dataset} at {gan.config.data.resolution}px; the augmentation "
                f"experiment needs GANs trained on subsets of {workdir}'s {base} at its resolution "
                f"(e.g. --config.data.dataset={base}:n=40)."
            )
        # The real images are exactly those the GAN was trained on (the paper augments a subset
        # with a GAN trained on that same subset, never with one that saw the whole training set).
        reals = imagesets.dataset_set(
            dataset, "train", gan.config.data.data_dir, gan.config.data.resolution,
            setup.channels, 1 << 40, options.seed,
        )  # fmt: skip
        fakes, labels, step = gan.sample(num_generated or full_size)
        row = {
            "real_fraction": round(reals.size / full_size, 4),
            "n_real": reals.size,
            "gan": {
                "workdir": os.path.abspath(run),
                "dataset": dataset,
                "checkpoint": step,
                "trained_on": reals.name,
            },  # fmt: skip
            "real": setup.accuracy(reals.images, reals.labels),
            "real_plus_generated": setup.accuracy(
                np.concatenate([reals.images, fakes]), np.concatenate([reals.labels, labels])
            ),
            "generated_only": setup.accuracy(fakes, labels),
        }
        logging.info("augmentation: %s", row)
        rows.append(row)
    table = {
        **setup.header("augmentation", rows[-1]["gan"]["checkpoint"]),
        "n_generated": num_generated or full_size,
        "rows": sorted(rows, key=lambda r: r["n_real"]),
    }
    table["wall_time_s"] = round(time.perf_counter() - start, 1)
    return write_table(table, workdir, _plot_augmentation)


def _plot_diversity(table: dict):
    fig, ax = figure(table, "GAN-train vs number of images")
    rows = table["rows"]
    ax.plot(
        [r["n"] for r in rows], [r["gan_train"] for r in rows], "o-", label="generated (GAN-train)"
    )
    real = [r for r in rows if r["real"] is not None]
    ax.plot(
        [r["n"] for r in real],
        [r["real"] for r in real],
        "s--",
        label=f"real ({table['train_set']})",
    )
    ax.set_xscale("log")
    ax.set_xlabel("training images N (class-balanced)")
    ax.legend(fontsize="small")
    return fig


def _plot_augmentation(table: dict):
    fig, ax = figure(table, "real subset + generated by a GAN trained on it")
    rows = table["rows"]
    n_real = [r["n_real"] for r in rows]
    ax.plot(n_real, [r["real"] for r in rows], "s--", label="real subset")
    ax.plot(
        n_real,
        [r["real_plus_generated"] for r in rows],
        "o-",
        label=f"real subset + {table['n_generated']} generated",
    )
    ax.plot(n_real, [r["generated_only"] for r in rows], "^:", label="generated only (GAN-train)")
    ax.set_xscale("log")
    ax.set_xlabel(f"real images from {table['train_set']} (class-balanced; the GAN's training set)")
    ax.legend(fontsize="small")
    return fig
