"""One 1-D `data` mesh over every device of every process: parameters replicated, batches sharded.

The same jitted step runs on one CPU, 8 simulated devices, a GPU or a TPU pod: only the mesh and
the shardings change. Under `jit`, reductions over the batch (BatchNorm statistics, minibatch
stddev, loss means) are global over all devices, which is why a step on N devices equals the same
global batch on one. `jax.distributed.initialize()` (JAX's own multi-process runtime) joins the
hosts when a launcher asks for it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from absl import logging
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxgan.core import errors

DATA_AXIS = "data"
# Set inside `on_local_devices()`: meshes span this process's devices only.
_local_devices_only = False


def maybe_initialize_distributed() -> None:
    """Joins a multi-process run when the launcher set JAXGAN_DISTRIBUTED=1 (see launch/).

    With no arguments `jax.distributed.initialize` discovers the coordinator on TPU pods, SLURM and
    Open MPI; elsewhere set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID.
    """
    if os.environ.get("JAXGAN_DISTRIBUTED", "0") not in ("1", "true", "True"):
        return
    kwargs = {}
    if "JAX_COORDINATOR_ADDRESS" in os.environ:
        kwargs = dict(
            coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
            process_id=int(os.environ["JAX_PROCESS_ID"]),
        )
    # Cross-process collectives for CPU devices (it only configures the CPU client, so it is
    # harmless on GPU/TPU hosts). No backend query here: initialize() must come before any.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)
    logging.info(
        "Process %d of %d, %d local / %d global devices.",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh named `data` over the first `num_devices` devices (default: all of them; this
    process's own inside `on_local_devices()`)."""
    devices = jax.local_devices() if _local_devices_only else jax.devices()
    n = num_devices or len(devices)
    if n > len(devices):
        raise errors.ConfigError(f"Asked for {n} devices but only {len(devices)} are visible.")
    # Auto axes: shardings propagate through the step (the 0.10 default, Explicit, would make every
    # reshape of a sharded batch spell out its sharding).
    return jax.make_mesh(
        (n,), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices[:n]
    )


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def sharded_on(mesh: jax.sharding.Mesh, axis: int = 0) -> NamedSharding:
    """Shards array axis `axis` over the data axis; other axes replicated."""
    return NamedSharding(mesh, P(*([None] * axis), DATA_AXIS))


def check_divisible(batch_size: int, mesh: jax.sharding.Mesh, name: str = "batch_size") -> None:
    n = mesh.devices.size
    if batch_size % n:
        lower, upper = batch_size - batch_size % n, batch_size + n - batch_size % n
        raise errors.ConfigError(
            f"config.{name}={batch_size} is not divisible by the {n} devices of the mesh; "
            f"use a multiple of {n} (e.g. {lower or upper} or {upper})."
        )


@contextlib.contextmanager
def on_local_devices() -> Iterator[None]:
    """Meshes made inside span this process's devices only.

    For the evaluator in a multi-process run: every process scores on its own devices, with no
    collective between processes inside a computation, so no process waits on another's batches
    (`agree` keeps their decisions the same). One process: no change.
    """
    global _local_devices_only
    before, _local_devices_only = _local_devices_only, True
    try:
        yield
    finally:
        _local_devices_only = before


def agree(value: Any) -> Any:
    """Process 0's `value` (anything JSON can hold), returned on every process.

    Processes that decide alike take the same branches, so they meet at the same collectives:
    e.g. which checkpoints a poll found, which a file listed at slightly different times on each
    host. Every process must call it at the same point. One process: `value` itself.
    """
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils  # only multi-process runs need it

    encoded = np.frombuffer(json.dumps(value).encode(), np.uint8)
    size = int(multihost_utils.broadcast_one_to_all(np.int32(encoded.size)))
    buffer = encoded if jax.process_index() == 0 else np.zeros(size, np.uint8)
    received = multihost_utils.broadcast_one_to_all(buffer)
    return json.loads(np.asarray(received, np.uint8).tobytes())
