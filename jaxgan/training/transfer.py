"""Start a run from a pretrained one (Transferring GANs, Wang et al. 2018): a merge by path.

`--config.init_from=WORKDIR[:STEP]` names any jaxgan run (its newest checkpoint, or STEP). When a
run starts fresh, the loop hands its initial state to `init_from`, which copies every parameter whose
path and shape the source has, as big_vision's `load` merges pretrained params: the generator (and
its EMA from the source's EMA), the critic (and its non-trainable state, e.g. spectral norm's
vectors), or both (`init_from_networks`). The optimiser state stays fresh, as in the paper. A path
the source lacks is initialised fresh; a shape that differs fails naming the path and both shapes,
unless `init_from_skip` lists it (fnmatch patterns such as `d_params/Output/*`). The table of every
parameter (loaded / fresh / skipped, with shapes) is logged and written to `<workdir>/init_from.txt`.
A resumed run ignores `init_from`: its own checkpoint wins.

An unconditional source can start a conditional (AC-GAN) target, as the paper's Tables 6-7 do: a
per-class BatchNorm scale or offset [num_classes, C] is the source's unconditional [C] tiled to
every class (the reference author's answer in yaxingwang/Transferring-GANs issue #4), and with
Cond Concat (`model.conditioning='concat'`) the generator's input kernel takes the source's rows
for z and keeps fresh rows for the one-hot label. The AC head is new in the target: fresh. Both
show in the table ('tiled', 'extended').
"""

from __future__ import annotations

import fnmatch
import os
from typing import Any

import jax
import numpy as np
from absl import logging

from jaxgan.core import checkpoint, errors, parallel, run_files
from jaxgan.training import contract

# Which state entries each network brings: target entry <- source entry.
NETWORKS = {
    "g": {"g_params": "g_params", "ema_params": "ema_params"},
    "d": {"d_params": "d_params", "d_state": "d_state"},
}


def parse_source(spec: str) -> tuple[str, int | None]:
    """'runs/a' -> ('runs/a', None); 'runs/a:400' -> ('runs/a', 400)."""
    path, sep, step = spec.rpartition(":")
    if sep and step.isdigit():
        return path, int(step)
    return spec, None


def param_path(path) -> str:
    """A pytree key path as '/'-joined dict keys ('Block1/Conv1/kernel'), as Flax names params."""
    return "/".join(str(getattr(k, "key", k)) for k in path)


def flat_params(tree: Any) -> dict[str, Any]:
    return {param_path(p): leaf for p, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _networks(config) -> list[str]:
    names = [n.strip() for n in config.init_from_networks.split(",") if n.strip()]
    unknown = sorted(set(names) - set(NETWORKS))
    if unknown or not names:
        raise errors.ConfigError(
            f"config.init_from_networks={config.init_from_networks!r}: expected 'g', 'd' or 'g,d'."
        )
    return names


def conditional_from_unconditional(name: str, target: np.ndarray, found, concat: bool):
    """(value, status) adapting an unconditional source parameter to a conditional target, or None
    where the shapes are not such a pair (see the module doc)."""
    found = np.asarray(found)
    per_class_norm = name.rsplit("/", 1)[-1] in ("scale", "offset") and found.ndim == 1
    if per_class_norm and target.ndim == 2 and target.shape[1:] == found.shape:
        return np.broadcast_to(found, target.shape), "tiled"
    input_kernel = name.endswith("/kernel") and target.ndim == found.ndim == 2
    generator = name.split("/", 1)[0] in NETWORKS["g"]
    if concat and generator and input_kernel and target.shape[1] == found.shape[1]:
        if target.shape[0] > found.shape[0]:  # z's rows from the source, the label's stay fresh
            return np.concatenate([found, np.asarray(target)[found.shape[0] :]]), "extended"
    return None


def merge(
    state: dict, source: dict, networks: list[str], skip: list[str], concat: bool = False
) -> tuple[dict, list]:
    """(state with the source's parameters copied in by path, the table rows).

    Rows: (path, status, target shape, source shape or None), status 'loaded', 'fresh' (not in the
    source, or a network not transferred), 'skipped' (matched by `skip`), or 'tiled' / 'extended'
    (an unconditional source's parameter adapted to a conditional target; `concat`: the target's
    generator is Cond Concat). Raises ConfigError naming every other path whose shape differs and
    is not skipped.
    """
    state, rows, mismatched = dict(state), [], []
    wanted = {t: s for n in networks for t, s in NETWORKS[n].items()}
    for entry in sorted(k for k in state if k in {t for n in NETWORKS.values() for t in n}):
        if entry not in wanted:
            rows += [
                (f"{entry}/{p}", "fresh", x.shape, None)
                for p, x in flat_params(state[entry]).items()
            ]
            continue
        available = flat_params(source.get(wanted[entry], {}))
        leaves, treedef = jax.tree_util.tree_flatten_with_path(state[entry])
        merged = []
        for key_path, leaf in leaves:
            name = f"{entry}/{param_path(key_path)}"
            found = available.get(param_path(key_path))
            shape = None if found is None else tuple(np.shape(found))
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in skip):
                rows.append((name, "skipped", leaf.shape, shape))
                merged.append(leaf)
            elif found is None:
                rows.append((name, "fresh", leaf.shape, None))
                merged.append(leaf)
            elif shape != tuple(leaf.shape):
                adapted = conditional_from_unconditional(name, leaf, found, concat)
                if adapted is None:
                    mismatched.append(f"  {name}: {tuple(leaf.shape)} here, {shape} in the source")
                    merged.append(leaf)
                else:
                    value, status = adapted
                    rows.append((name, status, leaf.shape, shape))
                    value = np.ascontiguousarray(value, dtype=leaf.dtype)
                    merged.append(jax.device_put(value, leaf.sharding))
            else:
                rows.append((name, "loaded", leaf.shape, shape))
                value = np.asarray(found, dtype=leaf.dtype)
                merged.append(jax.device_put(value, leaf.sharding))
        state[entry] = jax.tree_util.tree_unflatten(treedef, merged)
    if mismatched:
        raise errors.ConfigError(
            "config.init_from: these parameters have another shape in the source run:\n"
            + "\n".join(mismatched)
            + "\nMatch the source's model config, or list them in --config.init_from_skip "
            "(fnmatch patterns, e.g. 'd_params/Output/*') to initialise them fresh."
        )
    return state, rows


def format_table(rows: list, source: str) -> str:
    counts = {s: sum(r[1] == s for r in rows) for s in ("loaded", "fresh", "skipped")}
    adapted = {s: sum(r[1] == s for r in rows) for s in ("tiled", "extended")}
    adapted = "".join(f", {n} {s}" for s, n in adapted.items() if n)  # unconditional -> conditional
    lines = [
        f"init_from {source}: {counts['loaded']} loaded, {counts['fresh']} fresh, "
        f"{counts['skipped']} skipped{adapted}",
        f"{'parameter':60s} {'status':8s} {'shape':>20s} {'source shape':>20s}",
    ]
    for path, status, shape, source_shape in rows:
        lines.append(
            f"{path:60s} {status:8s} {str(tuple(shape)):>20s} "
            f"{'-' if source_shape is None else str(source_shape):>20s}"
        )
    return "\n".join(lines) + "\n"


def init_from(state: dict, config, workdir: str) -> dict:
    """The loop's fresh `state` with `config.init_from`'s parameters merged in (see module doc)."""
    source_dir, step = parse_source(config.init_from)
    if not os.path.isdir(os.path.join(source_dir, "checkpoints")):
        raise errors.ConfigError(
            f"config.init_from={config.init_from!r}: {source_dir} has no checkpoints/ (expected "
            f"a jaxgan run's workdir, optionally with :STEP)."
        )
    ckpt = checkpoint.Checkpointer(source_dir, read_only=True)
    try:
        steps = ckpt.all_steps()
        step = steps[-1] if step is None and steps else step
        if step not in steps:
            raise errors.ConfigError(
                f"config.init_from={config.init_from!r}: no checkpoint {step} (it has {steps})."
            )
        source, _ = ckpt.restore_as_saved(step)
    finally:
        ckpt.close()
    skip = [p.strip() for p in config.init_from_skip.split(",") if p.strip()]
    concat = config.model.get("conditioning") == "concat"
    state, rows = merge(state, source, _networks(config), skip, concat)
    table = format_table(rows, f"{source_dir}:{step}")
    logging.info("%s", table)
    if jax.process_index() == 0:
        run_files.write_text(os.path.join(workdir, "init_from.txt"), table)
    return state


# ----------------------------------------------------------------------------------------------
# Runs written from another project's weights (jaxgan.transfer_convert, jaxgan.import_weights).
# ----------------------------------------------------------------------------------------------


def check_new_workdir(workdir: str) -> None:
    """A converted run goes into a directory without checkpoints: nothing trained is replaced."""
    ckpt_dir = os.path.join(workdir, "checkpoints")
    if os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
        raise errors.ConfigError(
            f"--workdir={workdir} already has checkpoints; convert into a new directory."
        )


def write_converted_run(
    workdir: str, config, state: dict, mesh, meta: dict, notes_name: str, notes: str, step: int = 0
) -> None:
    """Writes `workdir` as a finished run of `config` whose one checkpoint, `step`, holds `state`
    (placed replicated on `mesh`), as the run loop writes them: `config.json` through the run
    contract, the checkpoint with the loop's meta fields plus `meta`, and `notes` (what was
    converted from what) in `notes_name`. `python -m jaxgan.main` on it resumes at `step`."""
    state = jax.device_put(state, parallel.replicated(mesh))
    state["step"] = jax.device_put(np.int32(step), parallel.replicated(mesh))
    os.makedirs(workdir, exist_ok=True)
    contract.record_config(workdir, config.to_dict(), step, {})
    run_files.write_text(os.path.join(workdir, notes_name), notes)
    meta = {
        "data_cursor": 0,
        "config": config.to_dict(),
        "elapsed_s": 0.0,
        "skipped_updates": 0,
        "done": True,
        **meta,
    }
    ckpt = checkpoint.Checkpointer(workdir, keep_last=1)
    try:
        ckpt.save(step, state, meta)
    finally:
        ckpt.close()
