"""The object-store code path on a local folder, for tests/test_object_store.py.

`install(root, set_attribute)` makes the files under `root` take `jaxgan.core.store`'s object-store
path (`store.is_object_store` answers True for them) and makes `os.replace`, `os.rename`,
`fcntl.flock` and append-mode `open` raise for them outside `<root>/run/checkpoints/` (Orbax's,
which renames its own temporary directories on every store), so any POSIX-only operation left on
the way fails. `set_attribute` is pytest's `monkeypatch.setattr` in a test, or `setattr` in a
subprocess (tests/object_store_site/sitecustomize.py).
"""

import builtins
import fcntl
import os
from collections.abc import Callable

from jaxgan.core import store


def install(root: str, set_attribute: Callable[[object, str, object], None]) -> None:
    root = os.path.abspath(root)
    checkpoints = os.path.join(root, "run", "checkpoints")

    def guarded(path) -> bool:
        path = os.path.abspath(os.fspath(path))
        inside = path == root or path.startswith(root + os.sep)
        return inside and not (path == checkpoints or path.startswith(checkpoints + os.sep))

    def forbid(name, *paths):
        if any(guarded(p) for p in paths if isinstance(p, (str, os.PathLike))):
            raise AssertionError(f"{name}{paths} on an object store")

    real_replace, real_rename, real_flock, real_open = os.replace, os.rename, fcntl.flock, open

    def replace(src, dst, *args, **kwargs):
        forbid("os.replace", src, dst)
        return real_replace(src, dst, *args, **kwargs)

    def rename(src, dst, *args, **kwargs):
        forbid("os.rename", src, dst)
        return real_rename(src, dst, *args, **kwargs)

    def flock(f, operation):
        forbid("fcntl.flock", getattr(f, "name", ""))
        return real_flock(f, operation)

    def open_(file, mode="r", *args, **kwargs):
        if "a" in mode or "+" in mode:
            forbid(f"open(mode={mode!r})", file)
        return real_open(file, mode, *args, **kwargs)

    set_attribute(store, "is_object_store", lambda path: os.fspath(path).startswith(root))
    set_attribute(os, "replace", replace)
    set_attribute(os, "rename", rename)
    set_attribute(fcntl, "flock", flock)
    set_attribute(builtins, "open", open_)
