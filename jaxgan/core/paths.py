"""Where jaxgan keeps what it can recompute: one cache folder for every module, JAX's compiled
programs included (`enable_compilation_cache`)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform

import jax
from absl import logging

from jaxgan.core import store

# `0` (or off/false/no) turns the persistent compilation cache off; a path moves it there.
COMPILATION_CACHE_ENV = "JAXGAN_COMPILATION_CACHE"
# Programs that compile faster than this are not written to the cache: the programs that make a
# start slow (train steps, samplers) compile for seconds, and the many small ones would outnumber
# them in files while saving little (docs/performance.md). JAX's default is 1 s; this also keeps
# the evaluator's sub-second feature and metric programs.
MIN_COMPILE_TIME_S = 0.5


def cache_dir() -> str:
    """`$XDG_CACHE_HOME/jaxgan`, else `~/.cache/jaxgan` (the XDG default); not created here."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "jaxgan")


@functools.cache
def cpuinfo() -> dict[str, str]:
    """The first CPU's fields of /proc/cpuinfo ('model name', 'cpu family', 'flags', ...); {} where
    there is no such file."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                name, _, value = line.partition(":")
                fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    return fields


def instruction_set_tag() -> str:
    """A short name of this CPU's instruction set: XLA:CPU compiles for it, and JAX's cache key
    does not include it, so a cache shared between machines (a home folder on NFS) keeps one
    folder per instruction set rather than loading code built for another CPU."""
    fields = cpuinfo()
    identity = "|".join((platform.machine(), fields.get("vendor_id", ""), fields.get("flags", "")))
    return f"{platform.machine() or 'cpu'}-{hashlib.sha256(identity.encode()).hexdigest()[:10]}"


def cpu_identity() -> str:
    """What decides which way of computing is faster here: the CPU (vendor, family, model, name),
    a hash of its instruction flags and the threads this process may use. The measured choices
    kept in `cache_dir()` (the convolution autotune's, XLA:CPU's convolution kernels) are keyed
    by it, so a cache shared between machines answers each with its own measurements."""
    fields = cpuinfo()
    cpu = "/".join(
        fields.get(name, "") for name in ("vendor_id", "cpu family", "model", "model name")
    )
    flags = hashlib.sha256(fields.get("flags", "").encode()).hexdigest()[:12]
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu or platform.processor()}|flags {flags}|{threads} threads"


def read_table(path: str, what: str, instead: str = "measuring again") -> dict:
    """A JSON object kept in the cache, or {} where the file is absent or unreadable (then with a
    warning: "<what> <path> is unreadable; <instead>.")."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            table = json.load(f)
        if isinstance(table, dict):
            return table
    except (OSError, ValueError):
        pass
    logging.warning("%s %s is unreadable; %s.", what, path, instead)
    return {}


def write_table(path: str, table: dict) -> None:
    """Written to a temporary file and renamed: a killed run or a concurrent one never leaves half
    a file (two processes writing at once may each drop the other's new entries: they are
    measured again)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(table, f, indent=0, sort_keys=True)

    store.atomic_write(path, write)


def compilation_cache_dir() -> str | None:
    """`$JAXGAN_COMPILATION_CACHE` where it names a folder, None where it is 0/off/false/no, else
    `<cache_dir()>/xla/<instruction_set_tag()>`."""
    value = os.environ.get(COMPILATION_CACHE_ENV, "").strip()
    if value.lower() in ("0", "off", "false", "no"):
        return None
    if value:
        return os.path.abspath(os.path.expanduser(value))
    return os.path.join(cache_dir(), "xla", instruction_set_tag())


def enable_compilation_cache() -> str | None:
    """Turns on JAX's persistent compilation cache, so a command's second start reads its
    compiled programs from disk instead of compiling them again; returns the folder (None: off).

    Call it before the first compile (JAX opens the cache once per process). JAX's own setting
    wins: with `JAX_COMPILATION_CACHE_DIR` set (the tests set it to a temporary folder) that folder
    is kept, and `JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS` keeps its value.
    """
    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    folder = compilation_cache_dir()
    if folder is None:
        env = COMPILATION_CACHE_ENV
        logging.info("Persistent compilation cache off (%s=%s).", env, os.environ[env])
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    return folder
