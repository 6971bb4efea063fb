"""The real-set cache: arrays computed from reproducible image sets (features, a real classifier,
the reals' MS-SSIM), one `.npz` per key.

A file is `<set>-<what>-<hash>.npz` under `--cache_dir` (default `$XDG_CACHE_HOME/jaxgan/eval`, else
`~/.cache/jaxgan/eval`). The hash is of the key, which the file also stores and which must match on
load, so a collision or a renamed file is recomputed, never reused. The key is everything the
arrays depend on: the set's own key (dataset, split, data_dir and version, resolution, channels,
count, order seed, the files' names/sizes/mtimes), the network, its weights' hash, its resize and
the code version of that feature path (`features.CODE_VERSION`), and this file's `FORMAT`. A file
that cannot be read (a disk filled mid-write by another tool, a truncated copy) is recomputed with
a warning. Generated images are never cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Callable

import numpy as np
from absl import logging

from jaxgan.core import run_files

FORMAT = 3  # 2: keys name the feature path's code version, the data's directory and version;
#            3: transparent pixels of image files read as white (they kept their RGB before)
UNREADABLE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile)


class Cache:
    def __init__(self, directory: str):
        self.directory = directory

    @staticmethod
    def _text(key: dict) -> str:
        return json.dumps({"format": FORMAT, **key}, sort_keys=True)

    def path(self, key: dict) -> str:
        digest = hashlib.sha256(self._text(key).encode()).hexdigest()[:12]
        slug = "-".join(
            str(key[k]) for k in ("set", "what") if k in key
        )  # for people; hash decides
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", slug).strip("_")[-60:]
        return os.path.join(self.directory, f"{slug}-{digest}.npz")

    def _read(self, path: str, text: str) -> dict[str, np.ndarray] | None:
        """The arrays at `path` if it holds `text`'s key; None (with a warning) otherwise."""
        try:
            with np.load(path, allow_pickle=False) as stored:
                if str(stored["__key__"]) == text:
                    return {k: stored[k] for k in stored.files if k != "__key__"}
            logging.warning("Cache file %s has a different key; recomputing it.", path)
        except UNREADABLE as e:
            logging.warning("Cache file %s is unreadable (%s); recomputing it.", path, e)
        return None

    def get_or_compute(
        self, key: dict, compute: Callable[[], dict[str, np.ndarray]]
    ) -> dict[str, np.ndarray]:
        path, text = self.path(key), self._text(key)
        if os.path.exists(path):
            arrays = self._read(path, text)
            if arrays is not None:
                logging.info("Real-set cache hit: %s", path)
                return arrays
        arrays = compute()
        os.makedirs(self.directory, exist_ok=True)
        # Atomic: a reader sees the old file or the whole new one.
        run_files.atomic_write(
            path, lambda tmp: np.savez(tmp, __key__=np.array(text), **arrays), suffix=".npz"
        )
        logging.info("Real-set cache written: %s", path)
        return arrays
