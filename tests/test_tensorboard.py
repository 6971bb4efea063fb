"""TensorBoard output and the persistent compilation cache.

* `MetricWriter` on resume: the new events file starts with the purge tensorboardX writes
  (`SessionLog.START` at resume_step + 1), and a reader that honours it, as TensorBoard does, sees
  every step once, with the values `metrics.jsonl` keeps.
* The run's config as TensorBoard text, once per start.
* The evaluator's rows as scalars in `W/tensorboard/eval`, equal to the rows' values.
* `core.paths.enable_compilation_cache`: the folder, the opt-out, JAX's own setting winning, and
  CPU executables really landing in the folder.

Events files are read with tensorboardX's protobuf classes (the `tensorboard` package, whose
reader honours purges itself, is not a dependency): `_visible_scalars` applies TensorBoard's rule
that a `SessionLog.START` at step s drops the events read so far at step s and after.
"""

import json
import os
import struct
import subprocess
import sys

import jax
import pytest
from tensorboardX.proto import event_pb2, summary_pb2

from jaxgan.core import paths, run_files
from jaxgan.eval import runner
from jaxgan.eval.options import Options
from jaxgan.training import loop


def _events(logdir: str) -> list[list[event_pb2.Event]]:
    """The events of each events file directly in `logdir`, files in name order (TensorBoard's).
    A record: uint64 length, uint32 CRC of it, the Event bytes, uint32 CRC of them."""
    files = sorted(f for f in os.listdir(logdir) if f.startswith("events.out.tfevents."))
    result = []
    for name in files:
        with open(os.path.join(logdir, name), "rb") as f:
            data = f.read()
        events, offset = [], 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            start = offset + 12
            events.append(event_pb2.Event.FromString(data[start : start + length]))
            offset = start + length + 4
        result.append(events)
    return result


def _visible(logdir: str) -> list[tuple[str, int, summary_pb2.Summary.Value]]:
    """(tag, step, value) of every summary value TensorBoard shows: a `SessionLog.START` at step s
    drops what came before it at step s and after."""
    shown = []
    for events in _events(logdir):
        for event in events:
            if (
                event.HasField("session_log")
                and event.session_log.status == event.session_log.START
            ):
                shown = [(tag, step, v) for tag, step, v in shown if step < event.step]
            for value in event.summary.value:
                shown.append((value.tag, event.step, value))
    return shown


def _visible_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    scalars: dict[str, list[tuple[int, float]]] = {}
    for tag, step, value in _visible(logdir):
        if value.HasField("simple_value"):
            scalars.setdefault(tag, []).append((step, value.simple_value))
    return scalars


def _config_texts(logdir: str) -> list[tuple[int, dict]]:
    """(step, config) of each visible `config` text, its JSON code block parsed."""
    texts = []
    for tag, step, value in _visible(logdir):
        if tag == "config/text_summary":
            markdown = value.tensor.string_val[0].decode()
            assert markdown.startswith("```json\n") and markdown.endswith("\n```"), markdown
            texts.append((step, json.loads(markdown[len("```json\n") : -len("\n```")])))
    return texts


# --- MetricWriter: purge on resume, the config text ------------------------------------------


def _start(workdir, resume_step, steps, offset, config):
    """One start of a run as the loop makes it: the config text at its first step, then a row of
    `loss = step + offset` per step."""
    writer = run_files.MetricWriter(str(workdir), True, resume_step=resume_step)
    writer.write_config(resume_step + 1, config)
    for step in steps:
        writer.write_scalars(step, {"loss": step + offset, "note": "not a number"})
    writer.close()


def test_resume_purges_the_steps_after_the_checkpoint(tmp_path):
    first, second = {"num_steps": 5, "lr": 0.1}, {"num_steps": 5, "lr": 0.2}
    _start(tmp_path, 0, [1, 2, 3, 4, 5], 0.0, first)  # logged up to 5, checkpoint at 2
    _start(tmp_path, 2, [3, 4], 100.0, second)  # resumed from 2

    logdir = tmp_path / "tensorboard"
    files = _events(str(logdir))
    assert len(files) == 2  # one file per start
    resumed = files[1]
    # tensorboardX's purge: a file_version event, then SessionLog.START, both at resume_step + 1.
    assert resumed[1].file_version == "brain.Event:2" and resumed[1].step == 3
    assert resumed[2].session_log.status == event_pb2.SessionLog.START and resumed[2].step == 3

    expected = [(1, 1.0), (2, 2.0), (3, 103.0), (4, 104.0)]
    assert _visible_scalars(str(logdir)) == {"loss": expected}
    # The same numbers as metrics.jsonl, which the resume cut back to step 2.
    rows = run_files.read_jsonl(str(tmp_path / "metrics.jsonl"))
    assert [(r["step"], r["loss"]) for r in rows] == expected
    # One config per start, at the first step it trained.
    assert _config_texts(str(logdir)) == [(1, first), (3, second)]


def test_second_start_from_one_checkpoint_replaces_the_first(tmp_path):
    """Resumed twice from step 2 (the first resume died before its next checkpoint): each step and
    each start's config shows once."""
    _start(tmp_path, 0, [1, 2, 3], 0.0, {"try": 0})
    _start(tmp_path, 2, [3, 4], 10.0, {"try": 1})
    _start(tmp_path, 2, [3], 20.0, {"try": 2})
    logdir = str(tmp_path / "tensorboard")
    assert _visible_scalars(logdir) == {"loss": [(1, 1.0), (2, 2.0), (3, 23.0)]}
    assert _config_texts(logdir) == [(1, {"try": 0}), (3, {"try": 2})]


def test_tensorboard_off_writes_no_events(tmp_path):
    writer = run_files.MetricWriter(str(tmp_path), False, resume_step=0)
    writer.write_config(1, {"a": 1})
    writer.write_scalars(1, {"loss": 1.0})
    writer.close()
    assert not (tmp_path / "tensorboard").exists()
    assert run_files.read_jsonl(str(tmp_path / "metrics.jsonl")) == [{"step": 1, "loss": 1.0}]


# --- A trained run and its evaluation ---------------------------------------------------------


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory, smoke_config):
    """`wgan_gp:smoke`, 3 steps, with TensorBoard on (checkpoints 2 and 3)."""
    workdir = str(tmp_path_factory.mktemp("tensorboard_run"))
    config = smoke_config(tensorboard=True)
    loop.train_and_evaluate(config, workdir)
    return workdir, config


@pytest.mark.slow
def test_run_writes_its_config_and_scalars(tensorboard_run):
    workdir, _ = tensorboard_run
    logdir = os.path.join(workdir, "tensorboard")
    with open(os.path.join(workdir, "config.json")) as f:
        assert _config_texts(logdir) == [(1, json.load(f))]
    scalars = _visible_scalars(logdir)
    rows = run_files.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    assert rows and {r["step"] for r in rows} == {s for s, _ in scalars["d_loss"]}
    assert scalars["d_loss"] == [(r["step"], pytest.approx(r["d_loss"], rel=1e-6)) for r in rows]


@pytest.mark.slow
def test_evaluator_rows_are_scalars_beside_the_trainers(tensorboard_run, tmp_path):
    workdir, _ = tensorboard_run
    options = Options(
        num_samples=160,
        num_real=400,
        cache_dir=str(tmp_path / "cache"),
        batch_size=48,
        swd_preset="shmelkov",
        baseline=False,
        progress=False,
    )
    rows = runner.evaluate_workdir(workdir, ["fid", "swd"], options)
    assert {(r["metric"], r["step"]) for r in rows} == {
        (m, s) for m in ("fid", "swd") for s in (2, 3)
    }
    # The names: FID with its feature network; SWD (pixels) one scalar per entry of `values`.
    expected = {}
    for row in rows:
        for name, value in row["values"].items():
            tag = "eval/fid/mnist_cnn" if row["metric"] == "fid" else f"eval/swd/{name}"
            expected.setdefault(tag, []).append((row["step"], pytest.approx(value, rel=1e-6)))
    assert len(expected) > 2  # SWD's levels and average
    scalars = _visible_scalars(os.path.join(workdir, "tensorboard", "eval"))
    assert scalars == expected
    # A file of its own: the trainer's folder holds none of the evaluator's tags.
    assert not any(
        t.startswith("eval/") for t in _visible_scalars(os.path.join(workdir, "tensorboard"))
    )


# --- The persistent compilation cache ---------------------------------------------------------

CACHE_SETTINGS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")


@pytest.fixture
def jax_cache_settings(monkeypatch):
    """No cache folder set, JAX's and jaxgan's variables unset; the settings restored after."""
    saved = {name: getattr(jax.config, name) for name in CACHE_SETTINGS}
    for name in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(paths.COMPILATION_CACHE_ENV, raising=False)
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)  # JAX's default
    yield
    for name, value in saved.items():
        jax.config.update(name, value)


def test_compilation_cache_goes_to_the_cache_folder(jax_cache_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = str(tmp_path / "jaxgan" / "xla" / paths.instruction_set_tag())
    assert paths.enable_compilation_cache() == folder
    assert jax.config.jax_compilation_cache_dir == folder
    assert jax.config.jax_persistent_cache_min_compile_time_secs == paths.MIN_COMPILE_TIME_S


@pytest.mark.parametrize("value", ["0", "off", "False"])
def test_compilation_cache_opt_out(jax_cache_settings, monkeypatch, value):
    monkeypatch.setenv(paths.COMPILATION_CACHE_ENV, value)
    assert paths.enable_compilation_cache() is None
    assert jax.config.jax_compilation_cache_dir is None
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 1.0


def test_compilation_cache_moved_and_jax_settings_win(jax_cache_settings, monkeypatch, tmp_path):
    monkeypatch.setenv(paths.COMPILATION_CACHE_ENV, str(tmp_path / "elsewhere"))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # chaos.py's setting
    assert paths.enable_compilation_cache() == str(tmp_path / "elsewhere")
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 1.0  # left to JAX
    # A folder already set (JAX_COMPILATION_CACHE_DIR, as the tests' conftest does) is kept.
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax"))
    assert paths.enable_compilation_cache() == str(tmp_path / "jax")
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "jax")


@pytest.mark.slow
def test_cpu_executables_land_in_the_cache(tmp_path):
    """A fresh process on CPU with the default settings: its compiled program is a file in
    `$XDG_CACHE_HOME/jaxgan/xla` (JAX caches CPU executables too)."""
    program = (
        "import jax, jax.numpy as jnp\n"
        "from jaxgan.core import paths\n"
        "paths.enable_compilation_cache()\n"
        "jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((64, 64))).block_until_ready()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update(
        XDG_CACHE_HOME=str(tmp_path),
        JAX_PLATFORMS="cpu",
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",  # this tiny program compiles in < 0.5 s
    )
    subprocess.run([sys.executable, "-c", program], env=env, check=True, timeout=300)
    entries = os.listdir(tmp_path / "jaxgan" / "xla" / paths.instruction_set_tag())
    assert any(name.startswith("jit_") and name.endswith("-cache") for name in entries), entries
