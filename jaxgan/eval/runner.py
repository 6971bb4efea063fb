"""The evaluator's two jobs: score a run's checkpoints (`evaluate_workdir`, StyleGAN2-ADA's
`calc_metrics.py` / PGGAN's `evaluate_metrics`, metrics.md §9), or two image sets (`evaluate_sets`).

Workdir mode reads `W/config.json` and drives the run's *job* over its checkpoints: for a GAN
(`LatentEvaluation`) that samples every checkpoint asked for (`eval/sampling.py`) and scores it
against the real split; for a method with a `translator` (`eval/translation.py`) it translates
each domain's test images and scores them against the other domain's. Each job's rows go to
`W/eval/metrics.jsonl` (`eval/results.py`), a row
already there is skipped unless `force`, which replaces it. With `baseline` the real-vs-real
numbers (train split vs test split, same code and network) are rows too. `watch` keeps polling for
new checkpoints until the one the run loop marks `done` is scored, or `watch_timeout` seconds pass
without a new one. A checkpoint that cannot be read gets error rows (retried by the next call);
one deleted before it is read (the trainer keeps only its last few) is skipped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from absl import logging

from jaxgan.eval import imagesets, registry, report, results, sampling, scoring
from jaxgan.eval.options import Options

DEFAULT_METRICS = ("fid", "kid", "is", "swd", "ms_ssim", "pr")  # a GAN run's; see job_for


def _log_row(row: dict) -> None:
    if row["value"] is not None:  # an error row's warning was logged once for all its metrics
        step = row["step"] if row["step"] is not None else ""
        logging.info("%s %s: %s = %.6g (%s vs %s, %d fakes)", row["kind"], step, row["metric"],
                     row["value"], row["real"], row["fake"], row["n_fake"])  # fmt: skip


class Job:
    """What `evaluate_workdir` drives over a run's checkpoints. A job has `metrics`, `log` (its
    `results.MetricsLog`), `eval_dir`, `written` and `params_entry` (the state entry a checkpoint's
    generators are restored from), and answers todo(step) (what checkpoint `step` lacks),
    score_baseline(), score_checkpoint(step, params, meta, missing) and error_rows(step, missing,
    reason). `LatentEvaluation` (a GAN's) and `translation.TranslationEvaluation` are the two."""

    def emit(self, rows) -> None:
        for row in rows:
            self.log.write(row)
            self.written.append(row)
            _log_row(row)

    def report(self) -> None:
        report.plot_metrics(self.log.rows, self.eval_dir)
        report.print_summary(self.log.rows, [m.name for m in self.metrics])


class LatentEvaluation(Job):
    """A GAN run's job: its real set, scorer, log and fake counts, and what is still to score."""

    def __init__(self, config, method, metrics, options: Options, force: bool, workdir: str):
        from jaxgan import data

        metrics = metrics or DEFAULT_METRICS
        self.metrics, self.options, self.force = registry.parse(metrics), options, force
        self.config = config
        self.params_entry = method.eval_params
        dataset, resolution = config.data.dataset, config.data.resolution
        known_channels = config.data.channels or {"mnist5k": 1, "stacked_mnist5k": 3}.get(dataset)
        # Fail fast (missing Inception weights) before opening data or building anything heavy.
        if options.feature_network != "auto" or known_channels is not None:
            scoring.resolve_network(self.metrics, options, dataset, known_channels, resolution)
        source = data.open_source(
            dataset, options.real_split, config.data.data_dir, config.data.channels or None
        )
        self.num_classes = source.num_classes
        self.channels = channels = config.data.channels or source.channels
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
        from jaxgan import parallel

        if self.inputs is None:
            mesh = parallel.make_mesh()
            n_max = max(self.counts.values())
            devices = mesh.devices.size
            batch_size = -(-min(self.options.batch_size, n_max) // devices) * devices
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


def job_for(workdir: str, metrics: Sequence[str] | None, options: Options, force: bool):
    """The evaluation job of `workdir`'s method: a translator's (`eval/translation.py`) or the
    latent GAN's. metrics None: the job's defaults."""
    from jaxgan import methods

    config = sampling.load_config(workdir)
    method = methods.get(config.method)  # an unknown method fails here, before any sampling
    if method.translator is not None:
        from jaxgan.eval import translation

        return translation.TranslationEvaluation(config, method, metrics, options, force, workdir)
    return LatentEvaluation(config, method, metrics, options, force, workdir)


def evaluate_workdir(
    workdir: str,
    metrics: Sequence[str] | None,
    options: Options,
    steps: str = "all",
    force: bool = False,
    watch: bool = False,
    poll_seconds: float = 60.0,
    watch_timeout: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[dict]:
    """Scores `workdir`'s checkpoints; returns the rows written (also in W/eval/metrics.jsonl).
    metrics None: the job's defaults (a GAN's `DEFAULT_METRICS`; a translation run's)."""
    from jaxgan import checkpoint, parallel
    from jaxgan import logging as run_logging

    job = job_for(workdir, metrics, options, force)
    job.score_baseline()  # the real-vs-real rows where options.baseline; a translator's identity
    ckpt = checkpoint.Checkpointer(workdir, read_only=True)
    replicated = parallel.replicated(parallel.make_mesh())
    bar = run_logging.progress_bar(0, unit="ckpt", desc="evaluate") if options.progress else None
    scored: set[int] = set()  # scored, or found unreadable, by this call: not retried each poll
    metas: dict[int, dict] = {}
    last_new = time.monotonic()

    def meta_of(step: int) -> dict:
        """The meta of checkpoint `step` ({} where it cannot be read: not the run's last, then)."""
        if step not in metas:
            try:
                metas[step] = ckpt.restore_meta(step)
            except checkpoint.UnreadableCheckpoint:
                return {}
        return metas[step]

    try:
        while True:
            available = ckpt.all_steps()
            if not available and not watch:
                raise FileNotFoundError(f"No checkpoints in {ckpt.directory}.")
            pending = [
                (s, job.todo(s)) for s in sampling.select_steps(available, steps) if s not in scored
            ]
            pending = [(s, missing) for s, missing in pending if missing]
            if bar is not None and pending:
                bar.total += len(pending)
                bar.refresh()
            for step, missing in pending:
                try:
                    params, meta = ckpt.restore_state_entry(step, job.params_entry, replicated)
                except checkpoint.UnreadableCheckpoint as e:
                    if step not in ckpt.all_steps():  # the trainer's keep_last rotation
                        logging.warning(
                            "Checkpoint %d was deleted before it could be scored.", step
                        )
                        continue
                    reason = " ".join(str(e).split())  # one line, whatever the libraries said
                    logging.warning("Checkpoint %d is unreadable, not scored: %s", step, reason)
                    job.emit(job.error_rows(step, missing, reason))
                    rows = []
                else:
                    metas[step] = meta
                    rows = job.score_checkpoint(step, params, meta, missing)
                    del params
                    last_new = time.monotonic()
                    if watch:  # plots follow a live run; otherwise they are drawn once at the end
                        report.plot_metrics(job.log.rows, job.eval_dir)
                scored.add(step)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({r["metric"]: f"{r['value']:.4g}" for r in rows}, refresh=True)
            if not watch:
                break
            done = [
                s
                for s in sampling.select_steps(ckpt.all_steps(), steps)
                if s in scored or not job.todo(s)
            ]
            # The loop marks the checkpoint it saves when the run is complete.
            if done and meta_of(max(done)).get("done"):
                logging.info("Scored the run's last checkpoint (%d); done watching.", max(done))
                break
            if watch_timeout and time.monotonic() - last_new > watch_timeout:
                logging.info("No new checkpoint for %.0f s; done watching.", watch_timeout)
                break
            sleep(poll_seconds)
            job.log.reload()  # another evaluator of this workdir may have scored some meanwhile
    finally:
        if bar is not None:
            bar.close()
        ckpt.close()
    job.report()
    return job.written


def baseline_set(config, options: Options, resolution: int, channels: int):
    """The `--baseline_split` of the training dataset, or None where the dataset has no splits."""
    from jaxgan import data

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


def evaluate_sets(
    real_spec: str, fake_spec: str, metrics: Sequence[str], options: Options
) -> list[dict]:
    """Scores the images of `fake_spec` against those of `real_spec`; returns the rows."""
    metrics = registry.parse(metrics)
    if options.feature_network != "auto":  # fail before reading any images
        scoring.resolve_network(metrics, options, "", None, 0)
    real = imagesets.spec_set(
        real_spec, "train", options.resolution, 0, options.num_real, options.seed
    )
    resolution, channels = real.cache_key["resolution"], real.cache_key["channels"]
    fake = imagesets.spec_set(
        fake_spec, "train", resolution, channels, options.num_samples, options.seed
    )
    network = scoring.resolve_network(metrics, options, real_spec, channels, resolution)
    labelled = not any(m.labels for m in metrics) or (
        fake.labels is not None
        and (real.labels is not None or "class_fid" not in [m.name for m in metrics])
    )
    counts = {m.name: fake.size for m in metrics}  # a given set is scored whole
    # Paired metrics take the two sets in their order (folders: sorted file names) as the pairs.
    scoring.check_metric_inputs(metrics, real.size, counts, labelled, options, channels, True)
    splits = None
    if any(m.splits for m in metrics):
        splits = imagesets.spec_splits(real_spec, resolution, channels, options)
    scorer = scoring.Scorer(network, options, resolution, channels, splits)
    # Each metric scores the whole given set; its row says where that departs from the paper.
    return list(scorer.rows(real, fake, metrics, {"kind": "sets", "step": None}, counts=counts))
