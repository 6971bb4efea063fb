"""Where a compiled step's time goes: XLA's per-operation profile, by instruction and by source.

  python -m jaxgan.bench --config=wgan_gp --profile [--steps=10] [--profile_top=15]

The step (`benchmark.BenchStep`, as `--config` times it) runs `steps` times inside
`jax.profiler.trace`; the trace's host plane holds one event per executed XLA instruction (on CPU,
each thunk: a fusion, a convolution, a dot, a copy), on whichever thread ran it. Their durations
are summed per instruction over every thread (CPU time, so an instruction spread over both cores
counts both), divided by `steps`, and joined to the compiled module's text, where each instruction
carries the JAX source it came from (`metadata={op_name="jit(step)/transpose(jvp(Critic_0))/..."}`;
a fusion without one takes the first named instruction of the computation it calls).

From the op_name, two things: the *pass* — how many `transpose(` wrap it: 0 a forward
computation, 1 a gradient, 2 the gradient of a gradient (WGAN-GP's penalty differentiated again) —
and the *scope*, the Flax module path (`Critic_0/Conv_1`) with JAX's transformations removed.
The report lists the instructions that take the most time, then the totals per pass, per scope and
per kind of instruction (convolution, fusion, dot, copy, ...). Its first line compares the
instructions' CPU time with the wall time: how many of the cores the step kept busy on average
(XLA:CPU runs an instruction on one core unless it splits it, and runs independent instructions
side by side only where its schedule allows). A convolution run on XLA's Eigen thread pool
(`core.cpu_backend`) is traced as its dispatch and a completion marker: it is counted by the span
between them, once, whatever number of cores it kept busy.
"""

from __future__ import annotations

import collections
import glob
import os
import re
import tempfile
import time

import jax

from jaxgan.training.benchmark import BenchStep

INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = .*?\b([a-z][\w\-]*)\(")
COMPUTATION = re.compile(r"^(?:ENTRY )?%([\w.\-]+) .*\{\s*$")
OP_NAME = re.compile(r'op_name="([^"]*)"')
CALLS = re.compile(r"calls=%([\w.\-]+)")
HEAVY = ("dot", "convolution")  # the instructions a fusion is named by
END_MARKER = "end: "  # the trace's marker of an instruction's completion
ASYNC_SPAN_RATIO = 1.5  # dispatch-to-completion this many times its event's time: asynchronous
WRAPPED = re.compile(r"^(\w+)\((.*)\)$")  # jvp(Critic), transpose(jvp(Critic)), jit(step), ...


def instruction_sources(hlo_text: str) -> dict[str, tuple[str, str]]:
    """{instruction: (kind, op_name)} of every instruction in a compiled module's text.

    A fusion is known by the dot or convolution it holds, when it holds one (XLA:CPU fuses a
    convolution's matmul with the reductions and element-wise work around it, whose op_name the
    fusion may carry): kind `fusion:dot`, that instruction's op_name. Another fusion (or call)
    without an op_name of its own takes the first one in the computation it calls.
    """
    kinds, names, calls, first_in, heavy_in = {}, {}, {}, {}, {}
    computation = None
    for line in hlo_text.splitlines():
        if header := COMPUTATION.match(line):
            computation = header.group(1)
            continue
        if not (match := INSTRUCTION.match(line)):
            continue
        instruction, kind = match.groups()
        kinds[instruction] = kind
        if called := CALLS.search(line):
            calls[instruction] = called.group(1)
        if op_name := OP_NAME.search(line):
            names[instruction] = op_name.group(1)
            first_in.setdefault(computation, op_name.group(1))
            if kind in HEAVY:
                heavy_in.setdefault(computation, (kind, op_name.group(1)))
    sources = {}
    for instruction, kind in kinds.items():
        called = calls.get(instruction)
        if called in heavy_in:
            heavy_kind, op_name = heavy_in[called]
            sources[instruction] = (f"{kind}:{heavy_kind}", op_name)
        else:
            sources[instruction] = (kind, names.get(instruction) or first_in.get(called, ""))
    return sources


def pass_of(op_name: str) -> str:
    """forward / gradient / gradient of gradient, by the `transpose(` wrappers in an op_name."""
    depth = op_name.count("transpose(")
    return {0: "forward", 1: "gradient"}.get(depth, "gradient of gradient" if depth == 2 else
                                             f"{depth}th-order gradient")  # fmt: skip


def unwrap(component: str) -> str:
    """A module name without the transformations around it: 'transpose(jvp(Critic))' -> 'Critic';
    a jit's function name and an empty 'transpose()' -> ''."""
    while match := WRAPPED.match(component):
        if match.group(1) == "jit":
            return ""
        component = match.group(2)
    return component


def scope_of(op_name: str) -> str:
    """The Flax module path of an op_name (`Critic/Conv1`): its components unwrapped, without the
    primitive (the last component); "(outside the networks)" when none is left."""
    parts = [unwrap(p) for p in op_name.split("/")[:-1]]
    return "/".join(p for p in parts if p) or "(outside the networks)"


def event_seconds(trace_dir: str) -> tuple[collections.Counter, collections.Counter]:
    """({event name: seconds summed over every thread}, {instruction: seconds from its dispatch to
    its completion}) of the trace's host plane, Python's own line left out.

    An instruction's events are named as the instruction; the runtime's are not
    (`ThunkExecutor::Execute`, ...). An instruction XLA:CPU runs asynchronously on its Eigen thread
    pool (a convolution with `core.cpu_backend`'s `eigen`) has an event for its dispatch only, and a
    marker `end: NAME` when its completion runs; the second counter holds the span between the two,
    which also covers the work that completion started inline (an upper bound of its wall time).
    """
    from jax.profiler import ProfileData

    totals: collections.Counter = collections.Counter()
    starts: dict[str, list[int]] = collections.defaultdict(list)
    ends: list[tuple[str, int]] = []
    for path in glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True):
        for plane in ProfileData.from_file(path).planes:
            if plane.name != "/host:CPU":
                continue
            for line in plane.lines:
                if line.name == "python":
                    continue
                for event in line.events:
                    totals[event.name] += event.duration_ns * 1e-9
                    starts[event.name].append(event.start_ns)
                    if event.name.startswith(END_MARKER):
                        ends.append((event.name[len(END_MARKER) :], event.start_ns))
    spans: collections.Counter = collections.Counter()
    for name, end in ends:
        dispatched = [start for start in starts.get(name, ()) if start <= end]
        if dispatched:
            spans[name] += (end - max(dispatched)) * 1e-9
    return totals, spans


def profile(step: BenchStep, steps: int) -> dict:
    """{"rows": [{instruction, kind, pass, scope, op_name, ms, async}], "steps", "wall_ms",
    "cores"}: each instruction's milliseconds per step, most first: CPU time summed over threads,
    or for an asynchronous one (`async`) its span from dispatch to completion (wall time, counted
    once). Trace events that are not one of the step's instructions are left out. The step should
    be warmed up."""
    sources = instruction_sources(step.fn.lower(step.state, *step.inputs).compile().as_text())
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir)
        start = time.perf_counter()
        step.time(steps)
        wall = time.perf_counter() - start
        jax.profiler.stop_trace()
        seconds, spans = event_seconds(trace_dir)
    rows = []
    for instruction, total in seconds.items():
        if instruction not in sources:
            continue
        kind, op_name = sources[instruction]
        # Every instruction has an end marker; a synchronous one's comes as its event ends.
        asynchronous = spans.get(instruction, 0.0) > ASYNC_SPAN_RATIO * total
        rows.append({
            "instruction": instruction,
            "kind": kind,
            "pass": pass_of(op_name),
            "scope": scope_of(op_name),
            "op_name": op_name,
            "ms": 1e3 * (spans[instruction] if asynchronous else total) / steps,
            "async": asynchronous,
        })  # fmt: skip
    rows.sort(key=lambda row: -row["ms"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"rows": rows, "steps": steps, "wall_ms": 1e3 * wall / steps, "cores": cores}


def totals_by(rows: list[dict], key: str) -> list[tuple[str, float]]:
    """[(value of `key`, ms)] summed over rows, most first."""
    totals: collections.Counter = collections.Counter()
    for row in rows:
        totals[row[key]] += row["ms"]
    return totals.most_common()


def report(table: dict, top: int = 15) -> str:
    """The profile as text: the top instructions, then the totals per pass, scope and kind."""
    rows = table["rows"]
    cpu_ms = sum(row["ms"] for row in rows)
    asynchronous = [row for row in rows if row.get("async")]
    lines = [
        f"{table['wall_ms']:.1f} ms per step (wall, under the profiler), {cpu_ms:.1f} ms of CPU in "
        f"{len(rows)} XLA instructions, {table['steps']} steps: on average "
        f"{cpu_ms / table['wall_ms']:.2f} of the {table['cores']} cores busy",
    ]
    if asynchronous:
        lines.append(
            f"of which {sum(row['ms'] for row in asynchronous):.1f} ms in {len(asynchronous)} "
            "instructions run on XLA's Eigen thread pool, counted once from dispatch to completion "
            "(their cores are not seen)"
        )
    lines += [
        "",
        f"{'ms':>8} {'%':>5}  {'kind':<18} {'pass':<21} instruction  (source)",
    ]
    for row in rows[:top]:
        lines.append(
            f"{row['ms']:8.2f} {100 * row['ms'] / cpu_ms:5.1f}  {row['kind']:<18} "
            f"{row['pass']:<21} {row['instruction']}  ({row['op_name'] or 'no source'})"
        )
    for key in ("pass", "scope", "kind"):
        lines += ["", f"by {key}:"]
        lines += [
            f"{ms:8.2f} {100 * ms / cpu_ms:5.1f}  {value}"
            for value, ms in totals_by(rows, key)[:top]
        ]
    return "\n".join(lines)
