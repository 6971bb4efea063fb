"""Network weights on disk: an `.npz` of named float32 arrays ("params/Conv0/kernel") plus a format
tag (`__format__`), an optional JSON info record (`__info__`) and other string records
(`__<name>__`), without pickle, written atomically. The FID Inception-v3 weights
(`eval/inception.py`) and the evaluator's classifiers (`models/classifier.py`) are stored so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxgan.core import run_files


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> {"params/Conv0/kernel": leaf}: names '/'-joined, as Flax names variables;
    empty mappings vanish. Leaves are kept as they are (arrays, `ShapeDtypeStruct`s, ...)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """`flatten`'s inverse: {"a/b": x} -> {"a": {"b": x}} (plain dicts)."""
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        *parents, leaf = path.split("/")
        node = tree
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def mismatches(
    arrays: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]]
) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, wrong_shape) names of `arrays` against `expected` {name: shape},
    each sorted; all three empty when they fit."""
    missing = sorted(set(expected) - set(arrays))
    unexpected = sorted(set(arrays) - set(expected))
    wrong_shape = sorted(
        k for k in set(expected) & set(arrays) if tuple(arrays[k].shape) != tuple(expected[k])
    )
    return missing, unexpected, wrong_shape


def save(
    path: str | os.PathLike,
    flat_arrays: Mapping[str, Any],
    tag: str,
    info: Mapping[str, Any] | None = None,
    records: Mapping[str, str] | None = None,
) -> None:
    """Writes `flat_arrays` as float32 under their names, `tag` as `__format__`, `info` (if given)
    as JSON in `__info__` and each of `records` as `__<name>__`; atomically (no half file)."""
    meta = {"__format__": np.array(tag)}
    if info is not None:
        meta["__info__"] = np.array(json.dumps(dict(info), sort_keys=True))
    for name, text in (records or {}).items():
        meta[f"__{name}__"] = np.array(text)
    arrays = {name: np.asarray(value, np.float32) for name, value in flat_arrays.items()}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **meta, **arrays)

    run_files.atomic_write(path, write)


def load(
    path: str | os.PathLike, tag: str, what: str = "a jaxgan weights file", hint: str = ""
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Reads `save`'s file -> (float32 arrays by name, info; {} without one). Raises ValueError
    "{path} is not {what} (format tag ..., expected ...).{hint}" when its tag is not `tag`."""
    with np.load(path, allow_pickle=False) as stored:
        found = str(stored["__format__"]) if "__format__" in stored.files else None
        if found != tag:
            raise ValueError(
                f"{path} is not {what} (format tag {found!r}, expected {tag!r}).{hint}"
            )
        info = json.loads(str(stored["__info__"])) if "__info__" in stored.files else {}
        arrays = {
            k: stored[k].astype(np.float32, copy=False)
            for k in stored.files
            if not k.startswith("__")
        }
    return arrays, info
