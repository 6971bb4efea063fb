"""The run loop's guarantees: no bad state kept, the config contract, damaged checkpoints,
preemption, user errors without tracebacks, the method registry."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgan.configs import common, cyclegan, pggan
from jaxgan.core import checkpoint, cpu_backend, errors
from jaxgan.training import contract, loop, registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rows(workdir):
    return [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]


def _steps(workdir):
    return checkpoint.Checkpointer(str(workdir), read_only=True).all_steps()


def _restore(workdir, step):
    return checkpoint.Checkpointer(str(workdir), read_only=True).restore_as_saved(step)[0]


def _snapshot(workdir):
    """Every file under `workdir`: (size, mtime, content hash) — what 'untouched' means."""
    files = {}
    for root, _, names in os.walk(workdir):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            files[os.path.relpath(path, workdir)] = (
                os.path.getsize(path),
                os.stat(path).st_mtime_ns,
                digest,
            )
    return files


# ----------------------------------------------------------------------------------------------
# Never keep a bad state.
# ----------------------------------------------------------------------------------------------


def _sqrt_step(state, lr):
    """One gradient-descent step on sum(sqrt(params)): the gradient 0.5/sqrt(p) is NaN for p < 0."""
    loss, grads = jax.value_and_grad(lambda p: jnp.sum(jnp.sqrt(p)))(state["params"])
    new = {"step": state["step"] + 1, "params": state["params"] - lr * grads}
    return new, {"loss": loss, "grad_norm": jnp.linalg.norm(grads)}


def test_guard_applies_finite_updates_and_keeps_the_old_state_on_a_nan_gradient():
    step = jax.jit(loop.guard_update(_sqrt_step))
    good = {"step": jnp.int32(0), "params": jnp.array([1.0, 4.0])}
    state, metrics = step(good, 0.5)
    # p - lr · 0.5 / sqrt(p): 1 - 0.25 = 0.75 and 4 - 0.125 = 3.875, exactly in float32.
    np.testing.assert_array_equal(state["params"], [0.75, 3.875])
    assert int(state["step"]) == 1 and float(metrics[loop.UPDATE_OK]) == 1.0

    bad = {"step": jnp.int32(5), "params": jnp.array([-1.0, 4.0])}
    state, metrics = step(bad, 0.5)
    np.testing.assert_array_equal(state["params"], [-1.0, 4.0])  # the update was not applied
    assert int(state["step"]) == 6  # ... but the step advanced (fresh data and keys next time)
    assert float(metrics[loop.UPDATE_OK]) == 0.0 and np.isnan(metrics["grad_norm"])
    assert loop.state_names(metrics[loop.NONFINITE_STATE], state) == ["params"]

    # config.nonfinite='stop': the same verdict, and the new state as it is (the run ends).
    state, metrics = jax.jit(loop.guard_update(_sqrt_step, keep_old_state=False))(bad, 0.5)
    assert np.isnan(state["params"][0]) and float(state["params"][1]) == 4.0 - 0.125
    assert int(state["step"]) == 6 and float(metrics[loop.UPDATE_OK]) == 0.0
    assert loop.state_names(metrics[loop.NONFINITE_STATE], state) == ["params"]


@pytest.mark.slow
def test_a_nonfinite_update_is_never_drawn(tmp_path, smoke_config):
    """Stop mode returns a bad update's state, so the verdicts are read before a sample grid too:
    with metrics and checkpoints every 100 steps and a grid every step, the run ends at step 1
    (lr 1e30 overflows its second critic update) without drawing it."""
    poisoned = {"optim.g_lr": 1e30, "optim.d_lr": 1e30, "optim.decay": "constant"}
    config = smoke_config(num_steps=3, **poisoned, log_every=100, checkpoint_every=100)
    with pytest.raises(errors.NonFiniteError, match="at step 1"):
        loop.train_and_evaluate(config, str(tmp_path))
    samples = tmp_path / "samples"
    assert not (samples.exists() and os.listdir(samples))
    assert not (tmp_path / "checkpoints").exists() or _steps(str(tmp_path)) == []


@pytest.mark.slow
def test_nonfinite_update_is_never_checkpointed_and_a_rerun_resumes_from_a_finite_one(
    tmp_path, smoke_config
):
    """Step 2 runs at lr 1e30: its first critic update moves every weight by ~1e30, the second
    critic update's gradients overflow. With checkpoint_every=1 there must be no checkpoint 2."""
    workdir = str(tmp_path)
    base = {"optim.decay": "constant", "checkpoint_every": 1}
    loop.train_and_evaluate(smoke_config(num_steps=1, **base), workdir)
    poisoned = smoke_config(num_steps=3, **base, **{"optim.g_lr": 1e30, "optim.d_lr": 1e30})
    with pytest.raises(errors.NonFiniteError) as raised:
        loop.train_and_evaluate(poisoned, workdir)
    message = str(raised.value)
    assert "d_grad_norm" in message and "at step 2" in message
    assert "resumes from checkpoint 1 (finite" in message
    assert _steps(workdir) == [1]
    assert [r["step"] for r in _rows(workdir)] == [1]
    saved = _restore(workdir, 1)
    assert all(
        np.isfinite(x).all() for x in jax.tree.leaves(saved) if np.issubdtype(x.dtype, np.floating)
    )

    state = loop.train_and_evaluate(smoke_config(num_steps=3, **base), workdir)
    assert int(state["step"]) == 3 and _steps(workdir) == [2, 3]
    assert [r["step"] for r in _rows(workdir)] == [1, 2, 3]
    assert all(np.isfinite(r["d_loss"]) for r in _rows(workdir))


@pytest.mark.slow
def test_skip_mode_skips_and_counts_nonfinite_updates(tmp_path, smoke_config):
    workdir = str(tmp_path)
    base = {"optim.decay": "constant", "checkpoint_every": 1}
    loop.train_and_evaluate(smoke_config(num_steps=1, **base), workdir)
    after_one = _restore(workdir, 1)
    poisoned = {"optim.g_lr": 1e30, "optim.d_lr": 1e30, "nonfinite": "skip"}
    state = loop.train_and_evaluate(smoke_config(num_steps=3, **base, **poisoned), workdir)
    assert int(state["step"]) == 3
    for key in ("g_params", "d_params", "ema_params"):  # both updates skipped: step 1's weights
        for a, b in zip(jax.tree.leaves(state[key]), jax.tree.leaves(after_one[key])):
            np.testing.assert_array_equal(np.asarray(a), b)
    meta = checkpoint.Checkpointer(workdir, read_only=True).restore_meta(3)
    assert meta["skipped_updates"] == 2 and meta["done"] is True
    assert [r.get("skipped_updates") for r in _rows(workdir)] == [None, 1, 2]


# ----------------------------------------------------------------------------------------------
# The config contract.
# ----------------------------------------------------------------------------------------------


def test_config_changes_are_classified_by_field():
    old = {"num_steps": 3, "model": {"g_width": 8, "z_dim": 16}, "optim": {"g_lr": 1e-4}}
    new = {"num_steps": 5, "model": {"g_width": 16, "z_dim": 16}, "optim": {"g_lr": 2e-4}, "x": 1}
    assert contract.config_changes(old, new) == {
        "model.g_width": (8, 16),
        "num_steps": (3, 5),
        "optim.g_lr": (1e-4, 2e-4),
        "x": ("<absent>", 1),
    }
    same_model = {**old, "model": new["model"]}  # only safe fields (and a new one) differ
    changes = contract.check_contract(same_model, new, contract.SAFE_TO_CHANGE, 3, "w")
    assert set(changes) == {"num_steps", "optim.g_lr", "x"}
    with pytest.raises(errors.ConfigError, match=r"model\.g_width: 8 -> 16") as raised:
        contract.check_contract(old, new, contract.SAFE_TO_CHANGE, 3, "w")
    assert "num_steps" not in str(raised.value).split("Fields a resumed run may change")[0]


def test_upgrade_fills_the_fields_a_stored_config_predates_with_the_configs_defaults():
    old = {"method": "gan", "model": {"name": "dcgan", "ac_head": True}, "num_steps": 3}
    upgraded = contract.upgrade(old)
    assert upgraded["model"] == {
        "name": "dcgan", "ac_head": True, "conditional_generator": False, "projection": False
    }  # fmt: skip
    assert (upgraded["compute_dtype"], upgraded["eval_batchnorm"]) == ("float32", "batch")
    assert "compute_dtype" not in old  # a copy
    as_config = contract.upgrade(ml_collections.ConfigDict(old))
    assert isinstance(as_config, ml_collections.ConfigDict) and as_config.to_dict() == upgraded
    assert contract.upgrade({"method": "progressive", "model": {}})["model"]["conditioning"] == (
        "concat"
    )
    # The values filled in are what configs/ give a run today.
    for method, config in (("gan", common.base()), ("progressive", pggan.get_config())):
        flat = contract.flatten(config.to_dict())
        added = {**contract.ADDED_FIELDS["*"], **contract.ADDED_FIELDS[method]}
        assert {field: flat[field] for field in added} == added
    assert cyclegan.get_config().compute_dtype == contract.ADDED_FIELDS["*"]["compute_dtype"]


@pytest.mark.slow
def test_resume_with_a_changed_shape_fails_untouched_and_a_safe_change_is_recorded(
    tmp_path, smoke_config
):
    workdir = str(tmp_path)
    loop.train_and_evaluate(smoke_config(num_steps=1), workdir)
    before = _snapshot(workdir)
    with pytest.raises(errors.ConfigError, match=r"model\.g_width: 8 -> 16"):
        loop.train_and_evaluate(smoke_config(num_steps=2, **{"model.g_width": 16}), workdir)
    assert _snapshot(workdir) == before

    state = loop.train_and_evaluate(smoke_config(num_steps=2), workdir)
    assert int(state["step"]) == 2
    history = [json.loads(line) for line in open(os.path.join(workdir, "config_history.jsonl"))]
    assert [(h["step"], h["config"]["num_steps"]) for h in history] == [(0, 1), (1, 2)]
    assert history[1]["changes"] == {"num_steps": [1, 2]}
    assert history[1]["xla_cpu_convolutions"] == cpu_backend.current()
    assert history[1]["xla_cpu_convolutions_why"] == cpu_backend.reason()
    assert json.load(open(os.path.join(workdir, "config.json")))["num_steps"] == 2
    assert (
        checkpoint.Checkpointer(workdir, read_only=True).restore_meta(2)["config"]["num_steps"] == 2
    )


# ----------------------------------------------------------------------------------------------
# Damaged checkpoints.
# ----------------------------------------------------------------------------------------------


def _damage(step_dir):
    """Overwrites the middle of every data file of a checkpoint's state with zeros."""
    for root, _, names in os.walk(os.path.join(step_dir, "state")):
        for name in names:
            path = os.path.join(root, name)
            size = os.path.getsize(path)
            if "/d" in root and size:
                with open(path, "r+b") as f:
                    f.seek(size // 2)
                    f.write(b"\0" * min(64, size - size // 2))


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_is_moved_aside_in_a_few_lines(
    make_smoke_run, tmp_path, capfd, caplog, smoke_config
):
    source, config = make_smoke_run("loop_damaged")
    workdir = str(tmp_path / "run")
    shutil.copytree(source, workdir)
    assert _steps(workdir) == [2, 3]
    _damage(os.path.join(workdir, "checkpoints", "3"))
    capfd.readouterr()
    state = loop.train_and_evaluate(smoke_config(num_steps=4), workdir)
    output = capfd.readouterr().err + caplog.text
    assert int(state["step"]) == 4
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "3.unreadable", "4"]
    assert [r["step"] for r in _rows(workdir)] == [1, 2, 3, 4]
    named = [line for line in output.splitlines() if "checkpoints/3" in line]
    assert len(named) == 2 and "Error reading" in named[0] and "3.unreadable" in named[1], output
    assert "Traceback" not in output and "Exception ignored" not in output, output

    for step in (3, 4):  # now every checkpoint is damaged: a clear stop, nothing deleted
        _damage(os.path.join(workdir, "checkpoints", str(step)))
    with pytest.raises(errors.CheckpointError, match="None of the checkpoints"):
        loop.train_and_evaluate(smoke_config(num_steps=5), workdir)
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == [
        "3.unreadable",
        "3.unreadable-2",
        "4.unreadable",
    ]


# ----------------------------------------------------------------------------------------------
# The command line: preemption and user errors.
# ----------------------------------------------------------------------------------------------


def _main(args):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen(
        [sys.executable, "-m", "jaxgan.main", "--config=wgan_gp:smoke", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_sigterm_checkpoints_the_step_it_stopped_at_and_exits_0(tmp_path):
    workdir = str(tmp_path)
    process = _main(
        [
            f"--workdir={workdir}",
            "--config.num_steps=500",
            "--config.checkpoint_every=100",
            "--config.sample_every=1000",
            "--config.tensorboard=False",
        ]
    )
    metrics = os.path.join(workdir, "metrics.jsonl")
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if os.path.exists(metrics) and len(open(metrics).readlines()) >= 3:
            break
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    process.send_signal(signal.SIGTERM)  # a second notice changes nothing
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr[-3000:]
    (stopped,) = _steps(workdir)
    assert 3 <= stopped < 100  # not a scheduled checkpoint
    assert _rows(workdir)[-1]["step"] == stopped
    meta = checkpoint.Checkpointer(workdir, read_only=True).restore_meta(stopped)
    assert meta["done"] is False and meta["data_cursor"] == stopped * 2 * 8
    assert f"saved step {stopped}" in stderr


@pytest.mark.slow
def test_user_errors_print_a_message_without_a_traceback(tmp_path):
    process = _main([f"--workdir={tmp_path}", "--config.data.dataset=folder:/no/such/folder"])
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 1
    assert "error: folder:/no/such/folder does not exist" in stderr
    assert "Traceback" not in stderr


def test_the_registry_names_its_methods():
    import importlib

    for name, module in (
        ("gan", "jaxgan.methods.gan"),
        ("progressive", "jaxgan.methods.progressive"),
        ("cyclegan", "jaxgan.methods.cyclegan"),
        ("nicegan", "jaxgan.methods.nicegan"),
        ("translation", "jaxgan.methods.cyclegan"),  # CycleGAN's runs from before NICE-GAN
    ):
        assert registry.get(name) is importlib.import_module(module).METHOD
    with pytest.raises(errors.ConfigError, match="config.method='pix2pix' .* gan, progressive, cy"):
        registry.get("pix2pix")
