"""What `python -m jaxgan.bench` times of a method: its compiled train step on synthetic inputs of
the config's shapes (`BenchStep`, built by the method's `Method.bench_step`).

For a config at its real size the step is first built as shapes only (`abstract_step`) and compiled
from them (`compile_step`): its parameter counts, XLA's memory and FLOP figures and the compile time
come before a byte of state is allocated, so a step that cannot fit is refused (`fits`) instead of
run out of memory. `available_memory_bytes` and `peak_memory` are the device's side of that check.
"""

from __future__ import annotations

import dataclasses
import resource
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np


def count_params(tree) -> int:
    """Number of parameters (array elements) in a pytree."""
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


class BenchStep:
    """A compiled train step and what it runs on, built by `Method.bench_step` for
    `python -m jaxgan.bench`: `fn(state, *inputs) -> (state, metrics)`.

    The state is donated at each call, so the timed steps chain through it; every call runs on the
    same synthetic batch (the values do not change the work). `images_per_step` is what one call
    counts as train img/s; `param_counts` holds each network side's parameters ({entry: count} of
    `param_entries` of the state, every network of a side together, as the PyTorch twins print
    them), counted here, before the timed steps donate the state.
    """

    def __init__(
        self,
        fn,
        state,
        inputs: tuple,
        images_per_step: int,
        param_entries: tuple[str, ...] = ("g_params", "d_params"),
    ):
        self.fn, self.state, self.inputs = fn, state, inputs
        self.images_per_step = images_per_step
        self.param_counts = {entry: count_params(state[entry]) for entry in param_entries}

    def warm_up(self) -> float:
        """Seconds of the first step, compilation included."""
        return self.time(1)

    def time(self, steps: int) -> float:
        """Seconds of `steps` steps, waited for only at the end."""
        start = time.perf_counter()
        for _ in range(steps):
            self.state, metrics = self.fn(self.state, *self.inputs)
        jax.block_until_ready(metrics)
        return time.perf_counter() - start

    def seconds_per_step(self, steps: int) -> list[float]:
        """Each of `steps` steps' seconds, each waited for (a median needs them one by one)."""
        return [self.time(1) for _ in range(steps)]

    def flops(self) -> float:
        """XLA's cost analysis of one step: floating-point operations (0 where it gives none)."""
        return compiled_flops(self.fn.lower(self.state, *self.inputs).compile())


def compiled_flops(compiled) -> float:
    """Floating-point operations of one call of a compiled program, by XLA's cost analysis (0
    where it gives none)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float((cost or {}).get("flops", 0.0))


def abstract_step(build: Callable[[], BenchStep]) -> BenchStep:
    """`build()`'s step with its state and inputs as shapes (`jax.eval_shape`): the networks'
    initialisation is traced, not run, so parameter counts and the compiled program come without
    allocating the state (23M-parameter networks included)."""
    built = []

    def shapes():
        step = build()
        built.append(step)
        return step.state, step.inputs

    state, inputs = jax.eval_shape(shapes)
    step = built[0]
    step.state, step.inputs = state, inputs
    return step


@dataclasses.dataclass(frozen=True)
class CompiledStep:
    """A step compiled from its shapes: the executable (called like `BenchStep.fn`), the seconds
    of tracing (on CPU this includes the convolution autotune of shapes not timed before) and of
    XLA's compile, the bytes the program needs (None where XLA gives no memory analysis) and its
    floating-point operations."""

    executable: Any
    trace_s: float
    compile_s: float
    needed_bytes: int | None
    flops: float


def needed_bytes(memory) -> int | None:
    """Bytes a compiled program holds while it runs, from XLA's `memory_analysis()`: arguments and
    outputs (less the donated arguments the outputs reuse), temporaries and the code."""
    if memory is None:
        return None
    return int(
        memory.argument_size_in_bytes
        + memory.output_size_in_bytes
        - memory.alias_size_in_bytes
        + memory.temp_size_in_bytes
        + memory.generated_code_size_in_bytes
    )


def compile_step(step: BenchStep) -> CompiledStep:
    """Lowers and compiles `step.fn` for `step`'s state and inputs (shapes are enough)."""
    start = time.perf_counter()
    lowered = step.fn.lower(step.state, *step.inputs)
    traced = time.perf_counter()
    compiled = lowered.compile()
    done = time.perf_counter()
    return CompiledStep(
        executable=compiled,
        trace_s=traced - start,
        compile_s=done - traced,
        needed_bytes=needed_bytes(compiled.memory_analysis()),
        flops=compiled_flops(compiled),
    )


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def _cgroup_headroom() -> int | None:
    """memory.max - memory.current of this process's cgroup (v2), None where there is no limit: a
    container can have less than the machine's free memory."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            current = int(f.read())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else int(limit) - current


def available_memory_bytes(device) -> int | None:
    """Memory a step can still take on `device`: an accelerator's limit less what is in use, a
    CPU's available host memory (/proc/meminfo, within the cgroup's limit); None where unknown."""
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
        return None
    known = [b for b in (_meminfo_available(), _cgroup_headroom()) if b is not None]
    return min(known) if known else None


def fits(needed: int | None, available: int | None) -> bool:
    """Whether a program needing `needed` bytes fits in `available` (unknown either way: it is
    tried)."""
    return needed is None or available is None or needed <= available


def reset_peak_rss() -> bool:
    """Resets the process's peak resident set size to its current one (Linux /proc/self/clear_refs,
    '5'), so the next `peak_memory` reading is one preset's; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory(device) -> tuple[int, str]:
    """(bytes, what they are): an accelerator's peak bytes in use (XLA's allocator counts it since
    the process started), else the host's peak RSS (`resource.getrusage`, since `reset_peak_rss`)."""
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return int(stats["peak_bytes_in_use"]), "device peak"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "host RSS peak"


def random_images(count: int, size: int, channels: int, seed: int = 0) -> np.ndarray:
    """uint8 [count, size, size, channels], uniform: timing inputs (their values do not matter)."""
    return np.random.default_rng(seed).integers(
        0, 256, (count, size, size, channels), dtype=np.uint8
    )
