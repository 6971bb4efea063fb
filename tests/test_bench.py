"""`python -m jaxgan.bench --vs=torch`: the twins' flags, the alternation and its arithmetic.

PyTorch is not a dependency, so the twin is replaced here by a recorded one (the real twins'
output lines); what is tested is the harness: which twin a config gets, that both sides alternate,
that the medians, ratio and compute floor are those of the times measured, and that a twin whose
networks differ is refused.
"""

import statistics
import sys

import jax
import numpy as np
import pytest
from absl import app

from jaxgan import bench
from jaxgan.configs import cyclegan, dcgan, pggan, wgan_gp
from jaxgan.core import errors, parallel
from jaxgan.training import benchmark


def test_each_config_gets_the_twin_of_its_networks_and_batches():
    assert bench.twin_command(wgan_gp.get_config(), 0, 0.5) == [
        "torch_wgan_gp.py", "--arch=dcgan", "--width=32", "--batch_size=64",
        "--g_batch_size=64", "--channels=1", "--n_critic=5",
    ]  # fmt: skip
    cifar = bench.twin_command(wgan_gp.get_config("cifar10"), 0, 0.5)
    assert cifar[1:3] == ["--arch=resnet", "--width=128"]
    assert "--g_batch_size=128" in cifar and "--channels=3" in cifar
    # PGGAN at the 16x16 fade-in: the minibatch of the schedule's table at 16 (32 in the default).
    progressive = bench.twin_command(pggan.get_config(), 16, 0.25)
    assert progressive[0] == "torch_pggan.py"
    assert {"--resolution=16", "--alpha=0.25", "--batch_size=32"} <= set(progressive)
    assert bench.twin_command(cyclegan.get_config(), 0, 0.5)[:3] == [
        "torch_cyclegan.py", "--size=64", "--width=32",
    ]  # fmt: skip
    with pytest.raises(errors.ConfigError, match="twins an unconditional 32x32 WGAN-GP"):
        bench.twin_command(dcgan.get_config(), 0, 0.5)  # non-saturating loss, BN critic


def test_a_python_without_torch_is_told_how_to_get_it(tmp_path):
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'import no_such_torch_module' \n")
    python.chmod(0o755)
    with pytest.raises(app.UsageError, match="cannot import torch.*pip install torch"):
        bench.check_torch(str(python))


def test_a_twins_lines_are_read_and_its_failure_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "TWINS_DIR", str(tmp_path))
    (tmp_path / "twin.py").write_text(
        "import sys\nprint('torch: 2.0, threads: 2, device: cpu')\nprint('step_ms: ' + sys.argv[1])\n"
    )
    assert bench.run_twin(sys.executable, ["twin.py", "12.5"]) == {
        "torch": "2.0, threads: 2, device: cpu",
        "step_ms": "12.5",
    }
    (tmp_path / "broken.py").write_text("raise RuntimeError('no CUDA here')\n")
    with pytest.raises(SystemExit, match="no CUDA here"):
        bench.run_twin(sys.executable, ["broken.py"])


def recorded_twin(params, step_ms_by_layout):
    """A `run_twin` that answers with the lines the real twins print, and records its calls."""
    calls = []

    def run_twin(python, command):
        layout = "channels_last" if "--channels_last" in command else "NCHW"
        calls.append(layout)
        return {
            "torch": "2.14.1, threads: 2, device: cpu",
            "g_params": str(params[0]),
            "d_params": str(params[1]),
            "step_ms": str(step_ms_by_layout[layout].pop(0)),
        }

    return run_twin, calls


@pytest.mark.slow
def test_the_sides_alternate_and_the_summary_is_their_arithmetic(monkeypatch, capsys):
    config = wgan_gp.get_config("smoke")
    mesh = parallel.make_mesh(config.num_devices or None)
    state = bench.build_step(config, mesh).state
    params = (benchmark.count_params(state["g_params"]), benchmark.count_params(state["d_params"]))
    nchw, channels_last = [30.0, 10.0, 20.0], [5.0, 40.0, 6.0]
    run_twin, calls = recorded_twin(
        params, {"NCHW": list(nchw), "channels_last": list(channels_last)}
    )
    monkeypatch.setattr(bench, "check_torch", lambda python: "2.14.1")
    monkeypatch.setattr(bench, "run_twin", run_twin)
    monkeypatch.setattr(bench, "matmul_peak_flops", lambda dtype: 1e11)

    lines = bench.compare_with_torch(config, 3, 1, "python", 0, 0.5, ("--fused",))
    summary = dict(line.split(": ", 1) for line in lines)
    assert summary["twin"].startswith("benchmarks/torch_wgan_gp.py --arch=resnet")
    assert summary["twin"].endswith(" --fused")  # --twin_flags, passed on
    rounds = [line for line in capsys.readouterr().out.splitlines() if line.startswith("round")]
    assert calls == ["NCHW", "channels_last"] * 3  # one of each per round, after jaxgan's steps
    jaxgan_ms = [float(line.split("jaxgan ")[1].split(" ms")[0]) for line in rounds]
    assert len(jaxgan_ms) == 3
    assert summary["torch_nchw_step_ms"] == "median 20.0 (range 10.0-30.0)"
    assert summary["torch_channels_last_step_ms"] == "median 6.0 (range 5.0-40.0)"
    jaxgan_median = float(summary["jaxgan_step_ms"].split()[1])
    assert jaxgan_median == pytest.approx(statistics.median(jaxgan_ms), abs=0.05)
    speedup = float(summary["speedup_vs_torch_best"].split()[0])
    assert speedup == pytest.approx(6.0 / statistics.median(jaxgan_ms), rel=0.01, abs=0.006)
    assert "torch_channels_last" in summary["speedup_vs_torch_best"]
    gflop = float(summary["xla_gflop_per_step"])
    assert gflop > 0
    floor_ms = float(summary["compute_floor_ms"].split()[0])
    assert floor_ms == pytest.approx(1e3 * gflop * 1e9 / 1e11, rel=0.01, abs=0.06)


@pytest.mark.slow
def test_a_twin_with_other_networks_is_refused(monkeypatch):
    run_twin, _ = recorded_twin((1, 2), {"NCHW": [1.0], "channels_last": [1.0]})
    monkeypatch.setattr(bench, "check_torch", lambda python: "2.14.1")
    monkeypatch.setattr(bench, "run_twin", run_twin)
    with pytest.raises(SystemExit, match=r"not jaxgan's: parameters \(G, D\) \(1, 2\)"):
        bench.compare_with_torch(wgan_gp.get_config("smoke"), 1, 1, "python", 0, 0.5)


@pytest.mark.slow
def test_the_progressive_step_runs_at_the_stage_asked_for():
    """pggan:smoke's 8x8 fade-in: the stage's minibatch, a finite loss, the step's FLOPs counted."""
    config = pggan.get_config("smoke")
    step = bench.build_step(config, parallel.make_mesh(None), 8, 0.5)
    assert step.images_per_step == config.n_critic * config.batch_size
    assert float(step.inputs[1]["alpha"]) == 0.5
    step.warm_up()
    assert step.flops() > 0
    params = jax.tree_util.tree_leaves((step.state["g_params"], step.state["d_params"]))
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in params)


@pytest.mark.slow  # the Inception compiled, and run op by op: 20 s
def test_the_inception_profile_step_is_the_feature_network_on_one_batch():
    from jaxgan.eval import inception

    step = bench.inception_step(batch_size=2, image_size=16)
    variables, features = step.fn(step.state, *step.inputs)
    expected = inception.inception_features(inception.random_params(0), step.inputs[0])
    assert jax.tree.structure(variables) == jax.tree.structure(step.state)
    assert step.images_per_step == 2
    # The same network: jitted against op by op, so equal to float32 rounding, not bit for bit.
    np.testing.assert_allclose(features["pool3"], expected["pool3"], rtol=1e-4, atol=1e-5)
    assert features["pool3"].shape == (2, 2048) and float(np.std(features["pool3"])) > 0
