"""Result rows, the append-only log they go to (`W/eval/metrics.jsonl`) and their TensorBoard
scalars (`W/tensorboard/eval`).

A row is one JSON object per line; `value` is the headline number, `values` all numbers of the
metric:
  {"kind": "checkpoint" | "real_vs_real" | "identity" | "sets", "step": int | null, "metric": "fid",
   "value": 3.2, "std": null, "values": {"fid": 3.2}, "real_value": null,
   "real": "mnist5k:train", "fake": "ema_params@2000", "n_real": 4000, "n_fake": 50000,
   "feature_network": "mnist_cnn" | "fashion_cnn" | "emoji_cnn" | "inception_v3" | null (pixel
   metrics),
   "feature_weights": "sha256:…" | null, "resize": "tf1_bilinear_299" | "pil_bicubic_299" | "none"
   | "pil_lanczos_32", "feature_code": 1 | null, "params": {"kid_subsets": 100, ...}, "seed": 0,
   "direction": "AtoB" | "BtoA" (translation runs only), "protocol": {"fakes": 50000, "source":
   "TTUR ..."}, "warning": "..." (only where the row departs
   from its paper's protocol), "sample_batch_size": 200, "wall_time_s": 0.4, "sample_time_s": 3.1,
   "feature_time_s": 0.8, "timestamp": "2025-01-01T00:00:00Z", "details": {...}}
Each metric's `details` is documented where it is registered (`eval/metrics.py`,
`eval/protocols.py`). A row is "already there" (skipped unless --force) when every field of
`IDENTITY_FIELDS` matches: rows made with other weights, resize, counts or metric parameters are
new rows, never merged with or mistaken for old ones. A row that could not be computed (an
unreadable checkpoint) has `"value": null` and an `"error"`; it does not make its identity done.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator

import jax
from absl import logging

from jaxgan.core import parallel, run_files, store

IDENTITY_FIELDS = (
    "kind",
    "step",
    "metric",
    "real",
    "fake",
    "n_real",
    "n_fake",
    "seed",
    "feature_network",
    "feature_weights",
    "resize",
    "feature_code",
    "params",
)


def row_identity(row: dict) -> tuple:
    return tuple(json.dumps(row.get(k), sort_keys=True) for k in IDENTITY_FIELDS)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def identity(kind, step, metric, real_name, n_real, fake_name, n_fake, network, options) -> dict:
    """The fields that say what a row measured. network: the FeatureNetwork's (name, weights,
    resize, code) for a metric that uses one, else None."""
    name, weights, resize, code = network or (None, None, "none", None)
    return {
        "kind": kind,
        "step": step,
        "metric": metric.name,
        "real": real_name,
        "fake": fake_name,
        "n_real": n_real,
        "n_fake": n_fake,
        "seed": options.seed,
        "feature_network": name,
        "feature_weights": weights,
        "resize": resize,
        "feature_code": code,
        "params": metric.params_of(options),
    }


def make_row(
    base: dict,
    metric,
    result,
    real,
    fake,
    network,
    options,
    wall_time_s: float,
    feature_time_s: float | None,
    protocol_count: int | None,
    protocol_source: str,
    extra: dict | None = None,
) -> dict:
    """The row of `result` (a `registry.Result`). base: kind and step. network: the feature
    network's (name, weights, resize, code version), or None. protocol_count: the paper's
    count of fakes (None for real-vs-real rows); a row with another count carries a `warning`."""
    fields = identity(
        base["kind"], base["step"], metric, real.name, real.size, fake.name, fake.size,
        network, options,
    )  # fmt: skip
    row = {
        **fields,
        "value": result.values[next(iter(result.values))],
        "std": result.std,
        "values": result.values,
        "real_value": result.real_value,
        **(extra or {}),
    }
    if protocol_count is not None:
        row["protocol"] = {"fakes": protocol_count, "source": protocol_source}
        if fake.size != protocol_count:
            row["warning"] = (
                f"{fake.size:,} fakes where its paper's protocol scores {protocol_count:,} "
                f"({protocol_source}): not comparable with numbers computed that way"
            )
    row["wall_time_s"] = round(wall_time_s, 3)
    row["feature_time_s"] = None if feature_time_s is None else round(feature_time_s, 3)
    row["timestamp"] = now()
    row["details"] = result.details
    return row


def tensorboard_scalars(row: dict) -> dict[str, float]:
    """The numbers of a checkpoint row, named for TensorBoard (written at the row's step):
    `eval/<metric>[/<value>][/<direction>][/<feature network>[/<resize>]]`, one per entry of
    `values` (`<value>` where the entry is not named after the metric: swd's levels, pr's
    precision and recall). The network and resize are part of the name, not only where rows of
    them meet: one curve's name stays the same whichever evaluator calls scored its points. {} for
    an error row or a baseline (no step)."""
    if row["kind"] != "checkpoint" or row.get("value") is None:
        return {}
    variant = [row.get("direction"), row.get("feature_network")]
    if row.get("feature_network") and row.get("resize") not in (None, "none"):
        variant.append(row["resize"])
    suffix = "".join(f"/{part}" for part in variant if part)
    return {
        f"eval/{row['metric']}{'' if name == row['metric'] else f'/{name}'}{suffix}": value
        for name, value in row["values"].items()
    }


def tensorboard_events(workdir: str, enabled: bool) -> run_files.TensorBoardEvents:
    """`W/tensorboard/eval`, the evaluator's events (TensorBoard's run `eval`, beside the trainer's
    `W/tensorboard`): a file of its own, as the trainer and evaluators may write at once."""
    if not enabled:
        logging.info("config.tensorboard=False: no TensorBoard events from the evaluator.")
    return run_files.TensorBoardEvents(os.path.join(workdir, "tensorboard", "eval"), enabled)


def write_tensorboard(events: run_files.TensorBoardEvents, rows: list[dict]) -> None:
    """Each row's `tensorboard_scalars` at its step, flushed: a live run's TensorBoard shows a
    checkpoint's numbers once it is scored."""
    for row in rows:
        events.scalars(row["step"], tensorboard_scalars(row))
    events.flush()


def error_row(identity: dict, error: str) -> dict:
    """The row of a metric that could not be computed (an unreadable checkpoint): `value` null and
    the one-line reason in `error`. It does not make its identity done: a later run retries it."""
    return {
        **identity,
        "value": None,
        "std": None,
        "values": {},
        "real_value": None,
        "error": error,
        "timestamp": now(),
    }


class MetricsLog:
    """`<dir>/metrics.jsonl`: rows keyed by `IDENTITY_FIELDS`, shared by concurrent evaluators.

    Append-only and safe to kill: a row is one appended line. A line that does not parse (an
    evaluator killed mid-append) is skipped with one warning, and the next append starts on a new
    line. Appends and rewrites (`--force` replacing a row, or a retried error row) hold an
    exclusive `flock` on `metrics.jsonl.lock` and work on the file as re-read under it, so rows
    another evaluator appended since this one last read are kept; a rewrite goes through a
    temporary file and a rename, so the file is never half-written. Reads take the lock shared.

    On an object store (no lock, no append, no rename) every row is an object of its own
    (`store.append_row`) and a replaced row is simply written again: reads keep the last row of
    each identity, at its place, so two evaluators that scored the same row leave it once.

    In a multi-process evaluator process 0 alone reads and writes the file; the others hold the
    same rows in memory (`reload` hands them process 0's), so every process decides alike.
    """

    def __init__(self, path: str):
        self.path = path
        self.lock_path = f"{path}.lock"
        self._reported: set[int] = set()  # unparseable line numbers already warned about
        self.rows: list[dict] = []
        self.reload()

    def reload(self) -> list[dict]:
        """Re-reads the file (picking up other evaluators' rows); returns the rows. Every process
        of a multi-process evaluator calls it at the same point and gets process 0's rows."""
        self.rows = parallel.agree(self._read_file() if jax.process_index() == 0 else None)
        return self.rows

    def _read_file(self) -> list[dict]:
        if store.is_object_store(self.path):
            return self._read()
        if not os.path.exists(self.path):
            return []
        with self._locked(fcntl.LOCK_SH):
            return self._read()

    def has(self, identity: dict) -> bool:
        """Whether a row of this identity holds a value (an error row is not done)."""
        wanted = row_identity(identity)
        return any(row_identity(r) == wanted and "error" not in r for r in self.rows)

    def write(self, row: dict) -> None:
        """Appends `row`, or, where a row of the same identity is there, rewrites the file with
        that row replaced. Only process 0 writes; the others record the row in memory alike."""
        if jax.process_index() != 0:
            self.rows = _with_row(self.rows, row)
            return
        if store.is_object_store(self.path):
            store.append_row(self.path, row)  # the newest row of an identity wins when read
            self.rows = self._read()
            return
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        key = row_identity(row)
        with self._locked(fcntl.LOCK_EX):
            rows = self._read()
            if any(row_identity(r) == key for r in rows):
                rows = _with_row(rows, row)
                run_files.write_text(self.path, "".join(json.dumps(r) + "\n" for r in rows))
                self._reported.clear()  # the rewritten file has no unparseable lines
            else:
                run_files.append_jsonl(self.path, row)  # after a torn last line: on a new one
                rows.append(row)
        self.rows = rows

    @contextlib.contextmanager
    def _locked(self, operation: int) -> Iterator[None]:
        # A side file: a rewrite's rename replaces metrics.jsonl's inode, and any lock held on it.
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, operation)
            yield  # closing the file releases the lock

    def _read(self) -> list[dict]:

        rows, bad_lines = run_files.parse_jsonl(self.path)
        new = [n for n in bad_lines if n not in self._reported]
        if new:
            logging.warning(
                "%s: skipped line(s) %s, not JSON rows (an evaluator killed mid-append?).",
                self.path,
                ", ".join(map(str, new)),
            )
            self._reported.update(new)
        return _newest_of_each_identity(rows) if store.is_object_store(self.path) else rows


def _with_row(rows: list[dict], row: dict) -> list[dict]:
    """`rows` with `row` appended, replacing (and so moving to the end) a row of its identity."""
    key = row_identity(row)
    return [r for r in rows if row_identity(r) != key] + [row]


def _newest_of_each_identity(rows: list[dict]) -> list[dict]:
    """The last row of each identity, at its place: what a local rewrite leaves (a replaced row
    moves to the end)."""
    last = {row_identity(r): i for i, r in enumerate(rows)}
    return [r for i, r in enumerate(rows) if last[row_identity(r)] == i]
