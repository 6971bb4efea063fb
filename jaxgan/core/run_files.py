"""What a run shows: `metrics.jsonl`, optional TensorBoard events, PNG sample grids, a progress bar.

The writer has CLU's method names (`write_scalars`, `write_images`, `flush`) without CLU's
TensorFlow dependency: JSON lines (one object per logging step, trivially parsed by the evaluator
and the tests, as big_vision does) and tensorboardX when it is installed. Only process 0 writes.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging as std_logging
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from absl import logging
from PIL import Image


class _DropLibraryInfo(std_logging.Filter):
    """Orbax logs dozens of INFO lines per checkpoint through absl; keep libraries' warnings only."""

    _LIBRARIES = tuple(f"{os.sep}{name}{os.sep}" for name in ("orbax", "jax", "jaxlib"))

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or not any(
            lib in record.pathname for lib in self._LIBRARIES
        )


def quiet_library_logs() -> None:
    """Keeps jaxgan's own INFO lines on stderr and drops the libraries' INFO chatter."""
    handler = logging.get_absl_handler()
    if not any(isinstance(f, _DropLibraryInfo) for f in handler.filters):
        handler.addFilter(_DropLibraryInfo())


def make_grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """images: [N, H, W, C] in [-1, 1] -> one uint8 [rows·(H+p)+p, cols·(W+p)+p, C] tiled picture."""
    images = np.asarray(images, np.float32)
    n, h, w, c = images.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    pixels = to_uint8(images)
    grid = np.full(
        (rows * (h + padding) + padding, columns * (w + padding) + padding, c), 255, np.uint8
    )
    for i in range(n):
        r, col = divmod(i, columns)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top : top + h, left : left + w] = pixels[i]
    return grid


def to_uint8(images) -> np.ndarray:
    """[-1, 1] floats -> uint8 as the metric references quantise: round(x·127.5 + 127.5), saturated."""
    return np.clip(np.rint(np.asarray(images, np.float32) * 127.5 + 127.5), 0, 255).astype(np.uint8)


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
    reads its format from (PIL, matplotlib)."""
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


def save_png(path: str, pixels: np.ndarray) -> None:
    """Writes atomically (temporary file, then rename): a killed run never leaves half a PNG."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    atomic_write(path, image.save, suffix=".png")


def read_jsonl(path: str) -> list[dict]:
    """The rows of a JSON-lines file (`[]` if it does not exist); never raises on its content.

    A line that is not a JSON object (the torn last line of a writer killed mid-append, or the zero
    bytes a crash can leave) is skipped, with one warning naming the file and the line numbers.
    """
    rows, bad_lines = parse_jsonl(path)
    if bad_lines:
        logging.warning(
            "%s: skipped line(s) %s, not JSON rows (a writer killed mid-line leaves a torn line).",
            path,
            ", ".join(map(str, bad_lines)),
        )
    return rows


def parse_jsonl(path: str) -> tuple[list[dict], list[int]]:
    """(rows, 1-based numbers of the lines that are not JSON objects) of a JSON-lines file, with
    no warning: for a reader that reports a bad line once over many reads (`evaluate.MetricsLog`)."""
    if not os.path.exists(path):
        return [], []
    rows, bad_lines = [], []
    with open(path, "rb") as f:  # bytes: a torn line may end inside a multi-byte character
        for number, line in enumerate(f, 1):
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
    return rows, bad_lines


class MetricWriter:
    """JSONL (+ TensorBoard) scalars and PNG images under a workdir."""

    def __init__(self, workdir: str, tensorboard: bool = True, resume_step: int | None = None):
        self.workdir = workdir
        self.active = jax.process_index() == 0
        self.path = os.path.join(workdir, "metrics.jsonl")
        self._tb = None
        if not self.active:
            return
        os.makedirs(workdir, exist_ok=True)
        self._drop_rows_after(resume_step)
        # Temporary files of writes a killed run never finished (`save_png`, `write_text`); not
        # under eval/, which an evaluator may be writing right now.
        root = glob.escape(workdir)
        for leftover in glob.glob(f"{root}/tmp*.tmp") + glob.glob(f"{root}/*/tmp*.png"):
            if os.path.basename(os.path.dirname(leftover)) != "eval":
                os.remove(leftover)
        self._file = open(self.path, "a")
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter

                self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
            except ImportError:
                logging.info(
                    "tensorboardX is not installed: no TensorBoard events (pip install 'jaxgan[tensorboard]')."
                )

    def _drop_rows_after(self, step: int | None) -> None:
        """A run resumed from a checkpoint at `step` continues the log from there, not after a gap."""
        if step is None or not os.path.exists(self.path):
            return
        rows = [r for r in read_jsonl(self.path) if r.get("step", 0) <= step]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in rows))

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        if not self.active:
            return
        row = {"step": int(step), **{k: _to_python(v) for k, v in scalars.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._tb:
            for name, value in row.items():
                if name != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(name, value, step)

    def write_image(self, step: int, name: str, pixels: np.ndarray) -> str:
        """pixels: uint8 [H, W, C]. Saved as `<workdir>/<name>/<step:08d>.png`; returns the path."""
        path = os.path.join(self.workdir, name, f"{step:08d}.png")
        if self.active:
            save_png(path, pixels)
            if self._tb:
                self._tb.add_image(name, pixels, step, dataformats="HWC")
        return path

    def flush(self) -> None:
        if self.active and self._tb:
            self._tb.flush()

    def close(self) -> None:
        if self.active:
            self._file.close()
            if self._tb:
                self._tb.close()


def _to_python(value):
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else value.tolist()


def write_text(path: str, text: str) -> None:
    """Atomically (temporary file in the same folder, then rename): never half a file."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write)


def write_json(path: str, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=True, default=str) + "\n")


def append_jsonl(path: str, row: dict) -> None:
    """One JSON line; after a torn last line (a killed writer) it starts on a new line."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write((json.dumps(row, default=str) + "\n").encode())


def progress_bar(total: int, initial: int = 0, unit: str = "step", desc: str = "train"):
    """A tqdm bar (ETA included) on process 0; a silent stand-in elsewhere."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit=unit,
        desc=desc,
        dynamic_ncols=True,
        disable=jax.process_index() != 0,
        smoothing=0.1,
    )
