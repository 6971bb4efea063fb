"""Fault injection: a run SIGKILLed N times must end exactly where an uninterrupted run ends.

  python -m jaxgan.chaos --config=wgan_gp:smoke --kills=3 [--steps=S] [--seed=0]
      [--workdir=DIR] [--watch_eval]

1. Trains CONFIG for --steps steps in DIR/straight, uninterrupted: `python -m jaxgan.main` in a
   subprocess, with a checkpoint every 2 steps, a sample grid every 3 and a metrics row every step.
2. Trains it again in DIR/killed, SIGKILLing it N times and restarting it after each kill. The
   moments rotate between: a random time while it steps; a checkpoint write in progress (Orbax's
   `checkpoints/*tmp*` directory exists); a sample PNG write in progress (`samples/tmp*.png`). A
   start with k kills to go is killed within the first 1/(k+1) of its expected remaining time, so
   every kill lands before the end; a write not seen by then falls back to a kill at that time.
   A kill is survived when the next start resumes from the newest complete checkpoint (from 0 when
   there was none) and the final start exits 0.
3. Compares the newest checkpoints' `state` (max |a - b| over all leaves), `metrics.jsonl` (same
   steps, equal values but for wall-clock keys; torn lines are reported and skipped) and the sample
   PNGs (same bytes).
4. --watch_eval: runs `jaxgan.evaluate --watch --metrics=swd` beside the killed run; it must exit 0
   having scored the final checkpoint.

Prints a line per kill, a table of the kills, notes and failures, and ends with the two lines
`kills_survived: K/N` and `max_param_diff: X`; exits 1 unless every kill was survived, X == 0 and
metrics, samples and the evaluator agree. Every process's output is kept in DIR/logs/; they share
a persistent XLA cache (DIR/xla-cache), so restarts skip compilation. --seed seeds the kill moments.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from jaxgan import configs
from jaxgan.core import checkpoint, run_files

FLAGS = flags.FLAGS

# Many checkpoint and sample writes in a ~40-step run: many moments to kill it at.
RUN_OVERRIDES = (
    "--config.checkpoint_every=2 --config.sample_every=3 --config.log_every=1 "
    "--config.keep_last=3 --config.tensorboard=False"
).split()
EVAL_FLAGS = (
    "--watch --metrics=swd --num_samples=64 --num_real=64 --poll_seconds=1 --watch_timeout=120"
).split()
KINDS = ("random", "checkpoint", "png")  # kill moments, in rotation
# An Orbax save sits in its tmp directory only briefly and save_png's file more briefly still:
# polls this frequent see them (slower polls missed most PNG writes; docs/performance.md).
POLL_S = {"checkpoint": 0.005, "png": 0.001}
START_TIMEOUT_S = 900.0  # a cold start compiles first, slowly on a busy CPU
EVAL_TIMEOUT_S = 300.0
TIMING_KEY = re.compile(r"(_s$|time|elapsed)")  # img_per_s, elapsed_s, sample_time_s: wall clock


# --- Pure helpers ---------------------------------------------------------------------------------
def read_metrics(path: str) -> tuple[list[dict], list[int]]:
    """(rows, numbers of the lines that do not parse): a bad line of `metrics.jsonl` is one the
    trainer left, a row torn by a kill mid-write."""

    return run_files.parse_jsonl(path)


def compare_metrics(straight: list[dict], killed: list[dict], limit: int = 5) -> list[str]:
    """What differs (at most `limit` lines): the steps logged, then each non-timing value."""
    a_steps, b_steps = [r.get("step") for r in straight], [r.get("step") for r in killed]
    diffs = []
    if a_steps != b_steps:
        diffs.append(
            f"metrics steps differ: killed run lacks {sorted(set(a_steps) - set(b_steps))}, adds "
            f"{sorted(set(b_steps) - set(a_steps))}, repeats "
            f"{sorted({s for s in b_steps if b_steps.count(s) > 1})}"
        )
    killed_at = {r.get("step"): r for r in killed}
    for a in straight:
        b = killed_at.get(a.get("step"), {})
        for key in sorted(set(a) | set(b)):
            x, y = a.get(key), b.get(key)
            if not (TIMING_KEY.search(key) or x == y):
                diffs.append(f"metrics step {a.get('step')} {key}: straight {x!r}, killed {y!r}")
    return diffs[:limit]


def max_abs_diff(a, b) -> float:
    """max |a - b| over the leaves of two pytrees of arrays, in float64; inf if the trees differ."""
    import jax
    import numpy as np

    def leaf(x, y) -> float:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        return float(np.max(np.abs(x - y), initial=0.0)) if x.shape == y.shape else math.inf

    try:
        return max(jax.tree.leaves(jax.tree.map(leaf, a, b)), default=0.0)
    except ValueError:  # different keys or structure
        return math.inf


def compare_samples(straight: str, killed: str) -> list[str]:
    """What differs between two folders of sample PNGs (names, then bytes), temporary files aside."""
    names = [
        sorted(n for n in listdir(d) if not is_temporary("png", n)) for d in (straight, killed)
    ]
    if names[0] != names[1]:
        return [f"sample files differ: {sorted(set(names[0]) ^ set(names[1]))}"]
    same = lambda n: read(os.path.join(straight, n), "rb") == read(os.path.join(killed, n), "rb")
    differ = [n for n in names[0] if not same(n)]
    return (
        [f"{len(differ)} of {len(names[0])} sample PNGs differ, from {differ[0]}"] if differ else []
    )


def is_temporary(kind: str, name: str) -> bool:
    """Whether `name` is a write in progress: an Orbax checkpoint tmp directory or save_png's file."""
    return (
        "tmp" in name if kind == "checkpoint" else name.startswith("tmp") and name.endswith(".png")
    )


def describe_moment(kind: str, seen: set[str], left_over: set[str]) -> str:
    """The moment a kill hit, given the temporary files of the writes `seen` before it and those
    `left_over` after it: a write is cut when its temporary file outlives the process."""
    if kind == "random":
        return "random"
    if not seen:
        return f"random (no {kind} write seen)"
    return f"{kind} write ({'cut' if seen & left_over else 'ended just before'})"


def resumed_step(log: str) -> int:
    """Where a start resumed, from its output: N of "Resumed from step N", else 0."""
    match = re.search(r"Resumed from step (\d+)", log)
    return int(match.group(1)) if match else 0


# --- Watching a run from outside ------------------------------------------------------------------
def listdir(path: str) -> list[str]:
    return os.listdir(path) if os.path.isdir(path) else []


def last_step(workdir: str) -> int:
    rows, _ = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    return max((r.get("step", 0) for r in rows), default=0)


def newest_checkpoint(workdir: str) -> int:
    """Orbax renames a checkpoint's tmp directory to its step once the write is complete."""
    names = listdir(os.path.join(workdir, "checkpoints"))
    return max((int(n) for n in names if n.isdigit()), default=0)


def writes_in_progress(workdir: str, kind: str) -> set[str]:
    folder = os.path.join(workdir, "checkpoints" if kind == "checkpoint" else "samples")
    return {n for n in listdir(folder) if is_temporary(kind, n)}


def wait_for(condition, proc: subprocess.Popen, seconds: float, poll: float = 0.005) -> bool:
    """Polls `condition` until it holds (True), or the process ends or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        if condition():
            return True
        time.sleep(poll)
    return bool(condition())


def start(command: list[str], log_path: str, env: dict) -> subprocess.Popen:
    with open(log_path, "w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def read(path: str, mode: str = "r"):
    with open(path, mode) as f:
        return f.read()


# --- The two runs ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Kill:
    kind: str  # the moment it hit (`describe_moment`)
    seconds: float  # after the start began stepping
    step: int  # the last metrics row when it was killed
    newest: int  # the newest complete checkpoint after the kill (0: none)
    resumed: int | None = None  # where the next start resumed; None: it never got to stepping


def train_straight(command: list[str], workdir: str, log: str, env: dict) -> float:
    """Trains uninterrupted; returns the seconds per step once stepping."""
    proc = start(command, log, env)
    wait_for(lambda: last_step(workdir) > 0, proc, START_TIMEOUT_S)
    began = time.monotonic()
    if proc.wait() != 0:
        raise SystemExit(f"The uninterrupted run exited {proc.returncode}:\n{read(log)[-3000:]}")
    return (time.monotonic() - began) / max(last_step(workdir) - 1, 1)


def kill_at_moment(proc, workdir: str, kind: str, window: float, rng: random.Random) -> Kill | None:
    """SIGKILLs `proc` at a moment of `kind` within `window` seconds; None if it ended first."""
    began = time.monotonic()
    wait_for(lambda: False, proc, rng.uniform(0, window if kind == "random" else window / 2))
    seen: set[str] = set()
    if kind != "random":  # armed after a random delay, so these kills too spread over the run
        stale = writes_in_progress(workdir, kind)

        def spotted() -> bool:
            seen.update(writes_in_progress(workdir, kind) - stale)
            return bool(seen)

        wait_for(spotted, proc, window - (time.monotonic() - began), POLL_S[kind])
    if proc.poll() is not None:
        return None
    proc.kill()
    proc.wait()
    left_over = writes_in_progress(workdir, kind) if seen else set()
    moment = describe_moment(kind, seen, left_over)
    return Kill(moment, time.monotonic() - began, last_step(workdir), newest_checkpoint(workdir))


def train_with_kills(command, workdir, logs, env, n, steps, step_s, rng, on_stepping=None):
    """Starts the run up to n + 1 times, killing all but the last; returns (kills, exit status)."""
    kills: list[Kill] = []
    for attempt in range(n + 1):
        before, log = last_step(workdir), os.path.join(logs, f"killed-{attempt}.log")
        proc = start(command, log, env)
        # Going: a metrics row past the killed start's last one (or done, with nothing left to do).
        going = wait_for(lambda: last_step(workdir) > before, proc, START_TIMEOUT_S)
        going = going or proc.poll() == 0
        if attempt == 0 and on_stepping:
            on_stepping()
        if kills:
            kills[-1].resumed = resumed_step(read(log)) if going else None
        if attempt == n or not going or proc.poll() is not None:
            break
        remaining = max(steps - resumed_step(read(log)), 1) * step_s
        kill = kill_at_moment(proc, workdir, KINDS[attempt % 3], remaining / (n - attempt + 1), rng)
        if kill is None:
            break
        kills.append(kill)
        print(
            f"  kill {len(kills)}/{n}: {kill.kind} after {kill.seconds:.2f} s, at step "
            f"{kill.step}, newest checkpoint {kill.newest}",
            flush=True,
        )
    try:
        return kills, proc.wait(timeout=START_TIMEOUT_S + 20 * steps * step_s if going else 0)
    except subprocess.TimeoutExpired:
        proc.kill()
        return kills, f"nothing: it hung and was killed (see {log})"


# --- Comparing the runs ---------------------------------------------------------------------------
def load_state(workdir: str):
    """(step, state) of the run's newest checkpoint as numpy arrays; no model or target needed."""

    step = newest_checkpoint(workdir)
    if not step:
        return 0, None
    return step, checkpoint.Checkpointer(workdir, read_only=True).restore_as_saved(step)[0]


def compare_runs(straight: str, killed: str) -> tuple[float, list[str], list[str]]:
    """(max_param_diff, failures, notes): final parameters, metrics.jsonl and sample PNGs."""
    (a_step, a), (b_step, b) = load_state(straight), load_state(killed)
    if a_step != b_step or b is None:
        diff, failures = math.inf, [f"newest checkpoints: straight {a_step}, killed {b_step}"]
    else:
        diff = max_abs_diff(a, b)
        failures = [f"final parameters (step {a_step}) differ"] if diff else []
    (rows, a_bad), (b_rows, b_bad) = (
        read_metrics(f"{w}/metrics.jsonl") for w in (straight, killed)
    )
    failures += compare_metrics(rows, b_rows)
    failures += compare_samples(f"{straight}/samples", f"{killed}/samples")
    pngs = len([n for n in listdir(f"{straight}/samples") if not is_temporary("png", n)])
    notes = [f"compared: the state of step {a_step}, {len(rows)} metrics rows, {pngs} sample PNGs"]
    for run, bad in (("straight", a_bad), ("killed", b_bad)):
        notes += (
            [f"{run}/metrics.jsonl: skipped torn line(s) {bad} left by the trainer"] if bad else []
        )
    if orphans := writes_in_progress(killed, "png"):
        notes.append(f"killed/samples/ keeps {len(orphans)} tmp*.png of writes cut by kills")
    return diff, failures, notes


def judge_kills(kills: list[Kill], status, n: int, logs: str) -> list[str]:
    """Prints the table of kills; returns the failures among them."""
    failures = (
        [] if status == 0 else [f"the final start of the killed run exited {status} ({logs})"]
    )
    if len(kills) < n:
        failures.append(f"only {len(kills)} of {n} kills happened: the run ended first")
    print(f"{'kill':>4}  {'moment':<32} {'after_s':>7} {'step':>5} {'newest':>6} {'resumed':>7}")
    for i, k in enumerate(kills, 1):
        print(f"{i:>4}  {k.kind:<32} {k.seconds:>7.2f} {k.step:>5} {k.newest:>6} {k.resumed!s:>7}")
        if k.resumed is None:
            failures.append(
                f"kill {i}: the next start never got to stepping (see {logs}/killed-{i}.log)"
            )
        elif k.resumed != k.newest:
            failures.append(
                f"kill {i}: the next start resumed from step {k.resumed}, not from the "
                f"newest complete checkpoint {k.newest}"
            )
    return failures


def judge_evaluator(proc: subprocess.Popen, workdir: str, log: str) -> list[str]:
    """Waits for `evaluate --watch`; it must exit 0 having scored the final checkpoint."""
    try:
        status = proc.wait(timeout=EVAL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        status = f"nothing: killed after {EVAL_TIMEOUT_S:.0f} s"
    rows, _ = read_metrics(os.path.join(workdir, "eval", "metrics.jsonl"))
    scored = sorted({r.get("step") for r in rows if r.get("kind") == "checkpoint"})
    print(f"evaluate --watch: exited {status}, scored checkpoints {scored}")
    failures = [] if status == 0 else [f"the evaluator exited {status} (see {log})"]
    return failures + (
        [] if FLAGS.steps in scored else [f"the evaluator did not score step {FLAGS.steps}"]
    )


# --- Main -----------------------------------------------------------------------------------------
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}: every option is a --flag.")

    run_files.quiet_library_logs()  # no Orbax INFO chatter while the checkpoints are read
    FLAGS.steps = FLAGS.steps or max(40, 5 * FLAGS.kills)  # room for every kill before the end
    root = os.path.abspath(FLAGS.workdir or tempfile.mkdtemp(prefix="jaxgan-chaos-"))
    straight, killed, logs = (os.path.join(root, d) for d in ("straight", "killed", "logs"))
    if os.path.exists(straight) or os.path.exists(killed):
        raise SystemExit(
            f"chaos: {root} already holds straight/ or killed/: remove them (keep its "
            "xla-cache/: restarts stay quick) or pick another --workdir."
        )
    os.makedirs(logs, exist_ok=True)
    # The runs' compilation cache (`core.paths.enable_compilation_cache`) in DIR, not the user's:
    # JAX writes an entry in place, and a SIGKILL mid-write would leave a torn one there.
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAXGAN_COMPILATION_CACHE=f"{root}/xla-cache")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # JAX's own setting would win over DIR's
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # cache every program: quick restarts
    train = lambda workdir: [
        *(sys.executable, "-m", "jaxgan.main", f"--config={FLAGS.config}", f"--workdir={workdir}"),
        *(f"--config.num_steps={FLAGS.steps}", *RUN_OVERRIDES),
    ]
    evaluate = [sys.executable, "-m", "jaxgan.evaluate", f"--workdir={killed}", *EVAL_FLAGS]
    evaluate.append(f"--cache_dir={root}/eval-cache")
    print(f"chaos: {FLAGS.config}, {FLAGS.steps} steps, {FLAGS.kills} kills, in {root}", flush=True)
    step_s = train_straight(train(straight), straight, f"{logs}/straight.log", env)
    print(f"straight: done, {step_s:.3f} s/step", flush=True)

    evaluator = []
    watch = lambda: evaluator.append(start(evaluate, f"{logs}/evaluate.log", env))
    rng, on_stepping = random.Random(FLAGS.seed), watch if FLAGS.watch_eval else None
    try:
        kills, status = train_with_kills(
            train(killed), killed, logs, env, FLAGS.kills, FLAGS.steps, step_s, rng, on_stepping
        )
        print(f"killed: the final start exited {status}", flush=True)
        failures = judge_kills(kills, status, FLAGS.kills, logs)
        diff, more_failures, notes = compare_runs(straight, killed)
        failures += more_failures + (
            judge_evaluator(evaluator[0], killed, f"{logs}/evaluate.log") if evaluator else []
        )
    finally:  # never leave an evaluator behind
        if evaluator and evaluator[0].poll() is None:
            evaluator[0].kill()
    hits = collections.Counter(k.kind for k in kills).items()
    notes.insert(0, "moments hit: " + ("; ".join(f"{c} {kind}" for kind, c in hits) or "none"))
    for line in [f"note: {x}" for x in notes] + [f"FAIL: {x}" for x in failures]:
        print(line)
    survived = sum(k.resumed == k.newest for k in kills) if status == 0 else 0
    print(f"kills_survived: {survived}/{FLAGS.kills}")
    print(f"max_param_diff: {diff!r}")
    return 1 if failures else 0


def define_flags() -> None:
    flags.DEFINE_string("config", None, "Training config, e.g. wgan_gp:smoke.")
    flags.DEFINE_integer("kills", None, "How many times to SIGKILL the second run.", lower_bound=0)
    flags.DEFINE_integer(
        "steps", 0, "Training steps of both runs (0: 5 per kill, at least 40).", lower_bound=0
    )
    flags.DEFINE_integer("seed", 0, "Seed of the kill moments (not of the training).")
    flags.DEFINE_string("workdir", None, "Gets straight/, killed/, logs/ (default: a temp dir).")
    flags.DEFINE_bool("watch_eval", False, "Also run `jaxgan.evaluate --watch` beside the run.")
    flags.mark_flags_as_required(["config", "kills"])
    flags.register_validator(
        "config",
        _config_exists,
        "--config must be NAME[:PRESET] of jaxgan's configs or a config file, e.g. wgan_gp:smoke",
    )


def _config_exists(spec: str | None) -> bool:
    try:
        return spec is None or bool(configs.resolve(spec))
    except ValueError:
        return False


if __name__ == "__main__":
    define_flags()
    app.run(main)
