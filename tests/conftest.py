"""Test setup, run before the JAX backend starts (specs/jax_ecosystem.md §2.3).

* 8 simulated CPU devices, so sharding code runs as on an 8-chip host.
* One persistent compilation cache for the session: several tests compile the same smoke-sized
  train step (a run, its resume, the golden step); XLA:CPU takes seconds per compile.
"""

import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="jaxgan-test-xla-"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
