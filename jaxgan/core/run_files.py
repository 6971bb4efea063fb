"""What a run shows: `metrics.jsonl`, optional TensorBoard events, PNG sample grids, a progress bar.

The writer has CLU's method names (`write_scalars`, `write_images`, `flush`) without CLU's
TensorFlow dependency: JSON lines (one object per logging step, trivially parsed by the evaluator
and the tests, as big_vision does) and tensorboardX when it is installed. Only process 0 writes.
"""

from __future__ import annotations

import glob
import json
import logging as std_logging
import math
import os
import time
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from absl import logging
from PIL import Image

from jaxgan.core import store


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


# Temporary file, then rename (local files; `store.write_atomic` serves object stores too).
atomic_write = store.atomic_write


def save_png(path: str, pixels: np.ndarray) -> None:
    """Writes atomically (`store.write_atomic`): a killed run never leaves half a PNG."""
    store.makedirs(os.path.dirname(path) or ".")
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    store.write_atomic(path, store.written_bytes(lambda f: image.save(f, format="PNG")), ".png")


def read_jsonl(path: str) -> list[dict]:
    """The rows of a JSON-lines file (`[]` if it does not exist); never raises on its content.

    A line that is not a JSON object (the torn last line of a writer killed mid-append, or the zero
    bytes a crash can leave) is skipped, with one warning naming the file and the line numbers.
    """
    rows, bad_lines = parse_jsonl(path)
    _warn_bad_lines(path, bad_lines)
    return rows


def _warn_bad_lines(path: str, bad_lines: list[int]) -> None:
    if bad_lines:
        logging.warning(
            "%s: skipped line(s) %s, not JSON rows (a writer killed mid-line leaves a torn line).",
            path,
            ", ".join(map(str, bad_lines)),
        )


def parse_jsonl(path: str) -> tuple[list[dict], list[int]]:
    """(rows, 1-based numbers of the lines that are not JSON objects) of a JSON-lines file (on an
    object store, with its row objects: `store.parse_rows`), with no warning: for a reader that
    reports a bad line once over many reads (`evaluate.MetricsLog`)."""
    return store.parse_rows(path)


class TensorBoardEvents:
    """One tensorboardX events file in `logdir`, written by process 0; where `enabled` is False or
    tensorboardX is not installed (one info line says so), every method does nothing.

    purge_step: the step a resumed run continues at. TensorBoard then drops the events of earlier
    files in `logdir` at this step and after (tensorboardX writes a `SessionLog.START` event at
    `purge_step` first), so no step shows twice. tensorboardX names a
    file by the second and the host, and truncates a file of that name: the name here also ends in
    the nanosecond and the process id, so writers started in one second (a restart, evaluators of
    one run) get files of their own, in the order they started (the order TensorBoard reads).
    """

    def __init__(self, logdir: str, enabled: bool = True, purge_step: int | None = None):
        self.logdir = logdir
        self._writer = None
        if not enabled or jax.process_index() != 0:
            return
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            logging.info(
                "tensorboardX is not installed: no TensorBoard events in %s "
                "(pip install 'jaxgan[tensorboard]').",
                logdir,
            )
            return
        suffix = f".{time.time_ns()}.{os.getpid()}"
        self._writer = SummaryWriter(logdir, purge_step=purge_step, filename_suffix=suffix)

    def scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        """Each int or float of `scalars` as the scalar of its name (other values are skipped)."""
        if self._writer is None:
            return
        for name, value in scalars.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(name, value, step)

    def image(self, step: int, name: str, pixels: np.ndarray) -> None:
        """pixels: uint8 [H, W, C]."""
        if self._writer is not None:
            self._writer.add_image(name, pixels, step, dataformats="HWC")

    def text(self, step: int, name: str, markdown: str) -> None:
        if self._writer is not None:
            self._writer.add_text(name, markdown, step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class MetricWriter:
    """JSONL (+ TensorBoard) scalars and PNG images under a workdir.

    resume_step: the step the run starts from; rows after it are cut from `metrics.jsonl` and
    purged from TensorBoard's view of earlier events files (`TensorBoardEvents`).
    """

    def __init__(self, workdir: str, tensorboard: bool = True, resume_step: int | None = None):
        self.workdir = workdir
        self.active = jax.process_index() == 0
        self.path = os.path.join(workdir, "metrics.jsonl")
        purge_step = None if resume_step is None else resume_step + 1
        self._tb = TensorBoardEvents(os.path.join(workdir, "tensorboard"), tensorboard, purge_step)
        self._file = None  # on an object store every row is an object of its own
        if not self.active:
            return
        store.makedirs(workdir)
        self._drop_rows_after(resume_step)
        if store.is_object_store(workdir):  # objects are written whole: no temporary files
            return
        # Temporary files of writes a killed run never finished (`save_png`, `write_text`); not
        # under eval/, which an evaluator may be writing right now.
        root = glob.escape(workdir)
        for leftover in glob.glob(f"{root}/tmp*.tmp") + glob.glob(f"{root}/*/tmp*.png"):
            if os.path.basename(os.path.dirname(leftover)) != "eval":
                os.remove(leftover)
        self._file = open(self.path, "a")

    def _drop_rows_after(self, step: int | None) -> None:
        """A run resumed from a checkpoint at `step` continues the log from there, not after a gap."""
        if step is None:
            return
        bad_lines = store.rewrite_rows(self.path, lambda r: r.get("step", 0) <= step)
        _warn_bad_lines(self.path, bad_lines)

    def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
        if not self.active:
            return
        row = {"step": int(step), **{k: _to_python(v) for k, v in scalars.items()}}
        if self._file is None:
            store.append_row(self.path, row)
        else:
            self._file.write(json.dumps(row) + "\n")
            self._file.flush()
        self._tb.scalars(step, {k: v for k, v in row.items() if k != "step"})

    def write_config(self, step: int, config: Mapping[str, Any]) -> None:
        """The run's config as TensorBoard text `config` (a JSON code block, as in config.json)."""
        self._tb.text(step, "config", f"```json\n{to_json(config)}\n```")

    def write_image(self, step: int, name: str, pixels: np.ndarray) -> str:
        """pixels: uint8 [H, W, C]. Saved as `<workdir>/<name>/<step:08d>.png`; returns the path."""
        path = os.path.join(self.workdir, name, f"{step:08d}.png")
        if self.active:
            save_png(path, pixels)
            self._tb.image(step, name, pixels)
        return path

    def flush(self) -> None:
        self._tb.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._tb.close()


def _to_python(value):
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else value.tolist()


def write_text(path: str, text: str) -> None:
    """Atomically (`store.write_atomic`: locally a temporary file, then rename): never half a file."""
    store.makedirs(os.path.dirname(path) or ".")
    store.write_atomic(path, text)


def to_json(value: Any) -> str:
    """Indented, keys sorted: how jaxgan shows a config or a result to people."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def write_json(path: str, value: Any) -> None:
    write_text(path, to_json(value) + "\n")


def append_jsonl(path: str, row: dict) -> None:
    """One JSON row (`store.append_row`: a line; after a torn last line, on a new one)."""
    store.append_row(path, row)


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
