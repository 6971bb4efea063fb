"""Where a run's files live: a local folder, or a folder of an object store (`gs://bucket/run`,
`s3://bucket/run`) reached through `etils.epath`.

Every file a run writes outside its checkpoints (Orbax and TensorStore speak gs:// themselves) goes
through here. Locally nothing changes: a file is replaced whole through a temporary file and
`os.replace`, and a JSON-rows log is one file that rows are appended to. An object store has no
rename, no append and no lock, but an object appears whole: a file is one object write, and a log
is its file plus one object per appended row (`<log>.parts/<time_ns>-<process>-<random>.json`),
read back in name order.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any

import jax
from etils import epath

from jaxgan.core import errors

# `scheme://`: what a URL starts with (RFC 3986's scheme characters).
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# What each served scheme needs: (importable modules, any of which serves it; what to install).
BACKENDS = {
    "gs": (("gcsfs", "tensorflow"), "pip install 'jaxgan[gcs]'"),
    "s3": (("s3fs",), "pip install 'jaxgan[s3]'"),
}
PARTS_SUFFIX = ".parts"


def is_url(path: str | os.PathLike) -> bool:
    """Whether `path` starts with a `scheme://` prefix (gs://, s3://, ...)."""
    return bool(_URL.match(os.fspath(path)))


def is_object_store(path: str | os.PathLike) -> bool:
    """Whether `path`'s files are objects (no rename, append or lock). The tests replace this
    function to run the object-store code on a local folder."""
    return is_url(path)


def workdir_path(workdir: str | os.PathLike) -> str:
    """The canonical name of a workdir: a local one made absolute, a URL unchanged (abspath would
    turn gs://b/x into ./gs:/b/x)."""
    workdir = os.fspath(workdir)
    return workdir if is_url(workdir) else os.path.abspath(workdir)


def check_workdir(workdir: str | os.PathLike) -> None:
    """Raises a one-line ConfigError where `workdir` is a URL this installation cannot serve (its
    scheme, its missing backend, or a store that does not answer); a local workdir passes."""
    workdir = os.fspath(workdir)
    if not is_url(workdir):
        return
    scheme = workdir.split("://", 1)[0].lower()
    if scheme not in BACKENDS:
        served = ", ".join(f"{s}://" for s in BACKENDS)
        raise errors.ConfigError(
            f"--workdir={workdir}: {scheme}:// is not supported; a workdir is a local folder or "
            f"one of {served}."
        )
    modules, install = BACKENDS[scheme]
    if not any(importlib.util.find_spec(m) is not None for m in modules):
        raise errors.ConfigError(
            f"--workdir={workdir}: {scheme}:// needs {' or '.join(modules)}, which is not "
            f"installed: {install}."
        )
    # The bucket, not the folder: a new run's folder does not exist yet, and creating it could
    # create the bucket (gcsfs makes missing buckets). fsspec's `exists` answers False for any
    # failure (no bucket, no network, no credentials); other backends may raise instead.
    bucket = workdir.split("://", 1)[1].split("/", 1)[0]
    try:
        found = epath.Path(f"{scheme}://{bucket}").exists()
    except Exception as e:
        reason = " ".join(str(e).split())[:300] or type(e).__name__
        raise errors.ConfigError(f"cannot reach {workdir}: {reason}") from None
    if not found:
        raise errors.ConfigError(
            f"cannot reach {workdir}: bucket {scheme}://{bucket} does not exist or cannot be "
            f"reached with these credentials and network."
        )


def orbax_directory(directory: str) -> str | epath.Path:
    """What Orbax is given: a URL as an `epath.Path` (it opens gs:// itself), a local folder as
    the string it always got."""
    return epath.Path(directory) if is_url(directory) else directory


def makedirs(path: str) -> None:
    if is_object_store(path):
        epath.Path(path).mkdir(parents=True, exist_ok=True)  # an object store's folders: names
    else:
        os.makedirs(path, exist_ok=True)


def exists(path: str) -> bool:
    return epath.Path(path).exists() if is_object_store(path) else os.path.exists(path)


def read_bytes(path: str) -> bytes:
    return epath.Path(path).read_bytes()


def read_text(path: str) -> str:
    return epath.Path(path).read_text()


def listdir(path: str) -> list[str]:
    """The names in folder `path`, sorted ([] where it does not exist)."""
    if not exists(path):
        return []
    return sorted(p.name for p in epath.Path(path).iterdir())


def remove(path: str) -> None:
    epath.Path(path).unlink(missing_ok=True)


def rename(source: str, target: str) -> None:
    """A file or folder to a new name: locally `os.rename`; on an object store the backend copies
    every object and deletes the originals (slow for a big folder, not atomic)."""
    if is_object_store(source):
        epath.Path(source).rename(target)
    else:
        os.rename(source, target)


def _file_mode() -> int:
    """What `open(path, 'w')` would give (0o666 less the umask): mkstemp's files are 0o600."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


def atomic_write(
    path: str | os.PathLike, write_fn: Callable[[str], Any], suffix: str = ".tmp"
) -> None:
    """`write_fn(tmp)` writes a temporary file (`tmp*<suffix>`, in the folder of `path`, which must
    exist; the mode `open(path, 'w')` would give), then `os.replace` puts it at `path` (no fsync):
    a reader, or a run killed mid-write, sees the old file or the whole new one, never half a file.
    If `write_fn` raises, the temporary file is removed. `suffix` keeps the extension a writer
    reads its format from (PIL, matplotlib). Local files only (`write_atomic` serves both)."""
    fd, tmp = tempfile.mkstemp(suffix=suffix, dir=os.path.dirname(os.fspath(path)) or ".")
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    try:
        write_fn(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_atomic(path: str, data: bytes | str, suffix: str = ".tmp") -> None:
    """`data` at `path`, whole or not at all: locally `atomic_write` (a temporary file, then a
    rename); on an object store one object write (an object appears whole)."""
    if is_object_store(path):
        target = epath.Path(path)
        target.write_bytes(data) if isinstance(data, bytes) else target.write_text(data)
        return

    def write(tmp: str) -> None:
        with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)

    atomic_write(path, write, suffix)


# ----------------------------------------------------------------------------------------------
# JSON-rows logs: one file, and on an object store one object per appended row.
# ----------------------------------------------------------------------------------------------


def append_row(path: str, row: dict) -> None:
    """One JSON row at the end of log `path`. Locally one appended line (after a torn last line,
    a killed writer's, it starts on a new one); on an object store one object of its own, named
    so that name order is append order, and unique between processes."""
    line = json.dumps(row, default=str) + "\n"
    if is_object_store(path):
        name = f"{time.time_ns():020d}-{jax.process_index():05d}-{os.urandom(4).hex()}.json"
        parts = f"{path}{PARTS_SUFFIX}"
        makedirs(parts)
        epath.Path(parts, name).write_text(line)
        return
    makedirs(os.path.dirname(path) or ".")
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write(line.encode())


def _parse_lines(lines: Iterable[bytes], first: int, rows: list, bad_lines: list) -> int:
    """Adds the JSON objects of `lines` to `rows` and the 1-based numbers (from `first`) of the
    lines that are not to `bad_lines`; returns the next line number."""
    number = first - 1
    for number, line in enumerate(lines, first):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:  # JSONDecodeError, or UnicodeDecodeError of a cut character
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad_lines.append(number)
    return number + 1


def _parts(path: str) -> list[str]:
    """The row objects of log `path` on an object store, in append order."""
    folder = f"{path}{PARTS_SUFFIX}"
    return [os.path.join(folder, name) for name in listdir(folder) if name.endswith(".json")]


def parse_rows(path: str) -> tuple[list[dict], list[int]]:
    """(rows, 1-based numbers of the lines that are not JSON objects) of log `path`: its file,
    then on an object store its row objects (numbered on after the file's lines)."""
    return _parse_rows(path, _parts(path) if is_object_store(path) else [])


def _parse_rows(path: str, parts: list[str]) -> tuple[list[dict], list[int]]:
    rows, bad_lines = [], []
    number = 1
    if exists(path):
        if is_object_store(path):
            number = _parse_lines(read_bytes(path).splitlines(), 1, rows, bad_lines)
        else:
            with open(path, "rb") as f:  # bytes: a torn line may end inside a multi-byte character
                number = _parse_lines(f, 1, rows, bad_lines)
    for part in parts:
        number = _parse_lines(read_bytes(part).splitlines(), number, rows, bad_lines)
    return rows, bad_lines


def rewrite_rows(path: str, keep: Callable[[dict], bool]) -> list[int]:
    """Log `path` rewritten whole with the rows `keep` accepts; returns the numbers of the lines
    dropped as not JSON (nothing is written where the log does not exist). On an object store the row objects read are deleted after the file is
    written (a writer killed between the two leaves those rows twice: one writer, process 0)."""
    parts = _parts(path) if is_object_store(path) else []
    if not parts and not exists(path):
        return []
    rows, bad_lines = _parse_rows(path, parts)
    makedirs(os.path.dirname(path) or ".")
    write_atomic(path, "".join(json.dumps(r) + "\n" for r in rows if keep(r)))
    for part in parts:
        remove(part)
    return bad_lines


def written_bytes(write: Callable[[Any], Any]) -> bytes:
    """What `write(file)` writes (PIL's `save`, matplotlib's `savefig`, `np.savez`), as bytes."""
    buffer = io.BytesIO()
    write(buffer)
    return buffer.getvalue()
