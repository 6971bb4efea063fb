"""The evaluator's job for a translation run (CycleGAN, NICE-GAN): the method's `translator` applied
to each domain's test images, scored against the other domain's test images.

For each direction (AtoB: G_A on testA, scored against testB; BtoA: G_B on testB against testA) and
each checkpoint, one row per metric (NICE-GAN's `metric/fid_kid.py`):
  fid, kid        the real test images of the target domain vs the translated test images of the
                  source domain, each set whole; KID over 50 subsets of min(1000, n) (NICE-GAN's
                  count; `--kid_subsets` overrides), as KID×100 in docs/translation.md's tables.
  paired_l1,      where the two test folders hold the same subjects under the same file names (the
  paired_ssim     emoji pair): each translation against its true counterpart.
Baseline rows, kind:
  identity        the untranslated source test images scored as if they were translations: what
                  training must beat (a translator that does nothing gets exactly these numbers).
  real_vs_real    the target's train split vs its test split: the floor a perfect translator
                  approaches (distribution metrics only).
Rows carry `direction`; plots are one per metric and direction (`eval/report.py`) and the summary
gives the best checkpoint beside the final one (papers after CycleGAN report the best).

A paired set is ordered by pair: the first n_pairs images of the source and target sets are
counterparts (`two_domain.pairs`), the unpaired rest follows; the paired metrics score those
first n_pairs, the distribution metrics the whole sets.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np
from absl import logging

from jaxgan import data
from jaxgan.core import batched, errors, parallel, run_files
from jaxgan.data import sources, two_domain
from jaxgan.eval import catalog, imagesets, registry, results, sampling, scoring
from jaxgan.eval.job import Job
from jaxgan.eval.options import Options
from jaxgan.methods import translation

DIRECTIONS = (("AtoB", "A", "B"), ("BtoA", "B", "A"))  # (direction, source domain, target domain)
DISTRIBUTION_METRICS = ("fid", "kid")
PAIRED_METRICS = ("paired_l1", "paired_ssim")
PROTOCOL = {"fakes": "each test set whole", "source": "NICE-GAN metric/fid_kid.py"}
KID_SUBSETS = 50  # NICE-GAN's metric/fid_kid.py; the GAN evaluator's default is the KID paper's 100


def default_metrics(paired: bool) -> tuple[str, ...]:
    return DISTRIBUTION_METRICS + (PAIRED_METRICS if paired else ())


def translation_options(options: Options) -> Options:
    """NICE-GAN's KID subsets unless `--kid_subsets` was given."""
    if "kid_subsets" in options.given:
        return options
    return dataclasses.replace(options, kid_subsets=KID_SUBSETS)


def feature_dataset(dataset: str) -> str:
    """The name `features.resolve_name` knows a two-domain dataset by: a folder written by
    `jaxgan.data.prepare` is its prepared name (`prepare.json`'s "dataset", e.g. 'emoji', whose
    own network is emoji_cnn), anything else its dataset string."""

    kind, name, _ = sources.parse(dataset)
    manifest = os.path.join(name, "prepare.json") if kind == "folder" else ""
    if manifest and os.path.isfile(manifest):
        with open(manifest) as f:
            return json.load(f).get("dataset", dataset)
    return dataset


def ordered_by_pair(images_a, images_b, index_a, index_b):
    """(A, B) with the pairs (index_a[k], index_b[k]) first, in the same order, the rest after."""

    def order(images, index):
        rest = np.setdiff1d(np.arange(len(images)), index)
        return images[np.concatenate([index, rest]).astype(int)]

    return order(images_a, index_a), order(images_b, index_b)


class TranslationEvaluation(Job):
    """A translation run's test sets, scorer and log (the job `eval/runner.py` drives)."""

    def __init__(self, config, method, metrics, options: Options, force: bool, workdir: str):

        d = config.data
        self.config, self.method, self.force = config, method, force
        self.options = options = translation_options(options)
        self.params_entry = method.eval_params
        test = dict(zip("AB", two_domain.open_domains(d.dataset, "test", d.data_dir, d.channels)))
        try:
            index_a, index_b = two_domain.pairs(test["A"], test["B"])
        except errors.DataError:  # tfds splits have no file names: no ground truth
            index_a = index_b = np.zeros(0, int)
        self.num_pairs = len(index_a)
        self.metrics = catalog.parse(metrics or default_metrics(self.num_pairs > 0))
        paired = [m.name for m in self.metrics if m.paired]
        if paired and not self.num_pairs:
            raise errors.ConfigError(
                f"{', '.join(paired)} compare each translation with its true counterpart, and "
                f"{d.dataset}'s testA/ and testB/ share no file names (no ground truth). Drop "
                f"them from --metrics (e.g. --metrics=fid,kid)."
            )
        unsupported = [m.name for m in self.metrics if m.labels or m.splits]
        if unsupported:
            raise errors.ConfigError(
                f"--metrics: {', '.join(unsupported)} need(s) labelled fakes or a dataset's splits, "
                f"which a translation run does not have; use {', '.join(default_metrics(True))}."
            )
        network = scoring.resolve_network(
            self.metrics, options, feature_dataset(d.dataset), d.channels, d.resolution
        )
        start = time.perf_counter()
        images = {
            k: two_domain.eval_images(s, d.resolution, d.channels, preprocess=d.preprocess)
            for k, s in test.items()
        }
        images["A"], images["B"] = ordered_by_pair(images["A"], images["B"], index_a, index_b)
        logging.info("Test images: %d A, %d B (%d pairs), read in %.1f s.", len(images["A"]),
                     len(images["B"]), self.num_pairs, time.perf_counter() - start)  # fmt: skip
        self.images = images
        self.reals = {
            domain: imagesets.ImageSet.from_arrays(f"{d.dataset}:test{domain}", images[domain])
            for domain in "AB"
        }
        self.counts = {  # each set whole; the paired metrics their pairs
            direction: {
                m.name: self.num_pairs if m.paired else len(images[source]) for m in self.metrics
            }
            for direction, source, _ in DIRECTIONS
        }
        for direction, _, target in DIRECTIONS:
            scoring.check_metric_inputs(
                self.metrics, len(images[target]), self.counts[direction], False, options,
                d.channels, paired=True,
            )  # fmt: skip
        self.scorer = scoring.Scorer(network, options, d.resolution, d.channels)
        self.workdir, self.eval_dir = workdir, os.path.join(workdir, "eval")
        self.log = results.MetricsLog(os.path.join(self.eval_dir, "metrics.jsonl"))
        self.written: list[dict] = []
        self.translate = None

    # -- the runner's interface ------------------------------------------------------------------

    def fake_name(self, direction: str, step: int | None) -> str:
        return f"{direction}@{step}" if step is not None else f"{direction}:identity"

    def identity(self, kind, step, direction, metric, real_name, fake_name, n_fake) -> dict:
        network = self.scorer.network_identity if metric.features else None
        target = self.reals[dict((d, t) for d, _, t in DIRECTIONS)[direction]]
        n_real = n_fake if metric.paired else target.size
        return {
            **results.identity(
                kind,
                step,
                metric,
                real_name or target.name,
                n_real,
                fake_name,
                n_fake,
                network,
                self.options,
            ),  # fmt: skip
            "direction": direction,
        }

    def checkpoint_identity(self, step: int, direction: str, metric) -> dict:
        """The identity of checkpoint `step`'s row of `metric` in `direction`."""
        n_fake = self.counts[direction][metric.name]
        fake_name = self.fake_name(direction, step)
        return self.identity("checkpoint", step, direction, metric, None, fake_name, n_fake)

    def todo(self, step: int) -> list[tuple[str, registry.Metric]]:
        """(direction, metric) pairs checkpoint `step` has no row of (all with --force)."""
        return [
            (direction, m)
            for direction, _, _ in DIRECTIONS
            for m in self.metrics
            if self.force or not self.log.has(self.checkpoint_identity(step, direction, m))
        ]

    def error_rows(self, step: int, missing, reason: str) -> list[dict]:
        return [
            results.error_row(self.checkpoint_identity(step, direction, m), reason)
            for direction, m in missing
        ]

    def _score(self, kind, step, direction, target, fake, metrics, extra=None) -> list[dict]:
        """Rows of `metrics` for `fake` (a translated or baseline set) against `target`."""
        rows = []
        for paired in (False, True):
            group = [m for m in metrics if m.paired == paired]
            if not group:
                continue
            real = target.head(self.num_pairs) if paired else target
            # Translations and the identity: the source's test set (or its pairs); a baseline
            # set of other images (the target's train split): whole.
            counts = {
                m.name: self.counts[direction][m.name] if kind != "real_vs_real" else fake.size
                for m in group
            }
            identity = {"kind": kind, "step": step}
            extra_row = {"direction": direction, "protocol": PROTOCOL, **(extra or {})}
            for row in self.scorer.rows(
                real, fake, group, identity, extra_row, protocol=False, counts=counts
            ):
                self.emit([row])
                rows.append(row)
        return rows

    def score_baseline(self) -> None:
        """The identity rows (the untranslated source images) and, for the distribution metrics,
        real-vs-real (the target's train split vs its test split)."""
        train = None
        for direction, source, target in DIRECTIONS:
            name = self.fake_name(direction, None)
            pending = [
                m for m in self.metrics
                if self.force or not self.log.has(self.identity(
                    "identity", None, direction, m, None, name, self.counts[direction][m.name]))
            ]  # fmt: skip
            identity_set = imagesets.ImageSet.from_arrays(name, self.images[source])
            self._score("identity", None, direction, self.reals[target], identity_set, pending)
            if not self.options.baseline:
                continue
            if train is None:
                train = self._train_sets()
            pending = [
                m for m in self.metrics
                if m.baseline and not m.paired and (self.force or not self.log.has(self.identity(
                    "real_vs_real", None, direction, m, None, train[target].name,
                    train[target].size)))
            ]  # fmt: skip
            self._score("real_vs_real", None, direction, self.reals[target], train[target],
                        pending, extra=None)  # fmt: skip

    def _train_sets(self) -> dict:

        d = self.config.data
        train = dict(zip("AB", two_domain.open_domains(d.dataset, "train", d.data_dir, d.channels)))
        return {
            k: imagesets.ImageSet.from_arrays(
                f"{d.dataset}:train{k}",
                two_domain.eval_images(s, d.resolution, d.channels, preprocess=d.preprocess),
            )
            for k, s in train.items()
        }

    def score_checkpoint(self, step: int, params, meta: dict, missing) -> list[dict]:

        start = time.perf_counter()
        checkpoint_config = sampling.checkpoint_config(meta, self.config)
        translate = self.translator(checkpoint_config)
        rows = []
        for direction, source, target in DIRECTIONS:
            metrics = [m for d, m in missing if d == direction]
            if not metrics:
                continue
            untrained = translation.untrained_message(meta, direction, self.workdir)
            if untrained:  # a run imported from one released generator: not scored
                logging.warning("%s", untrained)
                continue
            images = self.images[source]
            batch_size = device_batch(self.options.batch_size, len(images), self.mesh)
            translated = translate_images(
                translate, params, images, direction, batch_size, self.mesh
            )
            fake = imagesets.ImageSet.from_arrays(self.fake_name(direction, step), translated)
            extra = {"sample_time_s": round(time.perf_counter() - start, 3)}
            rows += self._score("checkpoint", step, direction, self.reals[target], fake, metrics,
                                extra)  # fmt: skip
        return rows

    def translator(self, config):
        """The method's translator, built (and compiled) once per network config."""

        if self.translate is None:
            self.mesh, self.translate = parallel.make_mesh(), {}
        key = json.dumps(sampling.network_fields(config), sort_keys=True, default=str)
        if key not in self.translate:
            self.translate[key] = self.method.translator(config, self.mesh)
        return self.translate[key]


def device_batch(batch_size: int, n: int, mesh) -> int:
    """min(batch_size, n) rounded up to a multiple of the mesh's devices."""
    return batched.round_up_to_devices(min(batch_size, n), mesh)


def translate_images(translate, params, images: np.ndarray, direction: str, batch_size: int, mesh):
    """uint8 [N, H, W, C] -> their translations, uint8, in batches of exactly `batch_size` (a
    multiple of the devices, `device_batch`) sharded over the mesh; the last batch is filled with
    copies of its first image, dropped after, so each image shape compiles once."""
    import jax

    sharding = parallel.sharded_on(mesh, 0)
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        filled = np.concatenate([batch, np.repeat(batch[:1], batch_size - len(batch), 0)])
        x = data.to_float(jax.device_put(filled, sharding), jax.random.key(0))
        out.append(run_files.to_uint8(jax.device_get(translate(params, x, direction))))
    return np.concatenate(out)[: len(images)]
