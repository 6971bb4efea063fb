"""Which kernels XLA:CPU runs convolutions with: chosen before JAX starts its CPU backend.

jaxlib 0.10 hands every convolution to YNNPACK by default (XLA's "individual convolution" library
fusion, choice `ynn`); `--xla_cpu_experimental_ynn_fusion_type=-individual_convolution` gives
them back to XLA's own Eigen kernels and leaves matrix products with YNNPACK (`eigen`), and an
empty value hands XLA everything YNNPACK would run (`xla`). Which is faster depends on the
program: on the 2-core Xeon this project measures on, `eigen` ran the FID Inception 2.3x faster
and the PGGAN step 1.5x, `xla` the width-128 ResNet WGAN-GP step 1.2x, while the batch-1 CycleGAN
step ran up to 1.2x slower with either (docs/performance.md). So `eigen` is the default of every
command but training, where each method chooses (`registry.Method.cpu_convolutions`: `ynn` unless
another was measured faster), and `JAXGAN_XLA_CPU_CONV=eigen|xla|ynn` overrides both.

XLA reads `XLA_FLAGS` once, when JAX's backend starts: `import jaxgan` sets `eigen`, and a command
that knows its method calls `configure` again with the method's choice before any computation;
once the backend runs, the choice stays. An `XLA_FLAGS` that sets the flag itself always wins.
The choice is a measurement of one jaxlib: on another release it is left alone (YNNPACK may be the
faster one there) until measured again.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings

from jaxgan.core import errors

CHOICE_ENV = "JAXGAN_XLA_CPU_CONV"
FLAG = "--xla_cpu_experimental_ynn_fusion_type"
# {choice: the flag's value}: '-' removes one type from jaxlib's default list of YNN fusions, an
# empty value empties it (matrix products, reductions and element-wise fusions back to XLA too).
CHOICES = {"eigen": "-individual_convolution", "xla": "", "ynn": None}
DEFAULT_CHOICE = "eigen"
MEASURED_JAXLIB = ((0, 10),)  # (major, minor) releases the choice was measured on
OURS = {f"{FLAG}={value}": name for name, value in CHOICES.items() if value is not None}


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


def configure(preferred: str = DEFAULT_CHOICE) -> str:
    """Puts `preferred` (or `JAXGAN_XLA_CPU_CONV`'s choice) in `XLA_FLAGS`, replacing an earlier
    call's, and returns the choice in force. A flag of the user's is kept; after the backend
    started nothing changes (it has read the flags)."""
    choice = requested(preferred)
    flags = os.environ.get("XLA_FLAGS", "").split()
    users = [flag for flag in flags if flag.startswith(FLAG) and flag not in OURS]
    if users or _backend_started():
        return current()
    kept = [flag for flag in flags if not flag.startswith(FLAG)]
    if CHOICES[choice] is not None and _jaxlib_release() in MEASURED_JAXLIB:
        kept.append(f"{FLAG}={CHOICES[choice]}")
    os.environ["XLA_FLAGS"] = " ".join(kept)
    return current()


def describe() -> str:
    """One line for a run's log and the benchmarks: the kernels in force, and the jaxlib."""
    return f"XLA:CPU convolutions: {current()} (jaxlib {_jaxlib_version()})"


def configure_at_import() -> None:
    """`configure()` for `import jaxgan`: a bad `JAXGAN_XLA_CPU_CONV` is a warning here (an import
    should not fail on it) and the error of the training command that reads it."""
    try:
        configure()
    except errors.ConfigError as e:
        warnings.warn(f"{e} XLA:CPU keeps its default kernels.", stacklevel=3)
