"""What the evaluator drives over a run's checkpoints: a job (`eval/runner.evaluate_workdir`).

A GAN run's job is `eval/latent.LatentEvaluation`; a translation run's is
`eval/translation.TranslationEvaluation`.
"""

from __future__ import annotations

from absl import logging

from jaxgan.eval import report


def log_row(row: dict) -> None:
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
            log_row(row)

    def report(self) -> None:
        report.plot_metrics(self.log.rows, self.eval_dir)
        report.print_summary(self.log.rows, [m.name for m in self.metrics])
