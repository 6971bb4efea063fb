"""jaxgan as users install it: the built wheel in a fresh venv, used from outside the checkout.

The venv gets the wheel alone (`--no-deps`); its dependencies come from the test's own environment
through a .pth line (the same packages pip would resolve, without a second download of JAX), whose
editable jaxgan install is not on that path: `jaxgan.__file__` proves which copy ran.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import sysconfig

import numpy as np
import pytest
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow


def _run(command, cwd, env, timeout=600):
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin directory, environment) of a fresh venv holding only the wheel built from this checkout."""
    root = tmp_path_factory.mktemp("package")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["JAX_PLATFORMS"] = "cpu"
    env["XDG_CACHE_HOME"] = str(root / "cache")
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "dist"), REPO],
        root,
        env,
    )
    (wheel,) = glob.glob(str(root / "dist" / "jaxgan-*.whl"))
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], root, env)
    bin_dir = venv / "bin"
    venv_python = str(bin_dir / "python")
    site = _run(
        [venv_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root, env
    )
    # The dependencies: this environment's site-packages, appended after the venv's own.
    parent = sysconfig.get_paths()["purelib"]
    with open(os.path.join(site.stdout.strip(), "dependencies.pth"), "w") as f:
        f.write(parent + "\n")
    _run([venv_python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], root, env)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return bin_dir, env, elsewhere, str(venv)


def test_the_wheel_installs_jaxgan_alone_with_its_configs_and_assets(installed):
    bin_dir, env, elsewhere, venv = installed
    probe = (
        "import importlib.util, json, jaxgan, jaxgan.configs as c; print(json.dumps({"
        "'file': jaxgan.__file__, 'configs': c.names(), "
        "'top_level_configs': importlib.util.find_spec('configs') is not None}))"
    )
    found = json.loads(_run([str(bin_dir / "python"), "-c", probe], elsewhere, env).stdout)
    assert found["file"].startswith(venv), found["file"]  # the wheel's copy, not the checkout's
    assert found["configs"] == [
        "acgan", "cyclegan", "dcgan", "nicegan", "pggan", "sngan", "transfer", "wgan_gp"
    ]  # fmt: skip
    assert not found["top_level_configs"]  # no generic top-level package installed
    for script in (
        "jaxgan-train",
        "jaxgan-evaluate",
        "jaxgan-generate",
        "jaxgan-translate",
        "jaxgan-prepare",
    ):
        assert os.access(bin_dir / script, os.X_OK), script


def test_train_generate_evaluate_from_another_directory(installed):
    bin_dir, env, elsewhere, _ = installed
    workdir = elsewhere / "run"
    _run(
        [str(bin_dir / "jaxgan-train"), "--config=wgan_gp:smoke", f"--workdir={workdir}"],
        elsewhere,
        env,
    )
    assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "3"]

    out = elsewhere / "images"
    _run(
        [str(bin_dir / "jaxgan-generate"), f"--workdir={workdir}", "--num=10", f"--out={out}"],
        elsewhere,
        env,
    )
    pngs = sorted(glob.glob(str(out / "*.png")))
    assert len(pngs) == 10
    assert np.asarray(Image.open(pngs[0])).shape[:2] == (32, 32)

    # mnist5k's shipped feature network (jaxgan/assets): the package data came with the wheel.
    evaluate = [str(bin_dir / "jaxgan-evaluate"), f"--workdir={workdir}", "--metrics=fid"]
    _run([*evaluate, "--num_samples=200", "--num_real=200", "--steps=latest"], elsewhere, env)
    rows = [json.loads(line) for line in open(workdir / "eval" / "metrics.jsonl")]
    (row,) = [r for r in rows if r["step"] == 3]
    assert row["metric"] == "fid" and np.isfinite(row["value"]) and row["value"] > 0

    # The Python API on two uint8 arrays: the FID of a set with itself is 0, of two sets > 0.
    script = (
        "import json, numpy as np, jaxgan\n"
        "rng = np.random.default_rng(0)\n"
        "a = rng.integers(0, 256, (64, 32, 32, 1), dtype=np.uint8)\n"
        "b = rng.integers(0, 128, (64, 32, 32, 1), dtype=np.uint8)\n"
        "same = jaxgan.metrics.compute(a, a, metrics=('fid',), feature_network='mnist_cnn')\n"
        "other = jaxgan.metrics.compute(a, b, metrics=('fid',), feature_network='mnist_cnn')\n"
        "print(json.dumps([same['fid'], other['fid']]))\n"
    )
    same, other = json.loads(
        _run([str(bin_dir / "python"), "-c", script], elsewhere, env)
        .stdout.strip()
        .splitlines()[-1]
    )
    assert abs(same) < 1e-4 and other > 1.0
