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

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def abstract_like(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """ShapeDtypeStructs of `tree` (arrays or structs), all placed with `sharding`."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
