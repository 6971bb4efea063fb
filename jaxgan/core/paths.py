"""Where jaxgan keeps what it can recompute: one cache folder for every module."""

from __future__ import annotations

import os


def cache_dir() -> str:
    """`$XDG_CACHE_HOME/jaxgan`, else `~/.cache/jaxgan` (the XDG default); not created here."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "jaxgan")
