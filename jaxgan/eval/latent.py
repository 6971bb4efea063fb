"""A GAN run's evaluation job: sample each checkpoint's generator on fixed latents, score the fakes
against the real split, and (with `baseline`) the real-vs-real rows of the train and test splits."""

from __future__ import annotations

import os
import time

from absl import logging

from jaxgan import data
from jaxgan.core import batched, parallel
from jaxgan.eval import catalog, imagesets, registry, results, sampling, scoring
from jaxgan.eval.job import Job
from jaxgan.eval.options import DEFAULT_METRICS, Options


class LatentEvaluation(Job):
    """A GAN run's job: its real set, scorer, log and fake counts, and what is still to score."""

    def __init__(self, config, method, metrics, options: Options, force: bool, workdir: str):
        metrics = metrics or DEFAULT_METRICS
        self.metrics, self.options, self.force = catalog.parse(metrics), options, force
        self.config = config
        self.params_entry = method.eval_params
        dataset, resolution = config.data.dataset, config.data.resolution
        known_channels = config.data.channels or {"mnist5k": 1, "stacked_mnist5k": 3}.get(dataset)
        # Fail fast (missing Inception weights) before opening data or building anything heavy.
        if options.feature_network != "auto" or known_channels is not None:
            scoring.resolve_network(self.metrics, options, dataset, known_channels, resolution)
        source, channels, self.num_classes = data.open_run_source(config, options.real_split)
        self.channels = channels
        network = scoring.resolve_network(self.metrics, options, dataset, channels, resolution)
        self.real = imagesets.dataset_set(
            dataset, options.real_split, config.data.data_dir, resolution, channels,
            options.num_real, options.seed, source=source,
        )  # fmt: skip
        self.counts = scoring.fake_counts(self.metrics, self.real.size, options)
        self.labelled = sampling.generator_is_conditional(config)
        scoring.check_metric_inputs(
            self.metrics, self.real.size, self.counts, self.labelled, options, channels
        )
        splits = None
        if any(m.splits for m in self.metrics):
            splits = imagesets.real_splits(
                dataset, config.data.data_dir, resolution, channels, options
            )
        self.scorer = scoring.Scorer(network, options, resolution, channels, splits)
        self.eval_dir = os.path.join(workdir, "eval")
        self.log = results.MetricsLog(os.path.join(self.eval_dir, "metrics.jsonl"))
        self.written: list[dict] = []
        self.samplers = self.inputs = None

    def identity(self, kind, step, metric, fake_name, n_fake) -> dict:
        network = self.scorer.network_identity if metric.features else None
        return results.identity(kind, step, metric, self.real.name, self.real.size, fake_name,
                                n_fake, network, self.options)  # fmt: skip

    def todo(self, step: int) -> list[registry.Metric]:
        """The metrics checkpoint `step` has no row of (all of them with --force)."""
        fake_name = f"ema_params@{step}"
        return [
            m
            for m in self.metrics
            if self.force
            or not self.log.has(
                self.identity("checkpoint", step, m, fake_name, self.counts[m.name])
            )
        ]

    def score_baseline(self) -> None:
        """Real-vs-real rows: the reference split against `--baseline_split`, each set whole."""
        if not self.options.baseline:
            return
        baseline = baseline_set(self.config, self.options, self.scorer.resolution, self.channels)
        if baseline is None:
            return
        pending = []
        for metric in self.metrics:
            row = self.identity("real_vs_real", None, metric, baseline.name, baseline.size)
            if not metric.baseline:
                logging.info("No real-vs-real %s: see its rows' real_value.", metric.name)
            elif baseline.size < metric.min_fakes(self.options):
                logging.warning("No real-vs-real %s: %s has %d images.", metric.name, baseline.name,
                                baseline.size)  # fmt: skip
            elif self.force or not self.log.has(row):
                pending.append(metric)
        identity = {"kind": "real_vs_real", "step": None}
        self.emit(self.scorer.rows(self.real, baseline, pending, identity, protocol=False))

    def _sampling(self):
        """(samplers, latents, labels, batch size, mesh): built on the first checkpoint scored."""
        if self.inputs is None:
            mesh = parallel.make_mesh()
            n_max = max(self.counts.values())
            batch_size = batched.round_up_to_devices(min(self.options.batch_size, n_max), mesh)
            z, labels = sampling.generation_inputs(
                self.config, self.num_classes, n_max, batch_size, self.options.seed
            )
            self.samplers = sampling.Samplers(self.channels, self.num_classes, mesh)
            self.inputs = (z, labels, batch_size, mesh)
        return self.inputs

    def score_checkpoint(self, step, params, meta, missing) -> list[dict]:
        start = time.perf_counter()
        z, labels, batch_size, mesh = self._sampling()
        sample = self.samplers(sampling.checkpoint_config(meta, self.config), meta)
        n = max(self.counts[m.name] for m in missing)
        images = sampling.generate(sample, params, z, labels, n, batch_size, mesh)
        fake = imagesets.ImageSet.from_arrays(
            f"ema_params@{step}", images, labels[:n] if self.labelled else None
        )
        extra = {
            "sample_batch_size": batch_size,
            "sample_time_s": round(time.perf_counter() - start, 3),
        }
        rows = []
        for row in self.scorer.rows(
            self.real, fake, missing, {"kind": "checkpoint", "step": step}, extra
        ):
            self.emit([row])
            rows.append(row)
        return rows

    def error_rows(self, step: int, missing, reason: str) -> list[dict]:
        fake_name = f"ema_params@{step}"
        return [
            results.error_row(
                self.identity("checkpoint", step, m, fake_name, self.counts[m.name]), reason
            )
            for m in missing
        ]


def baseline_set(config, options: Options, resolution: int, channels: int):
    """The `--baseline_split` of the training dataset, or None where the dataset has no splits."""
    kind, _, named_split = data.parse(config.data.dataset)
    if kind == "folder":
        logging.info("No real-vs-real baseline: folder datasets have no second split.")
        return None
    if (named_split or options.real_split) == options.baseline_split:
        logging.info("No real-vs-real baseline: --baseline_split equals the reference split.")
        return None
    dataset = imagesets.dataset_splits_name(config.data.dataset)
    try:
        return imagesets.dataset_set(
            dataset, options.baseline_split, config.data.data_dir, resolution, channels,
            options.num_real, options.seed,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as e:
        logging.warning("No real-vs-real baseline (split %r): %s", options.baseline_split, e)
        return None
