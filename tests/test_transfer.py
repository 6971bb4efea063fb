"""`init_from`: a fresh run starts from a pretrained one, merged by parameter path."""

import os

import jax
import numpy as np
import pytest

from jaxgan import checkpoint, errors, loop, parallel, train, transfer


def _fresh_state(config):
    return train.Trainer(config, "", parallel.make_mesh(1)).init_state()


def _leaves(tree):
    return {transfer._path(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)}


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
