"""Test setup, run before the JAX backend starts (specs/jax_ecosystem.md §2.3).

* 8 simulated CPU devices, so sharding code runs as on an 8-chip host.
* One persistent compilation cache for the session, also inherited (through the environment) by
  the `python -m jaxgan.main` subprocesses some tests start: several tests compile the same
  smoke-sized train step, and XLA:CPU takes seconds per compile.
"""

import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxgan-test-xla-")
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
