"""The evaluator's two jobs: score a run's checkpoints (`evaluate_workdir`, StyleGAN2-ADA's
`calc_metrics.py` / PGGAN's `evaluate_metrics`), or two image sets (`evaluate_sets`).

Workdir mode reads `W/config.json` and drives the run's *job* over its checkpoints: for a GAN
(`eval/latent.LatentEvaluation`) that samples every checkpoint asked for (`eval/sampling.py`) and scores it
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

import time
from collections.abc import Callable, Sequence

from absl import logging

from jaxgan.core import checkpoint, errors, parallel, run_files
from jaxgan.eval import (
    catalog,
    fid_stats,
    imagesets,
    report,
    results,
    sampling,
    scoring,
    translation,
)
from jaxgan.eval.latent import LatentEvaluation
from jaxgan.eval.options import Options
from jaxgan.training import registry


def job_for(workdir: str, metrics: Sequence[str] | None, options: Options, force: bool):
    """The evaluation job of `workdir`'s method: a translator's (`eval/translation.py`) or the
    latent GAN's. metrics None: the job's defaults."""
    config = sampling.load_config(workdir)
    method = registry.get(config.method)  # an unknown method fails here, before any sampling
    if method.translator is not None:
        return translation.TranslationEvaluation(config, method, metrics, options, force, workdir)
    return LatentEvaluation(config, method, metrics, options, force, workdir)


@parallel.on_local_devices()
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
    job = job_for(workdir, metrics, options, force)
    if options.save_stats:  # the reference split's FID statistics, before anything is scored
        fid_stats.save_real(options.save_stats, job.scorer, getattr(job, "real", None))
    job.score_baseline()  # the real-vs-real rows where options.baseline; a translator's identity
    ckpt = checkpoint.Checkpointer(workdir, read_only=True)
    events = results.tensorboard_events(workdir, job.config.get("tensorboard", True))
    replicated = parallel.replicated(parallel.make_mesh())
    bar = run_files.progress_bar(0, unit="ckpt", desc="evaluate") if options.progress else None
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

    def watch_ended(last_new: float) -> bool:
        done = [
            s
            for s in sampling.select_steps(ckpt.all_steps(), steps)
            if s in scored or not job.todo(s)
        ]
        # The loop marks the checkpoint it saves when the run is complete.
        if done and meta_of(max(done)).get("done"):
            logging.info("Scored the run's last checkpoint (%d); done watching.", max(done))
            return True
        if watch_timeout and time.monotonic() - last_new > watch_timeout:
            logging.info("No new checkpoint for %.0f s; done watching.", watch_timeout)
            return True
        return False

    try:
        while True:
            # Every process of a multi-process evaluator scores the same checkpoints: process 0's
            # listing and rows decide (`parallel.agree`), whatever each host saw a moment apart.
            available = parallel.agree(ckpt.all_steps())
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
                    results.write_tensorboard(events, rows)
                    del params
                    last_new = time.monotonic()
                    if watch:  # plots follow a live run; otherwise they are drawn once at the end
                        report.plot_metrics(job.log.rows, job.eval_dir)
                scored.add(step)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({r["metric"]: f"{r['value']:.4g}" for r in rows}, refresh=True)
            if not watch or parallel.agree(watch_ended(last_new)):
                break
            sleep(poll_seconds)
            job.log.reload()  # another evaluator of this workdir may have scored some meanwhile
    finally:
        if bar is not None:
            bar.close()
        ckpt.close()
        events.close()
    job.report()
    return job.written


@parallel.on_local_devices()
def evaluate_sets(
    real_spec: str, fake_spec: str, metrics: Sequence[str], options: Options
) -> list[dict]:
    """Scores the images of `fake_spec` against those of `real_spec` (`stats:FILE.npz`: against
    FID statistics, `eval/fid_stats.py`); returns the rows. `options.save_stats`: also writes the
    reals' FID statistics there."""
    metrics = catalog.parse(metrics)
    real = imagesets.stats_set(real_spec)  # None unless stats:FILE (checked in score_sets)
    if real is None:
        if options.feature_network != "auto":  # fail before reading any images
            scoring.resolve_network(metrics, options, "", None, 0)
        real = imagesets.spec_set(
            real_spec, "train", options.resolution, 0, options.num_real, options.seed
        )
        resolution, channels = real.cache_key["resolution"], real.cache_key["channels"]
    else:  # the fakes are read as the file's reals were (a file without metadata: as they are)
        resolution, channels = real.resolution, real.channels
    fake = imagesets.spec_set(
        fake_spec, "train", resolution, channels, options.num_samples, options.seed
    )
    return score_sets(real, fake, [m.name for m in metrics], options, real_spec)


@parallel.on_local_devices()
def save_real_statistics(real_spec: str, options: Options) -> None:
    """`--real=SPEC --save_stats=FILE` alone (pytorch-fid's `--save-stats`): the FID statistics of
    the reals, as two-set mode would write them, and nothing scored."""
    real = imagesets.spec_set(
        real_spec, "train", options.resolution, 0, options.num_real, options.seed
    )
    resolution, channels = real.cache_key["resolution"], real.cache_key["channels"]
    network = scoring.resolve_network(
        catalog.parse(["fid"]), options, real_spec, channels, resolution
    )
    scorer = scoring.Scorer(network, options, resolution, channels, None)
    fid_stats.save_real(options.save_stats, scorer, real)


def score_sets(
    real: imagesets.ImageSet,
    fake: imagesets.ImageSet,
    metrics: Sequence[str],
    options: Options,
    real_spec: str = "",
) -> list[dict]:
    """Scores `fake` against `real`, two sets of images of one size (`jaxgan.metrics.compute`'s
    arrays, or `evaluate_sets`' specs: `real_spec` names a dataset whose domain network is used)."""
    metrics = catalog.parse(metrics)
    stats = real if isinstance(real, imagesets.StatsSet) else None  # FID statistics, no images
    if stats is not None:
        options = fid_stats.options_for(stats, metrics, options)
    shaped = real if stats is None else fake
    key = shaped.cache_key  # a reproducible set knows its shape without reading its images
    if key:
        resolution, channels = key["resolution"], key["channels"]
    else:
        resolution, channels = shaped.images.shape[1], shaped.images.shape[3]
    needs_splits = [m.name for m in metrics if m.splits]
    if needs_splits and not real_spec:
        raise errors.ConfigError(
            f"{', '.join(needs_splits)} train(s) classifiers on a labelled dataset's splits: give "
            "the real images as a dataset string (e.g. 'mnist5k'), not as an array."
        )
    network = scoring.resolve_network(metrics, options, real_spec, channels, resolution)
    if stats is not None:
        fid_stats.check_network(stats, network, options)
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
    if options.save_stats:
        fid_stats.save_real(options.save_stats, scorer, real)
    # Each metric scores the whole given set; its row says where that departs from the paper.
    return list(scorer.rows(real, fake, metrics, {"kind": "sets", "step": None}, counts=counts))
