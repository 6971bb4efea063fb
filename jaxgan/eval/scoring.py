"""Scoring: one row per registered metric for a (real, fake) pair of image sets.

The `Scorer` is what a metric function gets: the feature network's outputs of a set (extracted
once per set, cached on disk for reproducible sets, sliced for a prefix of a set), the options, the
real splits and the cache. Rows are described in `eval/results.py`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import numpy as np
from absl import logging

from jaxgan.core import errors
from jaxgan.eval import features, registry, results
from jaxgan.eval.cache import Cache
from jaxgan.eval.imagesets import ImageSet, RealSplits
from jaxgan.eval.options import Options, default_cache_dir


class Scorer:
    """Computes rows at one (resolution, channels); loads the feature network on first use.

    splits: the dataset's whole train and test splits, for the metrics that declare `splits`
    (None where the real images are not a dataset: those metrics then raise).
    """

    def __init__(
        self,
        network_name: str | None,
        options: Options,
        resolution: int,
        channels: int,
        splits: RealSplits | None = None,
    ):
        self.network_name, self.options, self.splits = network_name, options, splits
        self.resolution, self.channels = resolution, channels
        self.cache = Cache(options.cache_dir or default_cache_dir())
        self._network = None
        self.memo: dict = {}  # per-scorer results of the protocols (the real classifier)

    @property
    def network(self):
        if self._network is None:
            o = self.options
            self._network = features.load(
                self.network_name, self.resolution, self.channels, o.feature_batch_size,
                o.inception_weights, o.progress, o.resize,
            )  # fmt: skip
        return self._network

    @property
    def network_identity(self) -> tuple | None:
        """(name, weights hash, resize, code version) of the feature network, without loading it:
        what a row's identity names, known before anything is computed."""
        if self.network_name is None:
            return None

        name, o = self.network_name, self.options
        return (
            name,
            features.weights_id(name, o.inception_weights),
            features.resize_mode(name, self.resolution, o.resize),
            features.CODE_VERSION[name],
        )

    def features(self, image_set: ImageSet) -> dict:
        """{"features": [N, D], "logits": [N, K](, "labels")} of a set (cached if it has a key)."""
        if image_set.parent is not None:  # a prefix of a set: its rows of the parent's features
            return {k: v[: image_set.size] for k, v in self.features(image_set.parent).items()}
        if "features" not in image_set.memo:
            network, start = self.network, time.perf_counter()

            def compute():
                out = network.extract(image_set.images)
                if image_set.labels is not None:
                    out["labels"] = np.asarray(image_set.labels, np.int32)
                return out

            if image_set.cache_key is None:
                result = compute()
            else:
                name, weights, resize, code = self.network_identity
                key = {
                    **image_set.cache_key,
                    "what": name,
                    "weights": weights,
                    "resize": resize,
                    "code": code,
                }
                result = self.cache.get_or_compute(key, compute)
            image_set.memo["features"] = result
            image_set.memo["feature_time_s"] = time.perf_counter() - start
        return image_set.memo["features"]

    def require_splits(self, metric: str) -> RealSplits:
        if self.splits is None:
            raise errors.ConfigError(
                f"{metric} needs the real dataset's train and test splits: give --real as a "
                f"dataset (mnist5k:train, tfds:NAME:train), not a folder or an .npz."
            )
        return self.splits

    def rows(
        self,
        real: ImageSet,
        fake: ImageSet,
        metrics: Sequence[registry.Metric],
        identity: dict,
        extra: dict | None = None,
        protocol: bool = True,
        counts: dict | None = None,
    ) -> Iterable[dict]:
        """One row per metric, yielded as each is done. Each metric scores the first counts[name]
        (default: `fake_counts`) of `fake`; protocol=False (real-vs-real rows) scores all of it."""

        if counts is None:
            counts = fake_counts(metrics, real.size, self.options) if protocol else {}
        if any(m.features for m in metrics):  # shared by the feature metrics: timed on its own
            self.features(real)
            self.features(fake)
        for metric in metrics:
            share = fake.head(counts.get(metric.name, fake.size))
            start = time.perf_counter()
            result = metric.compute(self, real, share)
            network = self.network_identity if metric.features else None
            row = results.make_row(
                identity, metric, result, real, share, network, self.options,
                wall_time_s=time.perf_counter() - start,
                feature_time_s=fake.memo.get("feature_time_s", 0.0) if metric.features else None,
                protocol_count=metric.fakes.count(real.size, self.options) if protocol else None,
                protocol_source=metric.fakes.source,
                extra=extra,
            )  # fmt: skip
            if row.get("warning"):
                logging.warning("%s: %s", metric.name, row["warning"])
            yield row


def fake_counts(metrics: Sequence[registry.Metric], n_real: int, options: Options) -> dict:
    """Fakes each metric scores: `--num_samples` for all, else each metric's paper's count."""
    return {m.name: options.num_samples or m.fakes.count(n_real, options) for m in metrics}


def resolve_network(metrics, options: Options, dataset: str, channels: int | None, resolution):
    """The feature network's name (None if no metric needs one); fails fast if it is missing."""
    if not any(m.features for m in metrics):
        return None

    name = features.resolve_name(options.feature_network, dataset, channels, resolution)
    features.check_available(name, options.inception_weights)
    if options.resize == "clean" and name != "inception_v3":
        logging.warning("--resize=clean applies to inception_v3; %s keeps its own resize.", name)
    return name


def check_metric_inputs(
    metrics: Sequence[registry.Metric],
    n_real: int,
    n_fakes: dict,
    labelled: bool,
    options: Options,
    channels: int | None = None,
    paired: bool = False,
) -> None:
    """Errors a run would otherwise hit after minutes of sampling, raised before any work.

    n_fakes: metric name -> fakes it will score. labelled: whether the fakes come with the labels
    they were generated for (workdir mode: the generator is class-conditional). paired: whether
    fake i has a true counterpart, real i (a translation run on a dataset with ground truth).
    """
    needs_pairs = [m.name for m in metrics if m.paired]
    if needs_pairs and not paired:
        raise errors.ConfigError(
            f"{', '.join(needs_pairs)} compare each fake with its true counterpart, which only a "
            f"translation run's test images have (or two sets given in pair order); drop them "
            f"from --metrics."
        )
    for metric in metrics:
        needed, n_fake = metric.min_fakes(options), n_fakes[metric.name]
        problem = metric.check(n_real, n_fake, channels, options)
        if problem:
            raise errors.ConfigError(problem)
        if n_fake < needed:
            raise errors.ConfigError(
                f"{metric.name} needs at least {needed:,} fakes; this evaluation has {n_fake:,} "
                f"(--num_samples). Pass --num_samples=0 (its paper's count: {metric.fakes.source})."
            )
    needs_labels = [m.name for m in metrics if m.labels]
    if needs_labels and not labelled:
        raise errors.ConfigError(
            f"{', '.join(needs_labels)} score(s) generated images against the labels they were "
            f"generated for, so they need a class-conditional generator: a run with "
            f"config.model.conditional_generator=True (AC-GAN: with config.model.ac_head=True; an "
            f"AC head alone leaves the generator unconditional) or, for two sets, labels in both."
        )
