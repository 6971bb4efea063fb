"""`init_from`: a fresh run starts from a pretrained one, merged by parameter path."""

import os

import jax
import numpy as np
import pytest

from jaxgan.core import checkpoint, errors, parallel, run_files
from jaxgan.methods import gan
from jaxgan.training import loop, transfer


def _fresh_state(config):
    return gan.Trainer(config, "", parallel.make_mesh(1)).init_state()


def _leaves(tree):
    return {
        transfer.param_path(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)
    }


@pytest.fixture(scope="module")
def source(make_smoke_run):
    workdir, _ = make_smoke_run("transfer_source")
    state, _ = checkpoint.Checkpointer(workdir, read_only=True).restore_as_saved(3)
    return workdir, state


def test_both_networks_load_by_path_and_the_optimiser_stays_fresh(source, tmp_path, smoke_config):
    workdir, saved = source
    config = smoke_config(init_from=f"{workdir}:3")
    fresh = _fresh_state(config)
    state = transfer.init_from(fresh, config, str(tmp_path))
    for key in ("g_params", "ema_params", "d_params"):
        got, want = _leaves(state[key]), _leaves(saved[key])
        assert got.keys() == want.keys()
        for path in want:
            np.testing.assert_array_equal(got[path], want[path], err_msg=f"{key}/{path}")
    assert not np.array_equal(
        _leaves(saved["ema_params"])["Output/kernel"], _leaves(saved["g_params"])["Output/kernel"]
    )
    for key in ("g_opt", "d_opt", "step", "rng"):  # as a fresh run has them
        for a, b in zip(jax.tree.leaves(state[key]), jax.tree.leaves(fresh[key])):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    table = open(tmp_path / "init_from.txt").read()
    n_loaded = sum(len(_leaves(saved[k])) for k in ("g_params", "ema_params", "d_params"))
    assert table.startswith(f"init_from {workdir}:3: {n_loaded} loaded, 0 fresh, 0 skipped")
    assert "g_params/Output/kernel" in table and "loaded" in table


def test_one_network_a_skip_list_and_a_shape_error_naming_both_shapes(
    source, tmp_path, smoke_config
):
    workdir, saved = source
    wider_critic = {"model.d_width": 16, "init_from": workdir}
    with pytest.raises(
        errors.ConfigError,
        match=r"d_params/Block1Conv1/kernel: \(3, 3, 1, 16\) here, \(3, 3, 1, 8\) in the source",
    ):
        config = smoke_config(**wider_critic)
        transfer.init_from(_fresh_state(config), config, str(tmp_path))

    config = smoke_config(**wider_critic, init_from_networks="g")  # G only: the critic stays fresh
    fresh = _fresh_state(config)
    state = transfer.init_from(fresh, config, str(tmp_path))
    np.testing.assert_array_equal(
        _leaves(state["g_params"])["Output/kernel"], _leaves(saved["g_params"])["Output/kernel"]
    )
    for path, value in _leaves(fresh["d_params"]).items():
        np.testing.assert_array_equal(_leaves(state["d_params"])[path], value)

    config = smoke_config(**wider_critic, init_from_skip="d_params/*")  # both, the critic skipped
    state = transfer.init_from(_fresh_state(config), config, str(tmp_path))
    rows = open(tmp_path / "init_from.txt").read().splitlines()
    skipped = [r for r in rows if r.startswith("d_params/") and " skipped " in r]
    assert len(skipped) == len(_leaves(fresh["d_params"]))
    kernel = next(r for r in skipped if r.startswith("d_params/Block1Conv1/kernel "))
    assert kernel.split()[-4:] == ["(3,", "3,", "1,", "8)"]  # the source's shape, beside ours


def test_a_run_starts_from_the_source_through_the_loop(source, tmp_path, smoke_config):
    workdir, saved = source
    target = str(tmp_path / "target")
    state = loop.train_and_evaluate(smoke_config(num_steps=1, init_from=workdir), target)
    assert int(state["step"]) == 1 and os.path.exists(os.path.join(target, "init_from.txt"))
    # One step (two critic updates) from the source's critic: Adam with b1 = 0 moves a weight by at
    # most sqrt(1 / (1 - b2)) · lr... here sqrt(1.9)·lr at the second update: within 2 · 1.4 · lr.
    got, want = _leaves(state["d_params"]), _leaves(saved["d_params"])
    for path in want:
        assert np.max(np.abs(got[path] - want[path])) <= 2 * 1.4 * 2e-4, path


@pytest.mark.parametrize("conditioning", ["batchnorm", "concat"])
def test_a_conditional_target_from_an_unconditional_source(
    source, tmp_path, smoke_config, conditioning
):
    """Transferring GANs Tables 6-7: per-class BN = the source's BN tiled to every class, or (Cond
    Concat) z's rows of the input kernel from the source and the label's rows fresh; AC head fresh."""
    workdir, saved = source
    config = smoke_config(
        init_from=workdir,
        **{"model.conditional_generator": True, "model.ac_head": True},
        **{"model.conditioning": conditioning},
    )
    fresh = _fresh_state(config)
    state = transfer.init_from(fresh, config, str(tmp_path))
    got, want, new = (
        _leaves(state["g_params"]),
        _leaves(saved["g_params"]),
        _leaves(fresh["g_params"]),
    )
    table = open(tmp_path / "init_from.txt").read()
    adapted = 0
    for path, value in got.items():
        if value.shape == want[path].shape:
            np.testing.assert_array_equal(value, want[path], err_msg=path)
        elif conditioning == "batchnorm":  # [10, C] per class from the source's [C]
            assert value.shape == (10,) + want[path].shape and path.endswith(("scale", "offset"))
            for row in value:
                np.testing.assert_array_equal(row, want[path], err_msg=path)
            adapted += 1
        else:  # the input kernel [z_dim + 10, C]: z's rows loaded, the one-hot rows as initialised
            z_dim = want[path].shape[0]
            np.testing.assert_array_equal(value[:z_dim], want[path])
            np.testing.assert_array_equal(value[z_dim:], new[path][z_dim:])
            adapted += 1
    status = "tiled" if conditioning == "batchnorm" else "extended"
    assert adapted and f", {2 * adapted} {status}" in table.splitlines()[0]  # G and its EMA
    head = [r for r in table.splitlines() if r.startswith("d_params/") and " fresh " in r]
    assert head and all("AC" in r or "Class" in r or "class" in r for r in head), head


def test_transfer_presets():
    from jaxgan.configs import transfer as transfer_config

    default, paper = transfer_config.get_config(""), transfer_config.get_config("paper")
    assert default.data.dataset == "fashion_mnist:n=100" and default.init_from == ""
    assert (paper.data.resolution, paper.optim.g_lr, paper.optim.d_lr) == (64, 1e-5, 1e-5)
    assert (paper.batch_size, paper.n_critic, paper.num_steps, paper.optim.decay) == (
        16,
        5,
        25_000,
        "constant",
    )
    assert (paper.ac_weight_d, paper.ac_weight_g, paper.penalties.wgan_gp.weight) == (
        1.0,
        1.0,
        10.0,
    )
    with pytest.raises(ValueError, match="Unknown transfer preset"):
        transfer_config.get_config("papr")


@pytest.mark.slow
def test_the_default_target_without_its_data_names_the_apt_get_command(tmp_path):
    import subprocess
    import sys

    empty = tmp_path / "no_idx_files"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "jaxgan.main", "--config=transfer",
         f"--workdir={tmp_path / 'w'}", f"--config.data.data_dir={empty}"],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)),
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "sudo apt-get install dataset-fashion-mnist" in result.stderr


def test_a_smoke_transfer_run_is_trained_and_evaluated(source, tmp_path):
    from jaxgan.configs import transfer as transfer_config
    from jaxgan.eval import runner
    from jaxgan.eval.options import Options

    workdir, _ = source
    config = transfer_config.get_config("smoke")
    config.update_from_flattened_dict({"tensorboard": False, "num_devices": 1, "num_steps": 2})
    config.init_from = workdir
    target = str(tmp_path / "target")
    loop.train_and_evaluate(config, target)
    assert open(os.path.join(target, "init_from.txt")).read().count(" loaded ") > 10
    options = Options(num_samples=20, cache_dir=str(tmp_path / "cache"), progress=False)
    rows = runner.evaluate_workdir(target, ["kid"], options, steps="latest")
    (row,) = [r for r in rows if r["kind"] == "checkpoint"]
    assert row["real"] == "mnist5k:train:n=2" and row["n_real"] == 20 and np.isfinite(row["value"])


@pytest.mark.slow
def test_the_target_size_table_trains_and_scores_every_run(source, tmp_path):
    """`python -m jaxgan.experiments transfer --table=size` at smoke scale: scratch and transfer at
    2 images per class, each checkpoint scored against the test split; a second call trains and
    scores nothing new."""
    from jaxgan.eval.options import Options
    from jaxgan.experiments import transfer

    workdir, _ = source
    options = Options(num_samples=20, baseline=False, cache_dir=str(tmp_path / "c"), progress=False)
    args = dict(source=workdir, target="mnist5k", metrics=("kid",), preset="smoke")
    args["overrides"] = {"tensorboard": False, "num_devices": 1}
    table = transfer.run_table(str(tmp_path), "size", [2], 2, options, **args)
    rows = table["rows"]
    assert [(r["per_class"], r["networks"], r["n_images"]) for r in rows] == [
        (2, "", 20), (2, "g,d", 20)
    ]  # fmt: skip
    for row in rows:
        (run,) = row["runs"]
        logged = run_files.read_jsonl(os.path.join(run["workdir"], "eval", "metrics.jsonl"))
        logged = [r for r in logged if r["kind"] == "checkpoint"]
        assert {r["real"] for r in logged} == {"mnist5k:test"}  # the target's test split
        expected = [[r["step"], r["value"]] for r in logged]
        assert run["curves"]["kid"] == expected and [s for s, _ in expected] == [1, 2]
        assert row["final"]["kid"] == {"mean": expected[-1][1], "sd": None, "n": 1}
        transferred = os.path.exists(os.path.join(run["workdir"], "init_from.txt"))
        assert transferred == bool(row["networks"])
    md = open(tmp_path / "eval" / "transfer_size_n2_seeds0.md").read()
    final = [r["final"]["kid"]["mean"] for r in rows]
    assert f"| from scratch | 20 | {final[0]:.4g} |" in md
    assert f"| transfer (G and D) | 20 | {final[1]:.4g} |" in md
    assert os.path.getsize(tmp_path / "eval" / "transfer_size_n2_seeds0.png") > 5000
    again = transfer.run_table(str(tmp_path), "size", [2], 2, options, **args)
    assert [r["runs"] for r in again["rows"]] == [r["runs"] for r in rows]


def test_every_table_names_its_runs_and_their_settings(tmp_path):
    """The rows of each table: workdir names, which networks load, the options each row sets, and
    the conditional rows are jaxgan/configs/acgan.py's AC-GAN (`transfer:conditional`)."""
    from jaxgan.configs import acgan
    from jaxgan.configs import transfer as presets
    from jaxgan.experiments import transfer as tx

    def rows(table, **kw):
        kw = {"per_class": [10, 100], "source": "S", "sources": {"mnist5k": "S"}, **kw}
        return [(r.name, r.networks, r.source, dict(r.overrides))
                for r in tx.rows_of(table, freeze_blocks=2, **kw)]  # fmt: skip

    assert rows("size") == [
        ("n10_scratch", "", "", {}), ("n10_transfer", "g,d", "S", {}),
        ("n100_scratch", "", "", {}), ("n100_transfer", "g,d", "S", {}),
    ]  # fmt: skip
    assert rows("network") == [
        ("n10_scratch", "", "", {}), ("n10_g", "g", "S", {}), ("n10_d", "d", "S", {}),
        ("n10_transfer", "g,d", "S", {}),
    ]  # fmt: skip
    freeze, augment = {"d_freeze_blocks": 2}, {"diffaugment": "color,translation,cutout"}
    assert rows("fewshot", per_class=[0]) == [
        ("all_scratch", "", "", {}), ("all_scratch_diffaug", "", "", augment),
        ("all_transfer", "g,d", "S", {}), ("all_transfer_freezed2", "g,d", "S", freeze),
        ("all_transfer_diffaug", "g,d", "S", augment),
        ("all_transfer_freezed2_diffaug", "g,d", "S", {**freeze, **augment}),
    ]  # fmt: skip
    sources = {"mnist5k": "S", "fashion_mnist:class=0": "T"}
    assert rows("source", sources=sources) == [
        ("n10_scratch", "", "", {}), ("n10_transfer", "g,d", "S", {}),
        ("n10_from_fashion_mnist_class0", "g,d", "T", {}),
    ]  # fmt: skip
    (scratch, transfer), target = tx.rows_of("conditional", [10], "S", {}, 1), "fashion_mnist"
    for row in (scratch, transfer):
        config = tx.target_config(row, "", target, 1000, 0, {})
        wanted = presets.get_config("conditional")
        wanted.data.dataset, wanted.seed = "fashion_mnist:n=10", 0
        wanted.init_from, wanted.init_from_networks = row.source, "g,d"
        assert config.to_dict() == wanted.to_dict()
        assert config.model.to_dict() == acgan.get_config("").model.to_dict()
    assert (scratch.source, transfer.source) == ("", "S")
    with pytest.raises(ValueError, match="Unknown transfer table 'sizes'"):
        tx.rows_of("sizes", [10], "S", {}, 1)


@pytest.mark.slow
def test_the_source_table_trains_each_source_and_measures_it_against_the_target(source, tmp_path):
    """`--table=source`: a source GAN per dataset (here one mnist5k class), a target run from each,
    and the selection measure: a one-class source's real images are far further from the target
    (all ten digits) than the whole train split is."""
    from jaxgan.eval import runner, sampling
    from jaxgan.eval.options import Options
    from jaxgan.experiments import transfer

    workdir, _ = source
    options = Options(
        num_samples=200, baseline=False, cache_dir=str(tmp_path / "c"), progress=False
    )
    overrides = {"tensorboard": False, "num_devices": 1}
    table = transfer.run_table(
        str(tmp_path), "source", [2], 2, options, source=workdir, target="mnist5k",
        metrics=("kid",), sources=["mnist5k:class=1"], preset="smoke", source_preset="smoke",
        overrides=overrides,
    )  # fmt: skip
    scratch, transferred = table["rows"]
    assert scratch["networks"] == "" and "selection" not in scratch
    trained = os.path.join(str(tmp_path), "source_mnist5k_class1")
    assert transferred["source"] == trained and transferred["source_dataset"] == "mnist5k:class=1"
    assert sampling.load_config(trained).data.dataset == "mnist5k:class=1"
    assert open(os.path.join(transferred["runs"][0]["workdir"], "init_from.txt")).read()
    selection = transferred["selection"]
    whole = runner.evaluate_sets("mnist5k:test", "mnist5k:train", ["fid"], options)[0]["value"]
    assert selection["source_real_fid"] > 3 * whole > 0
    assert np.isfinite(selection["source_gan_fid"]) and selection["source_step"] == 3
    md = open(tmp_path / "eval" / "transfer_source_n2_seeds0.md").read()
    assert "| from mnist5k:class=1 | 20 |" in md and f"{selection['source_real_fid']:.4g} |" in md
