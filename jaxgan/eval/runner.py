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

from jaxgan.core import checkpoint, parallel, run_files
from jaxgan.eval import catalog, imagesets, report, sampling, scoring, translation
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
    job.score_baseline()  # the real-vs-real rows where options.baseline; a translator's identity
    ckpt = checkpoint.Checkpointer(workdir, read_only=True)
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


def evaluate_sets(
    real_spec: str, fake_spec: str, metrics: Sequence[str], options: Options
) -> list[dict]:
    """Scores the images of `fake_spec` against those of `real_spec`; returns the rows."""
    metrics = catalog.parse(metrics)
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
