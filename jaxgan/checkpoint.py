"""A thin Orbax `CheckpointManager` wrapper: one composite item per step.

Each checkpoint `<workdir>/checkpoints/<step>/` holds `state` (generator, critic, EMA generator,
both optimizer states, step, RNG key) and `meta` (JSON: the data cursor, the config, anything a
loop needs to continue exactly). Orbax writes into a temporary directory and renames it when the
save is complete, so a run killed mid-save leaves the previous checkpoints intact and the partial
one is ignored (and cleaned up) on restart. Every process calls save/restore (Orbax coordinates).
Restoring goes into abstract arrays that carry the *current* mesh's shardings, so a run resumes on
a different device count.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath


class Checkpointer:
    def __init__(
        self,
        workdir: str,
        keep_last: int = 3,
        keep_every: int | None = None,
        read_only: bool = False,
    ):
        """Keeps the `keep_last` newest checkpoints plus every step that is a multiple of `keep_every`."""
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep_last,
            keep_period=keep_every or None,
            create=not read_only,
            cleanup_tmp_directories=not read_only,
            read_only=read_only,
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "meta")
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        self._manager.reload()
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Asynchronous: returns once the arrays are copied off the devices."""
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
        """abstract_state: a pytree of `jax.ShapeDtypeStruct`s with the shardings to restore into."""
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
            ),
        )
        return restored.state, dict(restored.meta)

    def restore_meta(self, step: int) -> dict:
        return dict(
            self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        )

    def restore_state_entry(
        self, step: int, key: str, sharding: jax.sharding.Sharding
    ) -> tuple[Any, dict]:
        """Restores only `state[key]` (e.g. "ema_params") of checkpoint `step`, and its meta.

        An Orbax partial restore: the structure and shapes come from the checkpoint's own metadata
        (so no model has to be built first), and only that entry's arrays are read, placed with
        `sharding`. What the evaluator uses: the EMA generator without the critic or the optimizer
        states.
        """
        handler = ocp.PyTreeCheckpointHandler()
        try:
            stored = handler.metadata(epath.Path(self.directory) / str(step) / "state").tree
        finally:
            handler.close()
        if key not in stored:
            raise KeyError(
                f"Checkpoint {self.directory}/{step} has no state entry {key!r} "
                f"(it has {sorted(stored)})."
            )
        abstract = {
            key: jax.tree.map(
                lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding), stored[key]
            )
        }
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
        return restored.state[key], dict(restored.meta)

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def abstract_like(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """ShapeDtypeStructs of `tree` (arrays or structs), all placed with `sharding`."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
