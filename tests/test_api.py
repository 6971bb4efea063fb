"""The Python API (`jaxgan.train`, `jaxgan.load_generator`, `jaxgan.metrics.compute`) and configs
by name: each against what the commands compute."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

import jaxgan
from jaxgan import configs
from jaxgan.core import checkpoint, run_files
from jaxgan.eval import runner, sampling
from jaxgan.eval.options import Options

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _digits(seed: int, n: int = 160) -> np.ndarray:
    """n uint8 images [n, 32, 32, 1]: blurred random strokes, different for each seed."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 32, 32, 1), np.uint8)
    for image in images:
        for _ in range(3):
            r, c = rng.integers(4, 28, 2)
            image[r - 3 : r + 3, c - 1 : c + 1] = 255
    return images


# ---- configs by name ---------------------------------------------------------------------------


def test_a_config_is_found_by_name_by_checkout_path_and_by_file(tmp_path):
    packaged = os.path.join(os.path.dirname(configs.__file__), "wgan_gp.py")
    assert configs.resolve("wgan_gp:smoke") == packaged + ":smoke"
    assert configs.resolve("wgan_gp") == packaged
    assert configs.resolve("configs/wgan_gp.py:cifar10") == packaged + ":cifar10"
    mine = tmp_path / "mine.py"
    mine.write_text("from jaxgan.configs import wgan_gp\n\ndef get_config(p=''):\n"
                    "    c = wgan_gp.get_config(p)\n    c.seed = 7\n    return c\n")  # fmt: skip
    assert configs.resolve(f"{mine}:smoke") == f"{mine}:smoke"
    loaded = configs.load(f"{mine}:smoke")
    assert loaded.seed == 7
    expected = configs.get("wgan_gp", "smoke").to_dict()
    assert {**loaded.to_dict(), "seed": 0} == expected
    assert configs.load("wgan_gp:smoke").to_dict() == expected


def test_an_unknown_config_names_the_nearest_and_the_choices(tmp_path):
    with pytest.raises(ValueError, match="'wgan_gpp' is neither.*Did you mean 'wgan_gp'"):
        configs.resolve("wgan_gpp:smoke")
    with pytest.raises(ValueError, match="no config file at"):
        configs.resolve(str(tmp_path / "missing.py"))
    assert set(configs.names()) >= {"wgan_gp", "pggan", "cyclegan", "nicegan", "transfer"}
    assert "common" not in configs.names()


def _parse_config_flag(*overrides):
    argv = ["main", "--config=wgan_gp:smoke", *overrides]
    flag_values = flags.FlagValues()
    configs.define_config_flag(flag_values=flag_values, sys_argv=argv)
    flag_values(argv)
    return flag_values.config


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "--config.model.widht=3",
            r"^--config.model.widht: config.model has no field 'widht'. Did you mean "
            r"--config.model.g_width\? Its fields: .*d_width, g_width,",
        ),
        ("--config.modle.g_width=3", r"config has no field 'modle'. Did you mean --config.model\?"),
        ("--config.optim.g_lr.x=3", r"config.optim.g_lr is a float, not a group of fields."),
    ],
)
def test_a_misspelt_config_field_is_named_in_the_flag_error(override, message):
    """A flags error (one line from absl.app, exit 1), not ml_collections' AttributeError."""
    assert _parse_config_flag("--config.model.g_width=3").model.g_width == 3
    with pytest.raises(flags.IllegalFlagValueError, match=message):
        _parse_config_flag(override)


# ---- jaxgan.metrics ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    real, fake = _digits(0), _digits(1)
    labels = np.arange(len(real)) % 10
    np.savez(root / "real.npz", images=real, labels=labels)
    np.savez(root / "fake.npz", images=fake, labels=labels)
    return root, real, fake, labels


OPTIONS = dict(feature_network="mnist_cnn", kid_subsets=5, kid_subset_size=16)


def test_metrics_compute_on_arrays_gives_the_evaluators_rows(two_sets, tmp_path):
    root, real, fake, _ = two_sets
    scores = jaxgan.metrics.compute(
        real, fake, metrics=("fid", "kid"), cache_dir=str(tmp_path), **OPTIONS
    )
    opts = Options(**OPTIONS, cache_dir=str(tmp_path), progress=False)
    rows = runner.evaluate_sets(
        str(root / "real.npz"), str(root / "fake.npz"), ["fid", "kid"], opts
    )
    by_metric = {row["metric"]: row for row in rows}
    assert scores["fid"] == pytest.approx(by_metric["fid"]["value"], rel=1e-6)
    assert scores["kid"] == pytest.approx(by_metric["kid"]["value"], rel=1e-6, abs=1e-9)
    assert scores["kid_std"] == pytest.approx(by_metric["kid"]["std"], rel=1e-6, abs=1e-9)
    assert scores["fid"] > 1.0  # two different sets
    same = jaxgan.metrics.compute(real, real, metrics=("fid",), cache_dir=str(tmp_path), **OPTIONS)
    assert abs(same["fid"]) < 1e-4  # 0 up to the float64 square root of a singular product
    # Folders and .npz files are taken as the command takes them.
    folder = tmp_path / "fake_png"
    folder.mkdir()
    for i, image in enumerate(fake):
        run_files.save_png(str(folder / f"{i:04d}.png"), image)
    from_folder = jaxgan.metrics.compute(
        str(root / "real.npz"), str(folder), metrics=("fid",), **OPTIONS
    )
    assert from_folder["fid"] == pytest.approx(scores["fid"], rel=1e-6)


def test_metrics_compute_refuses_bad_input_by_name(two_sets):
    _, real, fake, _ = two_sets
    with pytest.raises(TypeError, match="fake: images must be uint8"):
        jaxgan.metrics.compute(real, fake.astype(np.float32), **OPTIONS)
    with pytest.raises(ValueError, match="fake images are .* the real ones"):
        jaxgan.metrics.compute(real, fake[:, :16, :16], **OPTIONS)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['feature_net'\]"):
        jaxgan.metrics.compute(real, fake, feature_net="mnist_cnn")
    with pytest.raises(ValueError, match="unknown fidd"):
        jaxgan.metrics.compute(real, fake, metrics=("fidd",), **OPTIONS)


@pytest.mark.slow
def test_metrics_compute_equals_the_command_line(two_sets, tmp_path):
    root, real, fake, _ = two_sets
    output = tmp_path / "rows.jsonl"
    flags = [f"--{k}={v}" for k, v in OPTIONS.items()]
    command = [sys.executable, "-m", "jaxgan.evaluate", f"--real={root / 'real.npz'}",
               f"--fake={root / 'fake.npz'}", "--metrics=fid,kid", f"--output={output}", *flags]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                            env=dict(os.environ, JAX_PLATFORMS="cpu"))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in open(output)]
    scores = jaxgan.metrics.compute(real, fake, metrics=("fid", "kid"), **OPTIONS)
    assert jaxgan.metrics.to_dict(rows) == pytest.approx(scores, rel=1e-6, abs=1e-9)


# ---- jaxgan.load_generator and jaxgan.train --------------------------------------------------


@pytest.fixture(scope="module")
def run(make_smoke_run):
    return make_smoke_run("api")


def test_load_generator_draws_the_evaluators_images(run):
    workdir, config = run
    g = jaxgan.load_generator(workdir)
    assert g.step == 3 and g.z_dim == config.model.z_dim and g.num_classes == 0
    z, labels = g.latents(16, seed=5)
    mine = run_files.to_uint8(g(z))
    theirs, _, step = sampling.sample_checkpoint(workdir, config, "latest", 16, 5, batch_size=16)
    assert step == 3
    np.testing.assert_array_equal(mine, theirs)
    older = jaxgan.load_generator(workdir, step=2)
    assert older.step == 2 and not np.array_equal(run_files.to_uint8(older(z)), mine)
    with pytest.raises(ValueError, match=r"z: expected latents \[N, 16\]"):
        g(z[:, :3])


@pytest.mark.slow
def test_train_takes_a_config_by_name_or_as_a_configdict(tmp_path, smoke_config):
    config = smoke_config(num_steps=1)
    state = jaxgan.train(config, str(tmp_path / "dict"))
    assert int(state["step"]) == 1
    assert checkpoint.Checkpointer(str(tmp_path / "dict"), read_only=True).all_steps() == [1]
    # By name: the 3-step smoke preset, then resumed with nothing left to do.
    state = jaxgan.train("wgan_gp:smoke", str(tmp_path / "named"))
    assert int(state["step"]) == 3
    assert json.loads((tmp_path / "named" / "config.json").read_text())["num_steps"] == 3
