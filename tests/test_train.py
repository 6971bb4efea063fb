"""The train step and loop: device-count equivalence, resume, non-finite stop, golden numbers."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import dcgan, wgan_gp
from jaxgan import checkpoint, data, parallel, train

CONFIGS = {"wgan_gp": wgan_gp, "dcgan": dcgan}


def _smoke(name, **overrides):
    config = CONFIGS[name].get_config("smoke")
    config.update_from_flattened_dict(overrides)
    return config


def _one_step(config, mesh, batch):
    """Builds everything for `config` on `mesh` and runs one train step on `batch`."""
    generator, critic = train.build_models(config, 1, 10)
    g_tx = train.make_optimizer(config, config.optim.g_lr, 1)
    d_tx = train.make_optimizer(config, config.optim.d_lr, config.n_critic)
    state = train.create_state(config, generator, critic, g_tx, d_tx, (32, 32, 1), mesh)
    step = train.make_train_step(config, generator, critic, g_tx, d_tx, 10, mesh)
    state, metrics = step(state, data.to_global(batch, parallel.sharded_on(mesh, 1)))
    return state, metrics, generator


def _batch(config):
    source = data.open_source("mnist5k")
    return next(data.Batches(source, config.batch_size, 32, 1, seed=0, steps=config.n_critic))


def _max_relative_difference(a, b):
    """The largest, over leaves, of |a - b| / |b| (L2 norms per leaf)."""
    diffs = jax.tree.map(
        lambda x, y: float(
            np.linalg.norm(np.asarray(x) - np.asarray(y)) / (np.linalg.norm(np.asarray(y)) + 1e-30)
        ),
        a,
        b,
    )
    return max(jax.tree.leaves(diffs))


@pytest.mark.parametrize("name", ["wgan_gp", "dcgan"])
def test_one_step_on_8_devices_equals_one_device(name):
    """Same global batch, same step: 8 devices and 1 agree to float rounding (<= 1e-5 relative).

    Compared: every metric, every critic parameter, and the updated generator and its EMA as
    functions (their images for fixed latents). Generator parameters are compared through the
    function because the ResNet generator has biases that feed straight into a BatchNorm
    (tflib's convs keep them): their exact gradient is 0, the float noise in it depends on the
    device layout, and Adam's first step maps any nonzero noise to a ±lr update. Such biases
    cannot change a single output pixel, which is what the image comparison shows.
    """
    config = _smoke(name)
    batch = _batch(config)
    state8, metrics8, generator = _one_step(config, parallel.make_mesh(8), batch)
    state1, metrics1, _ = _one_step(config, parallel.make_mesh(1), batch)
    assert state8["g_params"]["Output"]["kernel"].sharding.num_devices == 8
    for key in metrics1:
        np.testing.assert_allclose(metrics8[key], metrics1[key], rtol=1e-5, atol=1e-7, err_msg=key)
    _assert_same_models(state8, state1, generator, config, 1e-5)


def _assert_same_models(state_a, state_b, generator, config, tolerance):
    """Every critic parameter, and the generator and its EMA as functions of fixed latents."""
    assert _max_relative_difference(state_a["d_params"], state_b["d_params"]) <= tolerance
    z, labels = train.fixed_latents(config, 10)
    for key in ("g_params", "ema_params"):
        images_a = generator.apply({"params": state_a[key]}, z, labels)
        images_b = generator.apply({"params": state_b[key]}, z, labels)
        assert _max_relative_difference(images_a, images_b) <= tolerance, key


# Golden numbers: the metrics of one seeded step of each smoke config on one device. They guard
# refactors of the losses, penalties, layers and init. If a change is *meant* to alter the numbers
# (a new init, a different loss), rerun with GOLDEN_PRINT=1 and paste the printed values here.
GOLDEN = {
    "wgan_gp": {
        "d_loss": 8.800934791564941,
        "g_loss": 1.1201475858688354,
        "d_grad_norm": 10.208446502685547,
        "g_grad_norm": 2.190892219543457,
    },
    "dcgan": {
        "d_loss": 1.5407487154006958,
        "g_loss": 0.7108771800994873,
        "d_grad_norm": 12.582793235778809,
        "g_grad_norm": 9.002772331237793,
    },
}


@pytest.mark.parametrize("name", ["wgan_gp", "dcgan"])
def test_golden_one_step(name):
    config = _smoke(name)
    _, metrics, _ = _one_step(config, parallel.make_mesh(1), _batch(config))
    got = {k: float(metrics[k]) for k in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm")}
    if os.environ.get("GOLDEN_PRINT"):
        print(name, got)
    for key, value in GOLDEN[name].items():
        np.testing.assert_allclose(got[key], value, rtol=1e-4, err_msg=f"{name} {key}")
    assert GOLDEN[name], "no golden numbers stored"


def _rows(workdir):
    return [json.loads(line) for line in open(workdir / "metrics.jsonl")]


def test_resume_continues_exactly(tmp_path):
    """4 steps in one go == 2 steps, stop, resume, 2 more: every parameter to 1e-6."""
    overrides = {"num_steps": 4, "optim.decay": "constant"}
    straight = train.train_and_evaluate(_smoke("wgan_gp", **overrides), str(tmp_path / "a"))
    train.train_and_evaluate(
        _smoke("wgan_gp", **{**overrides, "num_steps": 2}), str(tmp_path / "b")
    )
    resumed = train.train_and_evaluate(_smoke("wgan_gp", **overrides), str(tmp_path / "b"))
    assert int(resumed["step"]) == 4
    for key in ("g_params", "d_params", "ema_params", "g_opt", "d_opt"):
        assert _max_relative_difference(resumed[key], straight[key]) <= 1e-6, key
    assert [r["step"] for r in _rows(tmp_path / "b")] == [1, 2, 3, 4]
    assert _rows(tmp_path / "b")[2:] == [
        {**r, "img_per_s": r2["img_per_s"]}
        for r, r2 in zip(_rows(tmp_path / "a")[2:], _rows(tmp_path / "b")[2:])
    ]
    meta = checkpoint.Checkpointer(str(tmp_path / "b"), read_only=True).restore_meta(4)
    assert meta["data_cursor"] == 4 * 2 * 8  # steps x n_critic x batch
    assert sorted(os.listdir(tmp_path / "b" / "samples")) == [f"{s:08d}.png" for s in range(1, 5)]


def test_resume_on_a_different_device_count(tmp_path):
    """Checkpoint on 8 devices, resume on 1: same losses, same critic, same generator function."""
    config = _smoke("dcgan", num_steps=2)
    straight = train.train_and_evaluate(config, str(tmp_path / "a"))
    train.train_and_evaluate(_smoke("dcgan", num_steps=1), str(tmp_path / "b"))
    resumed = train.train_and_evaluate(
        _smoke("dcgan", num_steps=2, num_devices=1), str(tmp_path / "b")
    )
    assert resumed["g_params"]["Output"]["kernel"].sharding.num_devices == 1
    generator, _ = train.build_models(config, 1, 10)
    _assert_same_models(resumed, straight, generator, config, 1e-5)
    for a, b in zip(_rows(tmp_path / "a"), _rows(tmp_path / "b")):
        np.testing.assert_allclose(a["d_loss"], b["d_loss"], rtol=1e-5)
        np.testing.assert_allclose(a["g_loss"], b["g_loss"], rtol=1e-5)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    train.train_and_evaluate(_smoke("wgan_gp", num_steps=1), str(tmp_path))
    # Resumed with an absurd learning rate: Adam moves every weight by ~1e30, step 2 overflows.
    config = _smoke(
        "wgan_gp", **{"optim.g_lr": 1e30, "optim.d_lr": 1e30, "optim.decay": "constant"}
    )
    with pytest.raises(
        FloatingPointError,
        match=r"Non-finite .*loss.* at step 2.*step 1 \(the last good checkpoint",
    ):
        train.train_and_evaluate(config, str(tmp_path))
    ckpt = checkpoint.Checkpointer(str(tmp_path), read_only=True)
    assert ckpt.all_steps() == [1]
    assert [r["step"] for r in _rows(tmp_path)] == [1]


def _run_main(args, tmp_path, **kwargs):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, "-m", "jaxgan.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(os.path.dirname(__file__)),
        **kwargs,
    )


@pytest.mark.parametrize("name", ["wgan_gp", "dcgan"])
def test_smoke_run_through_main_writes_everything(tmp_path, name):
    workdir = tmp_path / name
    result = _run_main(
        [f"--config=configs/{name}.py:smoke", f"--workdir={workdir}"], tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "3"]  # keep_last = 2
    assert sorted(os.listdir(workdir / "samples")) == [
        "00000001.png",
        "00000002.png",
        "00000003.png",
    ]
    rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(
        np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) and r["img_per_s"] > 0 for r in rows
    )
    config = json.load(open(workdir / "config.json"))
    assert config["model"]["name"] == ("resnet" if name == "wgan_gp" else "dcgan")
    assert "Orbax" not in result.stderr and "checkpoint_manager.py" not in result.stderr


def test_sigkill_mid_training_resumes_from_the_last_checkpoint(tmp_path):
    """A run killed with SIGKILL (no cleanup at all) restarts from its last complete checkpoint."""
    import signal
    import time

    args = [
        "--config=configs/wgan_gp.py:smoke",
        f"--workdir={tmp_path}",
        "--config.num_steps=40",
        "--config.checkpoint_every=2",
        "--config.sample_every=100",
    ]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    root = os.path.dirname(os.path.dirname(__file__))
    process = subprocess.Popen(
        [sys.executable, "-m", "jaxgan.main", *args],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while time.time() < deadline and not (tmp_path / "checkpoints" / "4").exists():
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = checkpoint.Checkpointer(str(tmp_path), read_only=True).latest_step()
    assert killed_at is not None and killed_at < 40

    result = _run_main(args, tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resumed from step {killed_at}" in result.stderr
    assert [r["step"] for r in _rows(tmp_path)] == list(range(1, 41))
    assert checkpoint.Checkpointer(str(tmp_path), read_only=True).all_steps() == [38, 40]


def test_misspelt_override_names_the_nearest_field(tmp_path):
    result = _run_main(
        ["--config=configs/wgan_gp.py:smoke", "--config.optim.g_lrr=1", f"--workdir={tmp_path}"],
        tmp_path,
        timeout=120,
    )
    assert result.returncode != 0
    assert 'Did you mean "g_lr" instead of "g_lrr"?' in result.stderr


def test_gradient_penalty_with_batchnorm_critic_is_rejected(tmp_path):
    config = _smoke("dcgan")
    config.penalties = {"wgan_gp": {"weight": 10.0}}
    with pytest.raises(ValueError, match="critic_norm='batch' mixes samples.*critic_norm=layer"):
        train.train_and_evaluate(config, str(tmp_path))
