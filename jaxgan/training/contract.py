"""The config contract: which fields a resumed run may change, and the record of every config.

A checkpoint's parameters mean what its config says. When a run resumes, the stored config is
compared with the new one (`check_contract`); a changed field outside `SAFE_TO_CHANGE` (and the
method's own list) is refused, naming each field. `record_config` keeps `config.json` (the latest)
and `config_history.jsonl` (every config a run started with, the step and what changed). A config
read back from a run is `upgrade`d: the fields added since it was saved get the values it ran with.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
from typing import Any

import jax
import ml_collections

from jaxgan.core import cpu_backend, errors, run_files, store

# Fields a resumed run may change: how long it runs, how often it reports, where it runs, the
# learning rates (a fine-tune's). Everything else changes what the checkpoint's parameters mean.
SAFE_TO_CHANGE = frozenset(
    {
        "num_steps",
        "max_minutes",
        "log_every",
        "sample_every",
        "num_samples",
        "checkpoint_every",
        "keep_last",
        "keep_every",
        "tensorboard",
        "num_devices",
        "nonfinite",
        "compute_dtype",  # the state is float32 either way (jaxgan/core/precision.py)
        "data.data_dir",
        "optim.g_lr",
        "optim.d_lr",
        "init_from",  # read only when a run starts fresh
        "init_from_networks",
        "init_from_skip",
    }
)


# Fields added to the configs after runs had been saved without them, with the value those runs
# behaved as (the defaults of jaxgan/configs/common.py; progressive's conditioning is jaxgan/configs/pggan.py's),
# by method ('*': every method). `upgrade` fills them into a stored config.
# data.preprocess is not in SAFE_TO_CHANGE: the parameters keep their shapes, but a generator
# learns the scale and framing the transform shows it (train and test must be "at the same
# scale", the reference's tips), the evaluator re-reads the test images with it, and a resumed
# run would no longer see the uninterrupted run's batches: a new mode is a new run.
_TRANSLATION_ADDED = {"data.preprocess": "resize_and_crop"}
ADDED_FIELDS: dict[str, dict[str, Any]] = {
    "*": {"compute_dtype": "float32"},
    "gan": {
        "model.conditional_generator": False,
        "model.ac_head": False,
        "model.projection": False,
        "eval_batchnorm": "batch",
    },
    "progressive": {
        "model.conditional_generator": False,
        "model.ac_head": False,
        "model.projection": False,
        "model.conditioning": "concat",
        "model.mbdisc_kernels": 0,
        "model.downscale_before_activation": False,
    },
    "cyclegan": {**_TRANSLATION_ADDED, "gan_weight": 1.0},
    "nicegan": _TRANSLATION_ADDED,
}


def upgrade(stored):
    """A config read from a run (`config.json`, a checkpoint's meta), a dict or a ConfigDict, as a
    copy of the same type with the `ADDED_FIELDS` of its method that it lacks filled in."""
    is_config_dict = isinstance(stored, ml_collections.ConfigDict)
    tree = copy.deepcopy(stored.to_dict() if is_config_dict else stored)
    added = {**ADDED_FIELDS["*"], **ADDED_FIELDS.get(tree.get("method"), {})}
    for field, default in added.items():
        *parents, name = field.split(".")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node.setdefault(name, default)
    return ml_collections.ConfigDict(tree) if is_config_dict else tree


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{'optim': {'g_lr': 1}} -> {'optim.g_lr': 1}; values in their JSON form (tuples -> lists)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.loads(json.dumps(value, default=str))
    return flat


def config_changes(old: dict, new: dict) -> dict[str, tuple[Any, Any]]:
    """field -> (old, new) for every field whose value differs ('<absent>' where one lacks it)."""
    old, new = flatten(old), flatten(new)
    return {
        k: (old.get(k, "<absent>"), new.get(k, "<absent>"))
        for k in sorted(set(old) | set(new))
        if old.get(k, "<absent>") != new.get(k, "<absent>")
    }


def check_contract(old: dict, new: dict, safe: frozenset, step: int, workdir: str) -> dict:
    """Raises ConfigError naming every changed field that is not safe mid-run; returns the safe
    changes. Fields only the new config has were added by a newer jaxgan and are allowed."""
    changes = config_changes(old, new)
    refused = {k: v for k, v in changes.items() if k not in safe and v[0] != "<absent>"}
    if refused:
        fields = "\n".join(f"  {k}: {a!r} -> {b!r}" for k, (a, b) in refused.items())
        raise errors.ConfigError(
            f"{workdir} was trained to step {step} with a different config, and these fields "
            f"change what its parameters mean:\n{fields}\nResume with the stored values (see "
            f"{os.path.join(workdir, 'config.json')}), or train into a new --workdir. Fields a "
            f"resumed run may change: {', '.join(sorted(safe))}."
        )
    return changes


def record_config(workdir: str, config: dict, step: int, changes: dict) -> None:
    """`config.json` (the latest config, what tools read) and one `config_history.jsonl` row per
    run start with a new config, so no earlier config is lost. Process 0 writes."""
    if jax.process_index() != 0:
        return
    store.makedirs(workdir)
    history = os.path.join(workdir, "config_history.jsonl")
    rows = run_files.read_jsonl(history)
    if not rows or rows[-1].get("config") != json.loads(json.dumps(config, default=str)):
        row = {
            "step": step,
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "changes": {k: list(v) for k, v in changes.items()},
            # Not part of the config (it changes no result beyond float rounding) but of its speed.
            "xla_cpu_convolutions": cpu_backend.current(),
            "xla_cpu_convolutions_why": cpu_backend.reason(),
            "config": config,
        }
        run_files.append_jsonl(history, row)
    run_files.write_json(os.path.join(workdir, "config.json"), config)
