"""The train step and loop: device-count equivalence, resume, non-finite stop, golden numbers."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import data
from jaxgan.configs import dcgan, wgan_gp
from jaxgan.core import checkpoint, parallel
from jaxgan.methods import gan
from jaxgan.training import loop

CONFIGS = {"wgan_gp": wgan_gp, "dcgan": dcgan}


def _smoke(name, **overrides):
    config = CONFIGS[name].get_config("smoke")
    config.update_from_flattened_dict(overrides)
    return config


# Equivalence tests (device counts, resume) compare in float64 (DESIGN.md, "Numbers hold on any
# CPU"). XLA:CPU compiles reductions for the instruction set, so how the float32 rounding of one
# step on 8 devices differs from that on 1 depends on the CPU, and BatchNorm and Adam's first step
# (~lr·sign(g) for tiny g) amplify it: dcgan's d_grad_norm differed by 1.7e-4 relative on a Zen 4
# (AVX-512), ~1400 float32 ulps. The same computation in float64 rounds 2**29 times finer, which
# puts that worst case at ~3e-13. 1e-9 relative is ~4.5e6 float64 ulps (eps 2.2e-16): room for any
# such amplification, while a real difference (a per-device statistic, a wrong sharding, a lost
# optimizer moment) moves these numbers by 1e-3 or more. Also the absolute tolerance of metrics
# that are means of cancelling terms (scores near 0), which are O(0.01-10) here.
FLOAT64_TOLERANCE = 1e-9


def _float64(tree):
    """Floating leaves cast to float64 (exactly); integer leaves (step, RNG key data) as they are."""
    assert jax.config.jax_enable_x64, "float64 arrays need `with jax.enable_x64(True):`"
    cast = lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x  # noqa: E731
    return jax.jit(lambda tree: jax.tree.map(cast, tree))(tree)


def _models(config):
    """(generator, critic, g_tx, d_tx) of `config` for 1-channel 32x32 images with 10 classes."""
    generator, critic = gan.build_models(config, 1, 10)
    g_tx = gan.make_optimizer(config, config.optim.g_lr, 1)
    d_tx = gan.make_optimizer(config, config.optim.d_lr, config.n_critic)
    return generator, critic, g_tx, d_tx


def _initial_state(config, models, mesh):
    """The state a run starts from (float32 parameters, as layers.py makes them); under
    `jax.enable_x64(True)` cast exactly to float64, so every device count starts from the same
    numbers."""
    with jax.enable_x64(False):
        state = gan.create_state(config, *models, (32, 32, 1), mesh)
    return _float64(state) if jax.config.jax_enable_x64 else state


def _on(mesh, batch):
    return data.to_global(batch, parallel.sharded_on(mesh, 1))


def _one_step(config, mesh, batch):
    """Builds everything for `config` on `mesh` and runs one train step on `batch`; in float64
    when called under `jax.enable_x64(True)` (the step's arithmetic follows its state's dtype)."""
    models = _models(config)
    state = _initial_state(config, models, mesh)
    step = gan.make_train_step(config, *models, 10, mesh)
    state, metrics = step(state, _on(mesh, batch))
    return state, metrics, models[0]


def _batches(config, count=1):
    """The first `count` global batches of the seeded mnist5k stream ([n_critic, B, ...] each)."""
    batches = data.Batches(
        data.open_source("mnist5k"), config.batch_size, 32, 1, seed=0, steps=config.n_critic
    )
    return [next(batches) for _ in range(count)]


def _batch(config):
    return _batches(config)[0]


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


def _assert_bit_equal(a, b, what):
    """Same tree, same dtypes, same bits: what a deterministic rerun must give."""
    assert jax.tree.structure(a) == jax.tree.structure(b), what
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        where = f"{what}{jax.tree_util.keystr(path)}"
        assert x.dtype == y.dtype, where
        np.testing.assert_array_equal(x, y, err_msg=where)


def _assert_same_metrics(metrics_a, metrics_b, tolerance=FLOAT64_TOLERANCE):
    assert sorted(metrics_a) == sorted(metrics_b)
    for key in metrics_b:
        np.testing.assert_allclose(
            metrics_a[key], metrics_b[key], rtol=tolerance, atol=tolerance, err_msg=key
        )


def _assert_same_models(state_a, state_b, generator, config, tolerance=FLOAT64_TOLERANCE):
    """Every critic parameter, and the generator and its EMA as functions of fixed latents."""
    assert _max_relative_difference(state_a["d_params"], state_b["d_params"]) <= tolerance
    z, labels = gan.fixed_latents(config, 10)
    apply = jax.jit(generator.apply)  # compiled once per placement, not once per operation
    for key in ("g_params", "ema_params"):
        images_a = apply({"params": state_a[key]}, z, labels)
        images_b = apply({"params": state_b[key]}, z, labels)
        assert _max_relative_difference(images_a, images_b) <= tolerance, key


@pytest.mark.slow
@pytest.mark.parametrize("name", ["wgan_gp", "dcgan"])
def test_one_step_on_8_devices_equals_one_device(name):
    """Same global batch, same step, in float64: 8 devices and 1 agree to FLOAT64_TOLERANCE.

    Compared: every metric, every critic parameter, and the updated generator and its EMA as
    functions (their images for fixed latents). Generator parameters are compared through the
    function because the ResNet generator has biases that feed straight into a BatchNorm
    (tflib's convs keep them): their exact gradient is 0, the rounding noise in it depends on the
    device layout, and Adam's first step turns that noise into an update of any relative size
    (~lr·noise/eps). Such biases cannot change a single output pixel, which is what the image
    comparison shows.
    """
    config = _smoke(name, n_critic=1)  # a second critic step adds compile time, not sharding
    batch = _batch(config)
    with jax.enable_x64(True):
        state8, metrics8, generator = _one_step(config, parallel.make_mesh(8), batch)
        state1, metrics1, _ = _one_step(config, parallel.make_mesh(1), batch)
        assert state8["g_params"]["Output"]["kernel"].sharding.num_devices == 8
        assert metrics1["d_loss"].dtype == state1["d_params"]["Output"]["kernel"].dtype
        assert metrics1["d_loss"].dtype == jnp.float64
        _assert_same_metrics(metrics8, metrics1)
        _assert_same_models(state8, state1, generator, config)


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


# float32 numbers, so how close another CPU comes depends on how the step amplifies rounding.
# wgan_gp: 1e-7 apart between SSE4.2, AVX2 and AVX-512 code; 1e-4 is 1,000x that. dcgan's
# critic has BatchNorm, and its second critic update follows Adam's first (lr·sign(g) for tiny
# g): compiled for SSE4.2 instead of AVX-512 (XLA_FLAGS=--xla_cpu_max_isa=SSE4_2) its gradient
# norms moved by 1.7e-4 and 1.1e-3 relative; 3e-3 leaves ~3x over that, and a changed loss,
# init or layer moves them by more than 1e-2.
GOLDEN_RTOL = {"wgan_gp": 1e-4, "dcgan": 3e-3}


@pytest.mark.parametrize("name", ["wgan_gp", "dcgan"])
def test_golden_one_step(name):
    config = _smoke(name)
    _, metrics, _ = _one_step(config, parallel.make_mesh(1), _batch(config))
    got = {k: float(metrics[k]) for k in ("d_loss", "g_loss", "d_grad_norm", "g_grad_norm")}
    if os.environ.get("GOLDEN_PRINT"):
        print(name, got)
    for key, value in GOLDEN[name].items():
        np.testing.assert_allclose(got[key], value, rtol=GOLDEN_RTOL[name], err_msg=f"{name} {key}")
    assert GOLDEN[name], "no golden numbers stored"


def _rows(workdir):
    return [json.loads(line) for line in open(workdir / "metrics.jsonl")]


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path):
    """4 steps in one go == 2 steps, stop, resume, 2 more: the same state, bit for bit.

    Same devices, same compiled step, a checkpoint that stores every bit: nothing may differ, so
    no tolerance (a resume that lost an optimizer moment or replayed a batch shows up here).
    """
    overrides = {"num_steps": 4, "optim.decay": "constant"}
    straight = loop.train_and_evaluate(_smoke("wgan_gp", **overrides), str(tmp_path / "a"))
    loop.train_and_evaluate(_smoke("wgan_gp", **{**overrides, "num_steps": 2}), str(tmp_path / "b"))
    resumed = loop.train_and_evaluate(_smoke("wgan_gp", **overrides), str(tmp_path / "b"))
    assert int(resumed["step"]) == 4
    _assert_bit_equal(resumed, straight, "state")
    assert [r["step"] for r in _rows(tmp_path / "b")] == [1, 2, 3, 4]
    timing = ("img_per_s", "elapsed_s")
    assert [{k: v for k, v in r.items() if k not in timing} for r in _rows(tmp_path / "b")[2:]] == [
        {k: v for k, v in r.items() if k not in timing} for r in _rows(tmp_path / "a")[2:]
    ]
    meta = checkpoint.Checkpointer(str(tmp_path / "b"), read_only=True).restore_meta(4)
    assert meta["data_cursor"] == 4 * 2 * 8  # steps x n_critic x batch
    assert sorted(os.listdir(tmp_path / "b" / "samples")) == [f"{s:08d}.png" for s in range(1, 5)]


@pytest.mark.slow
def test_resume_on_a_different_device_count(tmp_path):
    """A checkpoint written on 8 devices, restored onto 1, continues as if it had stayed on 8.

    In float64 (see FLOAT64_TOLERANCE): one step on 8 devices, saved; restored onto 1 device into
    abstract arrays that carry the 1-device shardings (what the run loop restores into); one more
    step there == two steps straight on 8 devices.
    """
    config = _smoke("dcgan")
    first, second = _batches(config, 2)
    mesh8, mesh1 = parallel.make_mesh(8), parallel.make_mesh(1)
    models = _models(config)
    with jax.enable_x64(True):
        step8 = gan.make_train_step(config, *models, 10, mesh8)
        state, _ = step8(_initial_state(config, models, mesh8), _on(mesh8, first))
        ckpt = checkpoint.Checkpointer(str(tmp_path))
        ckpt.save(1, state, {"data_cursor": config.n_critic * config.batch_size})
        ckpt.wait()
        abstract = checkpoint.abstract_like(state, parallel.replicated(mesh1))
        straight, straight_metrics = step8(state, _on(mesh8, second))

        restored, meta = ckpt.restore(1, abstract)
        ckpt.close()
        assert meta["data_cursor"] == 8
        kernel = restored["d_params"]["Output"]["kernel"]
        assert kernel.dtype == jnp.float64 and kernel.sharding.num_devices == 1
        step1 = gan.make_train_step(config, *models, 10, mesh1)
        resumed, resumed_metrics = step1(restored, _on(mesh1, second))
        assert int(resumed["step"]) == int(straight["step"]) == 2
        _assert_same_metrics(resumed_metrics, straight_metrics)
        _assert_same_models(resumed, straight, models[0], config)


def test_a_replicated_state_on_host_cpus_is_saved_from_one_copy(tmp_path):
    """On one host's CPU devices a replicated array reaches Orbax as one copy, so its save compiles
    nothing (Orbax's replica-parallel save compiled a slice per leaf shape and device), and restoring
    places the arrays as asked: replicated on the 8 test devices, equal to what was saved."""
    replicated = parallel.replicated(parallel.make_mesh(8))
    # Shapes no other test saves (an earlier save's slices would already be compiled), with an axis
    # of a multiple of 8, which Orbax splits among the replicas.
    state = {
        "kernel": jax.device_put(jnp.arange(24 * 7, dtype=jnp.float32).reshape(24, 7), replicated),
        "bias": jax.device_put(jnp.linspace(-1.0, 1.0, 40), replicated),
        "host": np.arange(4),
    }
    handed = checkpoint.one_copy_on_host_cpus(state)
    assert handed["kernel"].sharding.num_devices == handed["bias"].sharding.num_devices == 1
    assert handed["host"] is state["host"]
    ckpt = checkpoint.Checkpointer(str(tmp_path))
    compiles = []  # every thread's: Orbax slices in its own

    def count(event, seconds, **_):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(seconds)

    jax.monitoring.register_event_duration_secs_listener(count)
    try:
        ckpt.save(1, state, {})
        ckpt.wait()
    finally:
        jax.monitoring.unregister_event_duration_listener(count)
    assert compiles == []
    restored, _ = ckpt.restore(1, checkpoint.abstract_like(state, replicated))
    ckpt.close()
    for name in ("kernel", "bias"):
        assert restored[name].sharding.is_equivalent_to(replicated, restored[name].ndim)
        np.testing.assert_array_equal(np.asarray(restored[name]), np.asarray(state[name]))
    np.testing.assert_array_equal(restored["host"], state["host"])


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


@pytest.mark.slow
@pytest.mark.parametrize("name", ["wgan_gp", "dcgan"])
def test_smoke_run_through_main_writes_everything(tmp_path, name):
    workdir = tmp_path / name
    result = _run_main([f"--config={name}:smoke", f"--workdir={workdir}"], tmp_path, timeout=300)
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


@pytest.mark.slow
def test_sigkill_mid_training_resumes_from_the_last_checkpoint(tmp_path):
    """A run killed with SIGKILL (no cleanup at all) restarts from its last complete checkpoint."""
    import signal
    import time

    args = [
        "--config=wgan_gp:smoke",
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


@pytest.mark.slow
def test_misspelt_override_names_the_nearest_field(tmp_path):
    result = _run_main(
        ["--config=wgan_gp:smoke", "--config.optim.g_lrr=1", f"--workdir={tmp_path}"],
        tmp_path,
        timeout=120,
    )
    assert result.returncode != 0
    assert "config.optim has no field 'g_lrr'. Did you mean --config.optim.g_lr?" in result.stderr
    assert "Traceback" not in result.stderr


def test_gradient_penalty_with_batchnorm_critic_is_rejected(tmp_path):
    config = _smoke("dcgan")
    config.penalties = {"wgan_gp": {"weight": 10.0}}
    with pytest.raises(ValueError, match="critic_norm='batch' mixes samples.*critic_norm=layer"):
        loop.train_and_evaluate(config, str(tmp_path))


def test_paper_presets_train_what_their_references_train():
    """The presets that quote a paper's number follow its code where it differs from ours."""
    from jaxgan.configs import acgan, pggan, sngan, wgan_gp

    for config in (wgan_gp.get_config("cifar10"), acgan.get_config("cifar10")):
        # gan_cifar_resnet.py: no EMA (its IS quote is of the trained G), dequantised reals.
        assert config.ema_decay == 0.0 and config.data.dequantize
    # gan_64x64.py keeps Adam(1e-4) constant.
    resnet64 = wgan_gp.get_config("resnet64")
    assert resnet64.optim.decay == "constant" and resnet64.optim.g_lr == 1e-4
    # sngan_projection datasets/cifar10.py: x/128 - 1 + U(0, 1/128); samples from G itself.
    c = sngan.get_config("cifar10")
    assert c.data.dequantize and c.ema_decay == 0.0
    # Theano LSUN: minibatch stddev over the whole minibatch of 16 ('all').
    c = pggan.get_config("lsun256")
    assert c.model.mbstd_group_size == c.batch_size == 16


def test_linear_decay_is_gan_cifar_resnets():
    """gan_cifar_resnet.py: lr · max(0, 1 - iteration / ITERS), the iteration counted from 0 and
    the lr of the step that updates with it; `constant` keeps the lr. Numbers by hand for
    ITERS = 4, lr 2e-4."""
    config = _smoke("wgan_gp", num_steps=4)
    assert config.optim.decay == "linear"  # the preset's (the tests' runs use constant)
    lr = gan.learning_rate_fn(config, 2e-4)
    got = [float(lr(step)) for step in range(6)]
    np.testing.assert_allclose(got, [2e-4, 1.5e-4, 1e-4, 0.5e-4, 0.0, 0.0], rtol=1e-6, atol=0)
    config.optim.decay = "constant"
    assert [float(gan.learning_rate_fn(config, 2e-4)(step)) for step in (0, 9)] == [
        np.float32(2e-4)
    ] * 2
