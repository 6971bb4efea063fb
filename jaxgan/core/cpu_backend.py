"""Which kernels XLA:CPU runs convolutions with: chosen before JAX starts its CPU backend.

jaxlib 0.10 hands every convolution to YNNPACK by default (XLA's "individual convolution" library
fusion, choice `ynn`); `--xla_cpu_experimental_ynn_fusion_type=-individual_convolution` gives
them back to XLA's own Eigen kernels and leaves matrix products with YNNPACK (`eigen`), and an
empty value hands XLA everything YNNPACK would run (`xla`). Which is faster depends on the
program and on the CPU: on a 2-core Xeon `eigen` ran the FID Inception 2.3x faster and the PGGAN
step 1.5x, `xla` the width-128 ResNet WGAN-GP step 1.2x; on a 2-core Zen 5 `eigen` ran the
batch-1 CycleGAN step 1.25x faster (docs/performance.md). So `eigen` is the default of every
command but training, where each method chooses (`registry.Method.cpu_convolutions`), and a
choice measured on this CPU wins over the method's: `python -m jaxgan.bench --config=C
--choose_cpu_convolutions` times the step under each choice, one process per choice and round,
and keeps the answer per CPU, jaxlib and method (the config measured last; `record_measured`,
`measured`).
`JAXGAN_XLA_CPU_CONV=eigen|xla|ynn` overrides them all.

XLA reads `XLA_FLAGS` once, when JAX's backend starts: `import jaxgan` sets `eigen`, and a command
that knows its method calls `configure` again with the method's choice before any computation;
once the backend runs, the choice stays. An `XLA_FLAGS` that sets the flag itself always wins.
The choice is a measurement of one jaxlib: on another release it is left alone (YNNPACK may be the
faster one there) until measured again.
"""

from __future__ import annotations

import importlib.metadata
import os
import statistics
import warnings

from jaxgan.core import errors, paths

CHOICE_ENV = "JAXGAN_XLA_CPU_CONV"
FLAG = "--xla_cpu_experimental_ynn_fusion_type"
# {choice: the flag's value}: '-' removes one type from jaxlib's default list of YNN fusions, an
# empty value empties it (matrix products, reductions and element-wise fusions back to XLA too).
CHOICES = {"eigen": "-individual_convolution", "xla": "", "ynn": None}
DEFAULT_CHOICE = "eigen"
MEASURED_JAXLIB = ((0, 10),)  # (major, minor) releases the choice was measured on
OURS = {f"{FLAG}={value}": name for name, value in CHOICES.items() if value is not None}
MEASURED_FILE = "xla_cpu_convolutions.json"  # in `paths.cache_dir()`: {machine: {method: answer}}
MEASURED_WHAT = "The XLA:CPU convolution kernels measured here,"
_why = ["jaxlib's default"]  # why the choice in force was made (`configure`), for `describe`


def _jaxlib_version() -> str:
    return importlib.metadata.version("jaxlib")  # read from the installation: nothing starts


def _jaxlib_release() -> tuple[int, int]:
    major, minor = _jaxlib_version().split(".")[:2]
    return int(major), int(minor)


def _backend_started() -> bool:
    from jax._src import xla_bridge  # no public way to ask; absent in a future JAX: assume not

    return getattr(xla_bridge, "backends_are_initialized", lambda: False)()


def requested(preferred: str = DEFAULT_CHOICE) -> str:
    """`JAXGAN_XLA_CPU_CONV`'s choice where set, else `preferred`; a bad value fails, naming it."""
    choice = os.environ.get(CHOICE_ENV, "").strip().lower() or preferred
    if choice not in CHOICES:
        raise errors.ConfigError(f"{CHOICE_ENV}={choice!r}: expected one of {', '.join(CHOICES)}.")
    return choice


def current() -> str:
    """The choice `XLA_FLAGS` holds now: `eigen`, `xla`, `ynn` (jaxlib's default), or the user's
    flag."""
    for flag in os.environ.get("XLA_FLAGS", "").split():
        if flag.startswith(FLAG):
            return OURS.get(flag, f"as XLA_FLAGS sets {flag}")
    return "ynn"


def configure(preferred: str = DEFAULT_CHOICE, why: str = "the default outside training") -> str:
    """Puts `preferred` (or `JAXGAN_XLA_CPU_CONV`'s choice) in `XLA_FLAGS`, replacing an earlier
    call's, and returns the choice in force; `why` it was preferred is what `describe` says. A
    flag of the user's is kept; after the backend started nothing changes (it has read the
    flags)."""
    choice = requested(preferred)
    flags = os.environ.get("XLA_FLAGS", "").split()
    users = [flag for flag in flags if flag.startswith(FLAG) and flag not in OURS]
    if users or _backend_started():
        return current()
    kept = [flag for flag in flags if not flag.startswith(FLAG)]
    if os.environ.get(CHOICE_ENV, "").strip():
        why = CHOICE_ENV
    if _jaxlib_release() not in MEASURED_JAXLIB:
        why = f"jaxlib's default: jaxlib {_jaxlib_version()} is not a measured release"
    elif CHOICES[choice] is not None:
        kept.append(f"{FLAG}={CHOICES[choice]}")
    _why[0] = why
    os.environ["XLA_FLAGS"] = " ".join(kept)
    return current()


def reason() -> str:
    """Why the kernels in force were chosen: the user's flag, `JAXGAN_XLA_CPU_CONV`, a measurement
    on this CPU, a method's default."""
    chosen = current()
    return "the user's XLA_FLAGS" if chosen not in CHOICES else _why[0]


def describe() -> str:
    """One line for a run's log and the benchmarks: the kernels in force, why, and the jaxlib."""
    return f"XLA:CPU convolutions: {current()} ({reason()}; jaxlib {_jaxlib_version()})"


# ----------------------------------------------------------------------------------------------
# Choices measured on this CPU (`python -m jaxgan.bench --choose_cpu_convolutions`).
# ----------------------------------------------------------------------------------------------


def measured_path() -> str:
    return os.path.join(paths.cache_dir(), MEASURED_FILE)


def machine() -> str:
    """The key of this machine's answers: the CPU, its threads, and the jaxlib that compiles."""
    return f"{paths.cpu_identity()}|jaxlib {_jaxlib_version()}"


def _answers(table: dict) -> dict:
    """This machine's answers in the file's table ({} where a hand edit left something else)."""
    answers = table.get(machine())
    return answers if isinstance(answers, dict) else {}


def measured(method: str) -> dict | None:
    """The answer measured for `method`'s step on this machine ({'choice', 'step_ms', ...}), or
    None where there is none."""
    table = paths.read_table(measured_path(), MEASURED_WHAT, "the methods' defaults meanwhile")
    answer = _answers(table).get(method)
    return answer if isinstance(answer, dict) and answer.get("choice") in CHOICES else None


def record_measured(method: str, answer: dict) -> str:
    """Keeps `answer` as `method`'s on this machine (beside other machines' and methods'); returns
    the file."""
    path = measured_path()
    table = paths.read_table(path, MEASURED_WHAT, "writing it anew")
    table[machine()] = {**_answers(table), method: answer}
    paths.write_table(path, table)
    return path


def fastest(step_ms: dict[str, list[float]], default: str) -> str:
    """The choice to keep from each choice's step times: the one with the lowest median, where its
    range lies wholly below `default`'s (a difference beyond the spread); else `default`."""
    best = min(step_ms, key=lambda choice: statistics.median(step_ms[choice]))
    return best if max(step_ms[best]) < min(step_ms[default]) else default


def configure_at_import() -> None:
    """`configure()` for `import jaxgan`: a bad `JAXGAN_XLA_CPU_CONV` is a warning here (an import
    should not fail on it) and the error of the training command that reads it."""
    try:
        configure()
    except errors.ConfigError as e:
        warnings.warn(f"{e} XLA:CPU keeps its default kernels.", stacklevel=3)
