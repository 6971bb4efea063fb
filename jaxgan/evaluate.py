"""The evaluator's command line: scores a run's checkpoints, or two image sets.

  python -m jaxgan.evaluate --workdir=runs/x [--metrics=fid,kid,is,swd,ms_ssim,pr] [--steps=all]
  python -m jaxgan.evaluate --workdir=runs/x --watch            # beside a training run
  python -m jaxgan.evaluate --workdir=runs/cyclegan             # a translation run: both directions
  python -m jaxgan.evaluate --real=mnist5k:train --fake=samples.npz --metrics=fid
  python -m jaxgan.evaluate --real=mnist5k:train --save_stats=mnist5k.npz   # FID statistics file
  python -m jaxgan.evaluate --real=stats:mnist5k.npz --fake=samples.npz --metrics=fid
  python -m jaxgan.evaluate --list_metrics                      # what each metric needs

docs/evaluation.md is the manual. Where things are: `eval/runner.py` (the two
modes, and a GAN run's job), `eval/translation.py` (a translation run's job), `eval/registry.py` (what each metric declares), `eval/metrics.py` and `eval/protocols.py`
(the registered metrics), `eval/imagesets.py` (what a SPEC means: a dataset string `mnist5k[:SPLIT]`,
`tfds:NAME[:SPLIT]`, `folder:PATH`, a folder, or an .npz of uint8 images `[N, H, W(, C)]` with
optional `labels`), `eval/sampling.py` (checkpoint -> images), `eval/cache.py` (the real-feature
cache), `eval/results.py` (the row schema and the log), `eval/report.py` (plots and the summary).
"""

from __future__ import annotations

import json
import os
import sys

import jax
from absl import app, flags

from jaxgan.core import errors, parallel, paths, run_files
from jaxgan.eval import catalog
from jaxgan.eval import options as eval_options
from jaxgan.eval.options import DEFAULT_METRICS
from jaxgan.eval.runner import evaluate_sets, evaluate_workdir, save_real_statistics

FLAGS = flags.FLAGS


def main(argv):
    del argv

    run_files.quiet_library_logs()
    parallel.maybe_initialize_distributed()  # launch/: every process scores, process 0 writes
    paths.enable_compilation_cache()
    if FLAGS.list_metrics:
        print(catalog.describe())
        return
    options = eval_options.from_flags()
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
            if FLAGS.output and jax.process_index() == 0:
                os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
                with open(FLAGS.output, "a") as f:
                    f.writelines(json.dumps(r) + "\n" for r in rows)
        elif FLAGS.real and FLAGS.save_stats and not (FLAGS.fake or FLAGS.workdir):
            save_real_statistics(FLAGS.real, options)
        else:
            raise app.UsageError(
                "Give --workdir=W, or --real=SPEC and --fake=SPEC (not both), or --real=SPEC "
                "--save_stats=FILE.npz."
            )
    except (errors.UserError, FileNotFoundError) as e:  # bad input: the message says what to do
        sys.exit(f"{type(e).__name__}: {e}")  # (missing weights, data, config, a bad flag ...)


def run():
    """The `jaxgan-evaluate` console script."""
    eval_options.define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
