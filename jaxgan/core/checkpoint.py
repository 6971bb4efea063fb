"""A thin Orbax `CheckpointManager` wrapper: one composite item per step.

Each checkpoint `<workdir>/checkpoints/<step>/` holds `state` (generator, critic, EMA generator,
both optimizer states, step, RNG key) and `meta` (JSON: the data cursor, the config, anything a
loop needs to continue exactly). Orbax writes into a temporary directory and renames it when the
save is complete, so a run killed mid-save leaves the previous checkpoints intact and the partial
one is ignored (and cleaned up) on restart. Every process calls save/restore (Orbax coordinates).
Restoring goes into abstract arrays that carry the *current* mesh's shardings, so a run resumes on
a different device count. A checkpoint whose files cannot be read (damaged bytes, missing files)
raises `UnreadableCheckpoint` with a one-line reason; `move_aside` renames it to
`<step>.unreadable` (never deleted), a name Orbax no longer lists as a step.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging as std_logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

from jaxgan.core import errors, parallel, store


class UnreadableCheckpoint(errors.CheckpointError):
    """A checkpoint's files could not be read; the message is one line: which step, and why."""


def _reason(error: BaseException) -> str:
    """The most specific line of an Orbax/TensorStore error chain (the one naming the bad file)."""
    chain = []
    while error is not None and len(chain) < 20:
        chain.append(error)
        error = error.__cause__ or error.__context__
    lines = [(e, str(e).strip().splitlines()[0]) for e in chain if str(e).strip()]
    for _, line in lines:
        if "Error reading" in line or "DATA_LOSS" in line or "No such file" in line:
            return line[:600]
    if not lines:
        return type(chain[0]).__name__
    deepest, line = lines[-1]
    return f"{type(deepest).__name__}: {line}"[:600]  # e.g. KeyError: '0' of a zeroed file


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keeps the libraries' logging off the screen (Orbax logs through absl)."""
    loggers = [std_logging.getLogger(name) for name in ("absl", "asyncio", "orbax")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(std_logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class _SettlingLoop(asyncio.SelectorEventLoop):
    """An event loop that, when closed, first lets every task still pending on it finish.

    Orbax runs each read on a fresh loop (`asyncio_utils.run_sync`: `run_until_complete`, then
    `close`) and gathers one task per array without `return_exceptions`: when one array's read
    fails, the error comes back while the other arrays' TensorStore reads are still in flight, and
    the loop is closed under them. Each of those reads then finishes on a TensorStore thread and
    calls `loop.call_soon_threadsafe` on the closed loop ("RuntimeError: Event loop is closed",
    one traceback per array), and each abandoned coroutine prints another when it is collected.
    Here they all run to their end (a local read always ends; their errors are collected by the
    gather, not printed) before the loop closes, so nothing of the failed read is left behind.
    """

    def close(self) -> None:
        if self.is_closed() or self.is_running():
            return super().close()
        try:
            while pending := [t for t in asyncio.all_tasks(self) if not t.done()]:
                self.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.run_until_complete(self.shutdown_asyncgens())
            self.run_until_complete(self.shutdown_default_executor())
        finally:
            super().close()


class _SettlingPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return _SettlingLoop()


_settling_lock = threading.Lock()
_settling_depth = 0
_settling_previous: asyncio.AbstractEventLoopPolicy | None = None


@contextlib.contextmanager
def _settling_loops() -> Iterator[None]:
    """Every event loop created meanwhile (by any thread: Orbax's `asyncio.new_event_loop()`)
    is a `_SettlingLoop`; nested and concurrent uses share one policy, put back by the last."""
    global _settling_depth, _settling_previous
    with _settling_lock:
        if _settling_depth == 0:
            _settling_previous = asyncio.get_event_loop_policy()
            asyncio.set_event_loop_policy(_SettlingPolicy())
        _settling_depth += 1
    try:
        yield
    finally:
        with _settling_lock:
            _settling_depth -= 1
            if _settling_depth == 0:
                asyncio.set_event_loop_policy(_settling_previous)
                _settling_previous = None


@contextlib.contextmanager
def _reading(directory: str, step: int) -> Iterator[None]:
    """Turns any failure to read checkpoint `step` into `UnreadableCheckpoint`, once the failed
    read's asynchronous work has ended (`_SettlingLoop`), and keeps the libraries' own error
    logging of it off the screen."""
    try:
        with _quiet(), _settling_loops():
            yield
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as e:  # Orbax and TensorStore raise many types for one damaged file
        reason = _reason(e)
    else:
        return
    # Every task of the failed read has ended (`_SettlingLoop`); what can remain are coroutine
    # objects Orbax built but never started (a failure before its gather), which hold no work but
    # would print when the garbage collector gets to them: collect them now, silently.
    hook, sys.unraisablehook = sys.unraisablehook, lambda unraisable: None
    try:
        with _quiet():
            gc.collect()
    finally:
        sys.unraisablehook = hook
    raise UnreadableCheckpoint(f"checkpoint {directory}/{step}: {reason}")


class Checkpointer:
    def __init__(
        self,
        workdir: str,
        keep_last: int = 3,
        keep_every: int | None = None,
        read_only: bool = False,
    ):
        """Keeps the `keep_last` newest checkpoints plus every step that is a multiple of `keep_every`."""
        self.directory = store.workdir_path(os.path.join(workdir, "checkpoints"))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None if read_only else keep_last,
            keep_period=keep_every or None,
            create=not read_only,
            cleanup_tmp_directories=not read_only,
            read_only=read_only,
            save_interval_steps=0 if read_only else 1,
        )
        with _quiet():  # read-only: a warning that says only that
            self._manager = ocp.CheckpointManager(
                store.orbax_directory(self.directory), options=options, item_names=("state", "meta")
            )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def move_aside(self, step: int) -> str:
        """Renames checkpoint `step` to `<step>.unreadable` (process 0; kept for inspection)."""
        source = os.path.join(self.directory, str(step))
        target, n = f"{source}.unreadable", 1
        while store.exists(target):
            n += 1
            target = f"{source}.unreadable-{n}"
        if jax.process_index() == 0:
            store.rename(source, target)  # on an object store: a copy of each object, then delete
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"jaxgan_move_aside_{step}")
        self._manager.reload()
        return target

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Asynchronous: returns once the arrays are copied off the devices."""
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(one_copy_on_host_cpus(state)),
                meta=ocp.args.JsonSave(meta),
            ),
            force=True,
        )

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
        """abstract_state: a pytree of `jax.ShapeDtypeStruct`s with the shardings to restore into."""
        with _reading(self.directory, step):
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
                ),
            )
            return restored.state, dict(restored.meta)

    def restore_as_saved(self, step: int) -> tuple[Any, dict]:
        """(state as host numpy arrays, meta) of checkpoint `step`, with no target to restore into:
        for comparing runs and inspecting checkpoints (the tests, `jaxgan.chaos`)."""
        with _reading(self.directory, step), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no sharding given": host arrays are what we want
            args = ocp.args.Composite(state=ocp.args.PyTreeRestore(), meta=ocp.args.JsonRestore())
            restored = self._manager.restore(step, args=args)
            return jax.device_get(restored.state), dict(restored.meta)

    def restore_meta(self, step: int) -> dict:
        with _reading(self.directory, step):
            args = ocp.args.Composite(meta=ocp.args.JsonRestore())
            meta = self._manager.restore(step, args=args).meta
            if meta is None:  # Orbax returns None for a missing or empty item
                raise ValueError("its meta item is missing")
            return dict(meta)

    def restore_state_entry(
        self, step: int, key: str | tuple[str, ...], sharding: jax.sharding.Sharding
    ) -> tuple[Any, dict]:
        """Restores only `state[key]` (e.g. "ema_params") of checkpoint `step`, and its meta; for a
        tuple of keys, {key: state[key]}.

        An Orbax partial restore: the structure and shapes come from the checkpoint's own metadata
        (so no model has to be built first), and only those entries' arrays are read, placed with
        `sharding`. What the evaluator uses: the EMA generator without the critic or the optimizer
        states.
        """
        keys = (key,) if isinstance(key, str) else tuple(key)
        with _reading(self.directory, step):
            handler = ocp.PyTreeCheckpointHandler()
            try:
                stored = handler.metadata(epath.Path(self.directory) / str(step) / "state").tree
            finally:
                handler.close()
        missing = [k for k in keys if k not in stored]
        if missing:
            raise KeyError(
                f"Checkpoint {self.directory}/{step} has no state entry {missing[0]!r} "
                f"(it has {sorted(stored)})."
            )
        abstract = {
            k: jax.tree.map(
                lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding), stored[k]
            )
            for k in keys
        }
        with _reading(self.directory, step):
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.PyTreeRestore(
                        item=abstract,
                        restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
                        partial_restore=True,
                    ),
                    meta=ocp.args.JsonRestore(),
                ),
            )
        entries = {k: restored.state[k] for k in keys}
        return (entries[key] if isinstance(key, str) else entries), dict(restored.meta)

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def one_copy_on_host_cpus(state: Any) -> Any:
    """`state` with each replicated array as its copy on the first device, where the devices are
    one host's CPUs (the tests' simulated devices, `JAX_NUM_CPU_DEVICES`); else `state` unchanged.

    Orbax 0.12 saves a replicated array in parallel, each replica writing a slice of it: useful where
    the replicas are accelerators, but CPU devices share the host's memory, and each slice compiles
    an XLA program per leaf shape and device (`jit(slice)`; the PGGAN Table 1 test compiled 149
    programs with them, 29 without). Restoring is unchanged: it places the arrays with the
    shardings it is given.
    """
    devices = jax.devices()
    if jax.process_count() > 1 or len(devices) == 1 or any(d.platform != "cpu" for d in devices):
        return state
    first = jax.sharding.SingleDeviceSharding(devices[0])

    def one_copy(x):
        if isinstance(x, jax.Array) and len(x.devices()) > 1 and x.is_fully_replicated:
            return jax.device_put(x, first)
        return x

    return jax.tree.map(one_copy, state)


def abstract_like(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """ShapeDtypeStructs of `tree` (arrays or structs), all placed with `sharding`."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def select_step(available: Sequence[int], step: str | int | None, directory: str) -> int:
    """'latest' (or None) or a saved step (an int or its digits) -> the step; an error that lists
    the saved ones."""
    if not available:
        raise errors.CheckpointError(
            f"No checkpoints in {directory}: train the run first (python -m jaxgan.main)."
        )
    if step is None or step == "latest":
        return available[-1]
    try:
        wanted = int(step)
    except ValueError:
        raise errors.ConfigError(
            f"--step={step!r}: expected 'latest' or a checkpoint step, one of {list(available)}."
        ) from None
    if wanted not in available:
        raise errors.ConfigError(
            f"--step={wanted}: there is no checkpoint {wanted} in {directory}; it has "
            f"{list(available)} (older ones are rotated out by keep_last)."
        )
    return wanted


def restore_params(
    workdir: str, entry: str | tuple[str, ...], step: str | int | None, mesh
) -> tuple[Any, dict, int]:
    """(params, meta, step): state entry `entry` (`Checkpointer.restore_state_entry`) of
    checkpoint `step` ('latest', None or a saved step) of a run, replicated on the mesh."""

    ckpt = Checkpointer(workdir, read_only=True)
    try:
        chosen = select_step(ckpt.all_steps(), step, ckpt.directory)
        params, meta = ckpt.restore_state_entry(chosen, entry, parallel.replicated(mesh))
    finally:
        ckpt.close()
    return params, meta, chosen
