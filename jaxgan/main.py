"""Train a GAN: `python -m jaxgan.main --config=wgan_gp[:preset] --workdir=runs/x`.

Kept short on purpose (Flax examples' `main.py`): flags, the optional multi-process start, the
resolved config printed, then the run loop (`jaxgan.training.loop`), which trains `config.method` from the
registry. Run the same command on every host of a pod (see launch/); a workdir with checkpoints
resumes. A user error (bad config, missing data, no readable checkpoint, a diverged run) prints its
message without a traceback and exits 1; SIGTERM checkpoints and exits 0.
"""

from __future__ import annotations

import sys

import jax
from absl import app, flags, logging

from jaxgan import configs
from jaxgan.core import cpu_backend, errors, parallel, paths, run_files
from jaxgan.training import loop, registry

configs.define_config_flag()
flags.DEFINE_string("workdir", None, "Where checkpoints, samples and metrics.jsonl go.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def main(argv):
    del argv
    run_files.quiet_library_logs()
    try:
        registry.use_cpu_convolutions_of(FLAGS.config)  # before anything starts JAX's backend
        paths.enable_compilation_cache()
        parallel.maybe_initialize_distributed()
        config = FLAGS.config
        logging.info(
            "JAX %s on %d %s device(s), %d process(es); %s.",
            jax.__version__,
            jax.device_count(),
            jax.default_backend(),
            jax.process_count(),
            cpu_backend.describe(),
        )
        if jax.process_index() == 0:
            print(config, file=sys.stderr)
        loop.train_and_evaluate(config, FLAGS.workdir)
    except errors.UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


def run():
    """The `jaxgan-train` console script."""
    app.run(main)


if __name__ == "__main__":
    run()
