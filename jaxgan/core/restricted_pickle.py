"""Read network pickles that hold arrays only, without running any code they name.

A pickle is a program: loading one calls whatever callables it names (`os.system`,
`builtins.eval`, ...). `load` runs a `pickle.Unpickler` whose `find_class` hands out only what
numpy arrays and scalars are rebuilt from (numpy 1.x and 2.x spell the module differently), an
`OrderedDict`, and, for the TensorFlow-era network pickles of tkarras/progressive_growing_of_gans
(`tfutil.Network`, whose `__getstate__` is a plain dict of names, strings and arrays), a
`NetworkState` that only keeps that dict. Anything else is refused before it is called, with an
error naming it. The source code a network pickle carries (`build_module_src`) stays a string:
nothing here executes it.
"""

from __future__ import annotations

import io
import os
import pickle
from collections import OrderedDict
from typing import Any

import numpy as np

from jaxgan.core import errors


class UnsafePickleError(errors.UserError, pickle.UnpicklingError):
    """A pickle asked for a class or function outside the allowed list."""


class NetworkState:
    """Stands in for `tfutil.Network`: unpickling sets `state`, the dict its `__getstate__` made
    (version, name, static_kwargs, build_module_src, build_func_name, variables)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict):
            raise UnsafePickleError(
                f"A tfutil.Network in the pickle has a {type(state).__name__} state, not a dict."
            )
        self.state = state


def _numpy_core():
    # numpy 2 moved numpy.core to numpy._core; pickles written by numpy 1 name numpy.core.
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric
    return multiarray, numeric


_MULTIARRAY, _NUMERIC = _numpy_core()

ALLOWED: dict[tuple[str, str], Any] = {
    **{
        (f"{core}.multiarray", name): getattr(_MULTIARRAY, name)
        for core in ("numpy.core", "numpy._core")
        for name in ("_reconstruct", "scalar")
    },
    # Protocol 5 pickles rebuild arrays from their buffer.
    **{
        (f"{core}.numeric", "_frombuffer"): _NUMERIC._frombuffer
        for core in ("numpy.core", "numpy._core")
    },
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): OrderedDict,
    ("tfutil", "Network"): NetworkState,
}


class RestrictedUnpickler(pickle.Unpickler):
    """`pickle.Unpickler` that resolves only the names in `ALLOWED` (and no persistent ids)."""

    def __init__(self, file, source: str = "The pickle"):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in ALLOWED)
            raise UnsafePickleError(
                f"{self.source} asks for {module}.{name}, which this reader refuses to load: it "
                f"loads arrays only ({allowed}). Load only network pickles from a source you "
                f"trust; a pickle that needs other classes is not one of the formats jaxgan reads."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self.source} holds a persistent id {pid!r}; refused.")


def loads(data: bytes, source: str = "The pickle") -> Any:
    """The object a pickle's bytes hold, built from `ALLOWED` names only."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), source).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise errors.UserError(f"{source} is not a readable pickle ({e}).") from e


def load(path: str | os.PathLike) -> Any:
    """`loads` of a file; a missing file is an error naming it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise errors.UserError(f"No such pickle: {path!r}.")
    with open(path, "rb") as f:
        return loads(f.read(), source=f"Pickle {path!r}")
