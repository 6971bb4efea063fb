"""A workdir on an object store (`jaxgan/core/store.py`): a URL this installation cannot serve
fails in one line before any work, and the object-store code path (no rename, no append, no lock
outside `checkpoints/`) trains, resumes, recovers from a damaged checkpoint and evaluates.

The object-store path runs on a local folder: `store.is_object_store` is replaced so that the
folder's files take that path, and `os.replace`, `os.rename`, `fcntl.flock` and append-mode
`open` raise for the folder's files outside `checkpoints/` (Orbax's, which renames its own
temporary directories on every store), so any POSIX-only operation left on the way fails the test.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import object_store_guard
import pytest

from jaxgan import evaluate, generate, translate
from jaxgan.core import errors, run_files, store
from jaxgan.eval import results
from jaxgan.eval.options import Options
from jaxgan.training import loop

REPO = pathlib.Path(__file__).parents[1]


# ----------------------------------------------------------------------------------------------
# Names and the one-line refusal.
# ----------------------------------------------------------------------------------------------


def test_urls_are_kept_and_local_paths_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert store.is_url("gs://bucket/run") and store.is_url("s3://b/x")
    assert not store.is_url("runs/x") and not store.is_url("/abs/gs:/b")
    assert store.workdir_path("gs://bucket/run") == "gs://bucket/run"
    assert store.workdir_path("runs/x") == str(tmp_path / "runs" / "x")
    assert store.orbax_directory("gs://bucket/run/checkpoints") == store.epath.Path(
        "gs://bucket/run/checkpoints"
    )
    assert store.orbax_directory("runs/x/checkpoints") == "runs/x/checkpoints"


@pytest.mark.parametrize(
    "workdir, message",
    [
        (
            "gs://no-such-bucket/x",
            "--workdir=gs://no-such-bucket/x: gs:// needs gcsfs or tensorflow, which is not "
            "installed: pip install 'jaxgan[gcs]'.",
        ),
        (
            "ftp://host/x",
            "--workdir=ftp://host/x: ftp:// is not supported; a workdir is a local folder or one "
            "of gs://, s3://.",
        ),
    ],
)
def test_a_url_that_cannot_be_served_is_refused_in_one_line(workdir, message, monkeypatch):
    real_find_spec = store.importlib.util.find_spec
    monkeypatch.setattr(  # as on a machine without them, whatever this one has
        store.importlib.util,
        "find_spec",
        lambda name: None if name in ("gcsfs", "tensorflow") else real_find_spec(name),
    )
    with pytest.raises(errors.ConfigError) as raised:
        store.check_workdir(workdir)
    assert str(raised.value) == message


def test_a_store_that_does_not_answer_is_refused_in_one_line(monkeypatch):
    """The backend "importable" and the bucket probed (not the folder, which a new run lacks):
    a backend error, or a bucket not found, in one line."""
    monkeypatch.setattr(store.importlib.util, "find_spec", lambda name: object())
    probed = []

    class Store:
        def __init__(self, path):
            self.path = path

        def exists(self):
            probed.append(self.path)
            if self.path == "s3://forbidden":
                raise OSError("Forbidden: 403\n  no access to bucket")
            return self.path == "s3://bucket"

    monkeypatch.setattr(store.epath, "Path", Store)
    with pytest.raises(errors.ConfigError) as raised:
        store.check_workdir("s3://forbidden/x")
    assert str(raised.value) == "cannot reach s3://forbidden/x: Forbidden: 403 no access to bucket"
    with pytest.raises(errors.ConfigError) as raised:
        store.check_workdir("gs://no-such-bucket/x/y")
    assert str(raised.value) == (
        "cannot reach gs://no-such-bucket/x/y: bucket gs://no-such-bucket does not exist or "
        "cannot be reached with these credentials and network."
    )
    store.check_workdir("s3://bucket/new/run")
    store.check_workdir("local/folder")  # never probed
    assert probed == ["s3://forbidden", "gs://no-such-bucket", "s3://bucket"]


def test_every_workdir_command_refuses_first(smoke_config, tmp_path, monkeypatch):
    """Training (before the mesh and models), evaluating, generating and translating (each reads
    the run's config first) stop at the refusal, having written nothing."""
    monkeypatch.chdir(tmp_path)
    workdir = "ftp://host/run"
    refusal = "--workdir=ftp://host/run: ftp:// is not supported"
    commands = [
        lambda: loop.train_and_evaluate(smoke_config(), workdir),
        lambda: evaluate.evaluate_workdir(workdir, ["fid"], Options(progress=False)),
        lambda: generate.generate_images(workdir, 4),
        lambda: translate.translate_folder(workdir, "AtoB", str(tmp_path), str(tmp_path / "o")),
    ]
    for command in commands:
        with pytest.raises(errors.ConfigError, match=refusal):
            command()
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_a_smoke_run_on_an_unserved_bucket_fails_in_one_line_and_writes_nothing(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "jaxgan.main", "--config=wgan_gp:smoke"]
        + ["--workdir=gs://no-such-bucket/x"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    if store.importlib.util.find_spec("gcsfs") is None:
        expected = (
            "error: --workdir=gs://no-such-bucket/x: gs:// needs gcsfs or tensorflow, which is "
            "not installed: pip install 'jaxgan[gcs]'."
        )
        assert last == expected
    else:  # no network here: the probe fails
        assert last.startswith("error: cannot reach gs://no-such-bucket/x: ")
    assert "Traceback" not in result.stderr
    assert os.listdir(tmp_path) == []  # no ./gs:/no-such-bucket/x


# ----------------------------------------------------------------------------------------------
# The object-store code path on a local folder.
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def object_store(tmp_path, monkeypatch):
    """A local folder whose files take the object-store path, with the POSIX-only operations
    forbidden on them outside run/checkpoints/ (tests/object_store_guard.py). Returns the folder."""
    root = str(tmp_path / "bucket")
    os.makedirs(root)
    object_store_guard.install(root, monkeypatch.setattr)
    return root


def test_a_log_is_its_file_and_one_object_per_row(object_store):
    log = os.path.join(object_store, "logs", "metrics.jsonl")
    assert store.parse_rows(log) == ([], [])
    rows = [{"step": s, "loss": s / 4} for s in range(1, 6)]
    for row in rows:
        store.append_row(log, row)
    assert not os.path.exists(log)  # no file appended to: one object per row
    assert len(os.listdir(f"{log}.parts")) == 5
    assert store.parse_rows(log) == (rows, [])
    # A rewrite (a resume cutting rows) writes the file whole and deletes the objects it read.
    assert store.rewrite_rows(log, lambda r: r["step"] <= 3) == []
    assert os.listdir(f"{log}.parts") == []
    with open(log) as f:
        assert f.read() == "".join(json.dumps(r) + "\n" for r in rows[:3])
    store.append_row(log, rows[4])
    assert store.parse_rows(log) == (rows[:3] + rows[4:], [])
    # Whole objects: write_atomic writes no temporary file.
    store.write_atomic(os.path.join(object_store, "logs", "a.txt"), "text\n")
    assert sorted(os.listdir(os.path.dirname(log))) == [
        "a.txt",
        "metrics.jsonl",
        "metrics.jsonl.parts",
    ]


def test_evaluator_rows_of_one_identity_resolve_to_the_newest(object_store):
    """Two evaluators that scored one row each leave an object; a read keeps the newest of each
    identity at its place, as a local rewrite (a replaced row moves to the end) leaves it."""
    base = {k: None for k in results.IDENTITY_FIELDS}
    a, b = {**base, "kind": "checkpoint", "step": 1}, {**base, "kind": "checkpoint", "step": 2}
    log = results.MetricsLog(os.path.join(object_store, "eval", "metrics.jsonl"))
    log.write({**a, "value": 1.0})
    log.write({**b, "value": 2.0})
    log.write({**a, "value": 3.0})  # --force, or a second evaluator
    expected = [{**b, "value": 2.0}, {**a, "value": 3.0}]
    assert log.rows == expected
    assert results.MetricsLog(log.path).rows == expected
    assert len(os.listdir(f"{log.path}.parts")) == 3


def _metrics_rows(workdir):
    rows, bad_lines = store.parse_rows(os.path.join(workdir, "metrics.jsonl"))
    assert bad_lines == []
    return rows


def _eval_options(tmp_path):
    """A quick FID over the smoke checkpoints (mnist_cnn features: no Inception download)."""
    return Options(
        num_samples=160,
        num_real=200,
        baseline=False,
        feature_network="mnist_cnn",
        cache_dir=str(tmp_path / "cache"),
        batch_size=40,
        progress=False,
    )


@pytest.mark.slow
def test_a_run_on_an_object_store_trains_resumes_recovers_and_evaluates(
    object_store, smoke_config, tmp_path
):
    workdir = os.path.join(object_store, "run")
    loop.train_and_evaluate(smoke_config(), workdir)  # 3 steps, logs and checkpoints every step
    assert [r["step"] for r in _metrics_rows(workdir)] == [1, 2, 3]
    assert not os.path.exists(os.path.join(workdir, "metrics.jsonl"))  # only row objects so far
    assert sorted(os.listdir(os.path.join(workdir, "samples"))) == [
        f"{s:08d}.png" for s in (1, 2, 3)
    ]
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["num_steps"] == 3

    # A row logged after the last checkpoint (a run killed before its save) is cut on resume.
    store.append_row(os.path.join(workdir, "metrics.jsonl"), {"step": 4, "killed": True})
    loop.train_and_evaluate(smoke_config(num_steps=5), workdir)
    rows = _metrics_rows(workdir)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert all("killed" not in r and "d_loss" in r for r in rows)
    history = store.parse_rows(os.path.join(workdir, "config_history.jsonl"))[0]
    assert [(r["step"], r["changes"]) for r in history] == [(0, {}), (3, {"num_steps": [3, 5]})]

    # A damaged checkpoint is moved aside (store.rename) and the run resumes from the one before.
    os.remove(os.path.join(workdir, "checkpoints", "5", "state", "_METADATA"))
    loop.train_and_evaluate(smoke_config(num_steps=6), workdir)
    # Resumed from 4: 5 and 6 trained again (keep_last=2), the damaged 5 kept beside them.
    checkpoints = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
    assert checkpoints == ["5", "5.unreadable", "6"]
    assert [r["step"] for r in _metrics_rows(workdir)] == [1, 2, 3, 4, 5, 6]

    options = _eval_options(tmp_path)
    written = evaluate.evaluate_workdir(workdir, ["fid"], options, watch=True, watch_timeout=1.0)
    log = results.MetricsLog(os.path.join(workdir, "eval", "metrics.jsonl"))
    assert [(r["step"], r["metric"]) for r in log.rows] == [(5, "fid"), (6, "fid")]
    assert [r["value"] for r in log.rows] == [r["value"] for r in written]
    assert os.path.exists(os.path.join(workdir, "eval", "fid.png"))
    # A second call finds every row there: nothing is scored again.
    assert evaluate.evaluate_workdir(workdir, ["fid"], options) == []


def test_the_guards_catch_the_local_operations(object_store, monkeypatch):
    """What makes the run above a test: the local path's rename, append and lock fail here."""
    monkeypatch.setattr(store, "is_object_store", lambda path: False)
    with pytest.raises(AssertionError, match="os.replace"):
        run_files.write_text(os.path.join(object_store, "a.txt"), "text")
    with pytest.raises(AssertionError, match="open"):
        run_files.append_jsonl(os.path.join(object_store, "log.jsonl"), {"step": 1})
    with pytest.raises(AssertionError, match="open|flock"):
        results.MetricsLog(os.path.join(object_store, "eval", "metrics.jsonl")).write({"step": 1})


# ----------------------------------------------------------------------------------------------
# Many processes: launch/local_multiprocess.sh trains and evaluates on the object store.
# ----------------------------------------------------------------------------------------------


def _launch(num_processes, root, *args, cwd):
    """launch/local_multiprocess.sh with every process on the object-store path (the guards of
    tests/object_store_guard.py installed at start-up by tests/object_store_site/sitecustomize.py)."""
    tests = REPO / "tests"
    python_path = os.pathsep.join(map(str, (tests / "object_store_site", tests, REPO)))
    env = {
        **os.environ,
        "PYTHONPATH": python_path,
        "JAXGAN_TEST_OBJECT_STORE": root,
        "JAXGAN_PYTHON": sys.executable,
        "JAXGAN_COMPILATION_CACHE": "0",
        # One CPU device per process (no device-count flag), LLVM's level as in the suite.
        "XLA_FLAGS": " ".join(
            f for f in os.environ.get("XLA_FLAGS", "").split() if "optimization_level" in f
        ),
    }
    command = ["bash", str(REPO / "launch" / "local_multiprocess.sh"), str(num_processes), *args]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_two_processes_train_and_evaluate_on_an_object_store(object_store, tmp_path):
    """Two processes joined by JAX's distributed runtime train on the store, then evaluate it: each
    log row and each evaluator row is written once, by process 0 (object names carry the writer's
    process index), and the rows equal one process's evaluation of the same checkpoints."""
    workdir = os.path.join(object_store, "run")
    _launch(2, object_store, "--config=wgan_gp:smoke", f"--workdir={workdir}", cwd=tmp_path)
    metrics_log = os.path.join(workdir, "metrics.jsonl")
    assert [r["step"] for r in _metrics_rows(workdir)] == [1, 2, 3]
    assert not os.path.exists(metrics_log)  # objects only: nothing appended or renamed
    writers = {name.split("-")[1] for name in os.listdir(f"{metrics_log}.parts")}
    assert writers == {"00000"}
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "3"]

    flags = ["--metrics=fid", "--num_samples=160", "--num_real=200", "--nobaseline"]
    flags += ["--feature_network=mnist_cnn", f"--cache_dir={tmp_path / 'cache'}"]
    flags += ["--batch_size=40", "--watch", "--watch_timeout=1", "--poll_seconds=0.1"]
    _launch(2, object_store, "jaxgan.evaluate", f"--workdir={workdir}", *flags, cwd=tmp_path)
    eval_log = os.path.join(workdir, "eval", "metrics.jsonl")
    parts = os.listdir(f"{eval_log}.parts")
    assert len(parts) == 2 and {name.split("-")[1] for name in parts} == {"00000"}
    rows = results.MetricsLog(eval_log).rows
    assert [(r["step"], r["metric"]) for r in rows] == [(2, "fid"), (3, "fid")]
    assert os.path.exists(os.path.join(workdir, "eval", "fid.png"))

    options = _eval_options(tmp_path)
    alone = evaluate.evaluate_workdir(workdir, ["fid"], options, force=True)
    assert [r["step"] for r in alone] == [2, 3]
    np.testing.assert_allclose([r["value"] for r in rows], [r["value"] for r in alone], rtol=1e-5)
