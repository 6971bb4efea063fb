"""The run loop every training method shares: resume -> contract -> steps -> logs, samples, checkpoints.

`train_and_evaluate(config, workdir)` reads top to bottom (big_vision `train.py`); the method named
by `config.method` supplies only what differs, through its `Trainer` (`jaxgan/training/registry.py`). What
the loop guarantees, for every method:

* **Resume.** A workdir with checkpoints continues from the newest *readable* one. A checkpoint that
  cannot be read (or holds non-finite values) is named in a few lines and moved aside to
  `checkpoints/<step>.unreadable`; with none readable the run stops with that message.
* **The config is a contract.** Before anything is written, the config stored in that checkpoint is
  compared with the new one: a changed field outside `contract.SAFE_TO_CHANGE` (and the method's own list)
  fails naming each field with its old and new value. Safe changes are logged; `config.json` keeps
  the latest config and `config_history.jsonl` every one a run started with.
* **A bad state is never kept.** Every compiled step is wrapped by `guard_update`: an update is
  judged finite only if all its metrics (losses, gradient norms) and the whole new state are,
  decided on device (no host sync per step). The host reads the verdicts at logging, sample and
  checkpoint steps: `config.nonfinite='stop'` ends the run naming the step, the quantity and a
  checkpoint that is finite; 'skip' skips the bad updates on device, counts them and goes on.
  Only finite states are saved or drawn.
* **Cadence.** Metrics are fetched every `log_every` steps, at grids and checkpoints (`metrics.jsonl`,
  the progress bar); sample grids every `sample_every`; checkpoints every `checkpoint_every`
  and at the end, asynchronously, each with the data cursor, so batch b is the same batch after a
  resume. `max_minutes` stops after that much training wall time (counted across resumes).
* **Preemption.** SIGTERM saves a checkpoint at the next step boundary and exits 0; in a
  multi-process run every host stops at the same step (JAX's preemption sync point).
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from jaxgan.core import checkpoint, errors, parallel, precision, run_files, store
from jaxgan.training import contract, registry, transfer

State = dict[str, Any]

# Keys a guarded step adds to its metrics; the loop reads them and does not log them.
UPDATE_OK, NONFINITE_STATE = "update_ok", "nonfinite_state"


# ----------------------------------------------------------------------------------------------
# Never keep a bad state.
# ----------------------------------------------------------------------------------------------


def _all_finite(tree) -> jax.Array:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else True


def guard_update(train_step, keep_old_state: bool = True):
    """Wraps a pure `train_step(state, *inputs) -> (state, metrics)` with a verdict on its update:
    adds `update_ok` (1 if every metric and every leaf of the new state are finite, else 0) and
    `nonfinite_state` (bit i set: sorted state key i went non-finite) to the metrics.

    keep_old_state (config.nonfinite='skip'): a bad update is skipped on device, the old state kept
    with `step` advanced (so the next step draws fresh randomness and data). PGGAN's TF code skips
    such updates too (`dnnlib/tflib/optimizer.py`). Without it ('stop') the new state is returned
    as it is: the loop reads the verdicts before every save and sample grid and stops at the first
    bad one, so a bad state is never saved or drawn. That saves the copy of the whole state which
    the kept branch of the conditional makes (XLA copies a branch's result into the conditional's
    own buffers): 6-7 % of CycleGAN's step (docs/performance.md)."""

    def guarded(state, *inputs):
        new_state, metrics = train_step(state, *inputs)
        keys = sorted(new_state)
        finite = {k: _all_finite(new_state[k]) for k in keys}
        ok = _all_finite(metrics) & jnp.all(jnp.stack([jnp.asarray(finite[k]) for k in keys]))
        kept = new_state
        if keep_old_state:
            # One conditional, not a select per leaf: XLA fuses a per-leaf select into each leaf's
            # producer, which made NICE-GAN's smoke step compile several times slower.
            kept = jax.lax.cond(ok, lambda: new_state, lambda: state)
            kept["step"] = new_state["step"]
        mask = sum(
            (~jnp.asarray(finite[k])).astype(jnp.float32) * 2.0**i for i, k in enumerate(keys)
        )
        return kept, {**metrics, UPDATE_OK: ok.astype(jnp.float32), NONFINITE_STATE: mask}

    return guarded


def jit_guarded_step(train_step, mesh, replicated_inputs: int = 0, keep_old_state: bool = True):
    """`train_step(state, batch, *inputs)` jitted as the loop runs it: `guard_update`d (pass
    `keeps_old_state(config)`), the state replicated and donated, the batch [k, N, ...] sharded
    along N, then `replicated_inputs` more arguments replicated (progressive's per-step scalars);
    the outputs replicated."""
    replicated = parallel.replicated(mesh)
    return jax.jit(
        guard_update(train_step, keep_old_state),
        in_shardings=(replicated, parallel.sharded_on(mesh, 1)) + (replicated,) * replicated_inputs,
        out_shardings=(replicated, replicated),
        donate_argnums=0,
    )


def keeps_old_state(config: ml_collections.ConfigDict) -> bool:
    """Whether a step skips a non-finite update on device (`guard_update`): with
    config.nonfinite='skip' the run goes on from the old state; with 'stop' it ends."""
    return config.nonfinite == "skip"


def state_names(mask: float, keys) -> list[str]:
    """Decodes `nonfinite_state`: the names of the state entries that went non-finite."""
    return [k for i, k in enumerate(sorted(keys)) if int(mask) >> i & 1]


def fetch_rows(pending: list[tuple[int, dict]]) -> list[dict]:
    """The per-step metrics kept on device since the last fetch, as host rows (one sync)."""
    return [
        {"step": step, **{k: float(v) for k, v in m.items()}} for step, m in jax.device_get(pending)
    ]


class UpdateHealth:
    """The host's reading of the guarded steps' verdicts, at each fetch of their metrics.

    nonfinite='stop' raises on the first skipped update; 'skip' counts them and raises only when
    `MAX_CONSECUTIVE_SKIPS` updates in a row were skipped (the run can no longer move).
    """

    MAX_CONSECUTIVE_SKIPS = 100

    def __init__(self, config, state_keys, skipped: int = 0):
        self.mode, self.state_keys = config.nonfinite, list(state_keys)
        self.skipped, self.consecutive = skipped, 0

    def check(self, rows: list[dict], last_good: int | None) -> None:
        for row in rows:
            if row.get(UPDATE_OK, 1.0) >= 1.0:
                self.consecutive = 0
                continue
            self.skipped += 1
            self.consecutive += 1
            what = sorted(k for k, v in row.items() if not np.isfinite(v))
            what += [f"state '{k}'" for k in state_names(row[NONFINITE_STATE], self.state_keys)]
            what = ", ".join(what) or "the update"
            if self.mode == "skip" and self.consecutive < self.MAX_CONSECUTIVE_SKIPS:
                logging.warning("Skipped the non-finite update of step %d (%s).", row["step"], what)
                continue
            where = (
                f"checkpoint {last_good} (finite, left intact)"
                if last_good
                else "the beginning (no checkpoint was saved yet)"
            )
            reason = (
                f"the last {self.consecutive} updates were all non-finite"
                if self.mode == "skip"
                else "training stopped (config.nonfinite='stop') and saved nothing from it on"
            )
            raise errors.NonFiniteError(
                f"Non-finite {what} at step {row['step']}: {reason}. A rerun resumes from "
                f"{where}; lower the learning rates or check the data (or set "
                f"--config.nonfinite=skip to skip such updates)."
            )


def mean_rows(rows: list[dict]) -> dict:
    skip = {"step", UPDATE_OK, NONFINITE_STATE}
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[-1] if k not in skip}


# ----------------------------------------------------------------------------------------------
# Resume from the newest readable checkpoint.
# ----------------------------------------------------------------------------------------------


def restore_newest_readable(
    workdir: str, config: ml_collections.ConfigDict, safe: frozenset, abstract: State
) -> tuple[State, dict, dict] | None:
    """(state, meta, safe changes) of the newest checkpoint that reads and is finite, else None.

    Unreadable ones are reported and moved aside; the contract is checked against each candidate's
    stored config before its state is read, so a refused change writes nothing.
    """
    ckpt = checkpoint.Checkpointer(workdir, read_only=True)
    try:
        steps = ckpt.all_steps()
        for step in reversed(steps):
            try:
                meta = ckpt.restore_meta(step)
                changes = {}
                if (
                    "config" in meta
                ):  # upgraded: a field it predates counts as the value it ran with
                    changes = contract.check_contract(
                        contract.upgrade(meta["config"]), config.to_dict(), safe, step, workdir
                    )
                state, meta = ckpt.restore(step, abstract)
                if not bool(_all_finite(state)):
                    raise checkpoint.UnreadableCheckpoint(
                        f"checkpoint {ckpt.directory}/{step}: it holds non-finite values"
                    )
                return state, meta, changes
            except checkpoint.UnreadableCheckpoint as e:
                moved = ckpt.move_aside(step)
                logging.warning("Unreadable %s\n  moved aside to %s.", e, moved)
        if steps:
            raise errors.CheckpointError(
                f"None of the checkpoints in {ckpt.directory} ({steps}) could be read; each was "
                f"moved aside as <step>.unreadable. Move one back to retry it, or start a new "
                f"--workdir."
            )
        return None
    finally:
        ckpt.close()


# ----------------------------------------------------------------------------------------------
# Preemption.
# ----------------------------------------------------------------------------------------------


class Preemption:
    """SIGTERM (a TPU preemption notice, SLURM's --signal, `docker stop`) -> stop at the next step
    boundary with a checkpoint. One process: our own handler sets a flag, so a second signal only
    sets it again. Several: JAX's preemption service (started by `jax.distributed.initialize`)
    catches the signal on any host and agrees on one step for all (`reached_preemption_sync_point`,
    as MaxText and Orbax's `reached_preemption` use it)."""

    def __init__(self):
        self.requested = False
        self._multi = jax.process_count() > 1
        self._previous = None
        if not self._multi and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        self.requested = True  # no logging here: a handler may interrupt the logging module

    def reached(self, step: int) -> bool:
        if self._multi:
            from jax.experimental import multihost_utils

            return multihost_utils.reached_preemption_sync_point(step)
        return self.requested

    def close(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


# ----------------------------------------------------------------------------------------------
# The loop.
# ----------------------------------------------------------------------------------------------


def abstract_state(trainer, mesh) -> State:
    """The shapes, dtypes and (replicated) shardings a run's checkpoint is restored into."""
    return checkpoint.abstract_like(jax.eval_shape(trainer.init_state), parallel.replicated(mesh))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> State:
    """Trains `config` in `workdir`, resuming from its newest readable checkpoint if it has one."""
    store.check_workdir(workdir)  # an object store that cannot be served: one line, before work
    method = registry.get(config.method)
    precision.compute_dtype(config)  # a bad value fails here, before anything is built
    if config.nonfinite not in ("stop", "skip"):
        raise errors.ConfigError(
            f"config.nonfinite={config.nonfinite!r}: expected 'stop' or 'skip'."
        )

    # --- Mesh and the method's models, data and steps -----------------------------------------
    mesh = parallel.make_mesh(config.num_devices or None)
    trainer = method.trainer(config, workdir, mesh)
    preemption = Preemption()  # from here on, SIGTERM means: checkpoint at the next step boundary
    try:
        # --- Resume (the config contract is checked before anything is written) ---------------
        abstract = abstract_state(trainer, mesh)
        safe = contract.SAFE_TO_CHANGE | frozenset(method.safe_to_change)
        resumed = restore_newest_readable(workdir, config, safe, abstract)
        step, meta, changes = 0, {}, {}
        if resumed is None:
            state = trainer.init_state()
            if config.init_from:  # a fresh run of a pretrained one: merged by parameter path
                state = transfer.init_from(state, config, workdir)
        else:
            state, meta, changes = resumed
            step = int(jax.device_get(state["step"]))
            for field, (old, new) in changes.items():
                logging.warning("Config change on resume: %s %r -> %r.", field, old, new)
            if "num_steps" in changes and config.optim.get("decay") == "linear":
                logging.warning("The linear lr decay now ends at num_steps=%d.", config.num_steps)
        for key in sorted(k for k in abstract if k.endswith("params")):
            count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract[key]))
            logging.info("%s: %s parameters.", key, f"{count:,}")
        contract.record_config(workdir, config.to_dict(), step, changes)
        trainer.start(meta)
        if resumed is not None:
            logging.info("Resumed from step %d (%d images seen).", step, trainer.images_seen())
        return _run(config, workdir, trainer, state, step, meta, preemption)
    finally:
        trainer.close()
        preemption.close()


def _run(config, workdir, trainer, state: State, step: int, meta: dict, preemption) -> State:
    """The steps, and around them the logs, samples, checkpoints, budget and preemption."""
    writer = run_files.MetricWriter(workdir, config.tensorboard, resume_step=step)
    # At the first step this start trains: another start from this checkpoint purges it with the
    # rest of this start's events, so each config shown is one that trained the steps after it.
    writer.write_config(step + 1, config.to_dict())
    ckpt = checkpoint.Checkpointer(workdir, config.keep_last, config.keep_every)
    health = UpdateHealth(config, state, meta.get("skipped_updates", 0))
    elapsed_before = meta.get("elapsed_s", 0.0)
    start = time.perf_counter()
    elapsed = lambda: elapsed_before + time.perf_counter() - start
    last_saved, last_sampled = (step or None), step
    pending: list[tuple[int, dict]] = []
    timer_images, timer = trainer.images_seen(), start
    done, total, unit = trainer.progress(step)
    bar = run_files.progress_bar(total, done, unit=unit)

    def log(rows: list[dict]) -> None:
        nonlocal timer_images, timer
        health.check(rows, last_saved)
        now, images = time.perf_counter(), trainer.images_seen()
        summary = {
            **mean_rows(rows),
            "img_per_s": (images - timer_images) / max(now - timer, 1e-9),
            "elapsed_s": elapsed(),
        }
        if health.skipped:
            summary["skipped_updates"] = health.skipped
        timer_images, timer = images, now
        writer.write_scalars(rows[-1]["step"], summary)
        shown = {k: f"{v:.3g}" for k, v in summary.items() if k.endswith("loss") or k == "lod"}
        bar.set_postfix(**shown, img_s=f"{summary['img_per_s']:.0f}")

    def save(finished: bool) -> None:
        nonlocal last_saved
        ckpt.save(
            step,
            state,
            {
                **trainer.meta(),
                "config": config.to_dict(),
                "elapsed_s": elapsed(),
                "skipped_updates": health.skipped,
                "done": finished,
            },
        )
        last_saved = step

    def sample() -> None:
        nonlocal last_sampled
        writer.write_image(step, "samples", trainer.sample_grid(state))
        last_sampled = step

    finished = trainer.finished(step)
    preempted = over_budget = False
    try:
        while not finished:
            if config.max_minutes and elapsed() >= 60.0 * config.max_minutes:
                logging.info("Time budget of %.1f minutes reached.", config.max_minutes)
                over_budget = True
                break
            state, metrics = trainer.step(state)
            step += 1
            pending.append((step, metrics))
            done, _, _ = trainer.progress(step)
            bar.update(done - bar.n)
            finished = trainer.finished(step)
            preempted = preemption.reached(step)
            checkpoint_now = step % config.checkpoint_every == 0 or finished or preempted
            sample_now = step % config.sample_every == 0 or finished
            if step % config.log_every == 0 or checkpoint_now or sample_now:
                # Before a save or a grid: a bad update is never checkpointed nor drawn.
                log(fetch_rows(pending))
                pending = []
            if sample_now:
                sample()
            if checkpoint_now:
                save(finished)
            if preempted:
                logging.warning(
                    "Preempted (SIGTERM): saved step %d; rerun the same command to resume.", step
                )
                break
        if over_budget and last_saved != step:  # stopped between two checkpoints
            if pending:
                log(fetch_rows(pending))
            if last_sampled != step:
                sample()
            save(True)
        if not preempted:
            trainer.finish(state)
    finally:
        bar.close()
        ckpt.close()  # waits for the last asynchronous save
        writer.close()
    return state
