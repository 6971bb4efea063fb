"""A :smoke progressive run growing 4 -> 8 -> 16, its pictures, and the golden one-step numbers."""

import json
import os

import jax
import numpy as np
import pytest
from PIL import Image

from jaxgan import data, interpolate
from jaxgan.configs import pggan
from jaxgan.core import checkpoint, parallel
from jaxgan.methods import progressive
from jaxgan.training import loop

# The smoke schedule (jaxgan/configs/pggan.py `_smoke`): 8 images a step, stabilise 16 images' worth,
# fade over 24. Step k runs at kimg = 0.008·(k - 1).
EXPECTED_LODS = [2.0, 2.0, 2.0, 5 / 3, 4 / 3, 1.0, 1.0, 1.0, 2 / 3, 1 / 3, 0.0]
EXPECTED_RESOLUTIONS = [4, 4, 4, 8, 8, 8, 8, 8, 16, 16, 16]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pggan_smoke")
    state = loop.train_and_evaluate(pggan.get_config("smoke"), str(workdir))
    rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    return workdir, state, rows


@pytest.mark.slow
def test_smoke_run_grows_4_8_16(smoke_run):
    workdir, state, rows = smoke_run
    assert [r["step"] for r in rows] == list(range(1, 12))
    # lod and kimg are Python float64 arithmetic on image counts; alpha is logged as float32.
    np.testing.assert_allclose([r["lod"] for r in rows], EXPECTED_LODS, atol=1e-9)
    assert [r["resolution"] for r in rows] == EXPECTED_RESOLUTIONS
    np.testing.assert_allclose(
        [r["alpha"] for r in rows], [1 - (x - np.floor(x)) for x in EXPECTED_LODS], atol=1e-6
    )
    np.testing.assert_allclose([r["kimg"] for r in rows], 0.008 * np.arange(1, 12), atol=1e-9)
    assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in rows)
    # Adam was reset when floor or ceil of lod last changed (before step 11): one update since.
    assert int(state["g_opt"].count) == int(state["d_opt"].count) == 1
    assert int(state["step"]) == 11
    # A grid per resolution at its own size (4 x 4 images, 2 px padding), samples at 16x16.
    for res in (4, 8, 16):
        grid = Image.open(workdir / "resolutions" / f"{res:04d}x{res:04d}.png")
        assert grid.size == (4 * (res + 2) + 2,) * 2
    samples = sorted(os.listdir(workdir / "samples"))
    assert samples == [f"{s:08d}.png" for s in range(1, 12)]
    assert Image.open(workdir / "samples" / samples[0]).size == (74, 74)
    ckpt = checkpoint.Checkpointer(str(workdir), read_only=True)
    assert ckpt.all_steps() == [10, 11]
    meta = ckpt.restore_meta(11)
    assert meta["lod"] == 0.0 and meta["cur_nimg"] == meta["data_cursor"] == 88
    assert meta["config"]["method"] == "progressive" and meta["elapsed_s"] > 0
    assert ckpt.restore_meta(10)["lod"] == pytest.approx(1 / 3)


def test_ema_params_are_the_full_network(smoke_run):
    _, state, _ = smoke_run
    names = set(state["ema_params"])
    assert {"4x4", "8x8", "16x16", "ToRGB_4x4", "ToRGB_8x8", "ToRGB_16x16"} <= names
    assert jax.tree.structure(state["ema_params"]) == jax.tree.structure(state["g_params"])


@pytest.mark.slow
def test_interpolation_gif(smoke_run, tmp_path):
    workdir, _, _ = smoke_run
    path = interpolate.make_gif(
        str(workdir), out=str(tmp_path / "walk.gif"), grid=2, seconds=2.0, fps=10, zoom=3
    )
    gif = Image.open(path)
    assert gif.n_frames == 20
    assert gif.size == (3 * (2 * (16 + 2) + 2),) * 2
    assert gif.info["duration"] == 100 and gif.info["loop"] == 0
    frames = []
    for i in range(gif.n_frames):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("L"), np.float32))
    assert np.abs(frames[0] - frames[10]).mean() > 0.5  # the latents do move


# Golden numbers: one seeded step of the smoke config at the 8x8 stage mid-fade (alpha 0.5), from
# the initial state, on the 8-device test mesh. They guard refactors of the models, the fade, the
# losses and penalties. If a change is *meant* to alter them, rerun with GOLDEN_PRINT=1 and paste.
GOLDEN = {
    "d_loss": 7.0523362159729,  # the penalty at the final resolution (full_resolution_penalty)
    "g_loss": 0.444601446390152,
    "d_grad_norm": 2.229217767715454,
    "g_grad_norm": 0.7915366888046265,
}


def test_golden_one_step():
    config = pggan.get_config("smoke")
    mesh = parallel.make_mesh()
    generator, critic = progressive.build_models(config, 1, 10, mesh)
    tx = progressive.make_optimizer(config)
    state = progressive.create_state(config, generator, critic, tx, (16, 16, 1), mesh)
    stage = progressive.Stage(3, True)
    step = progressive.make_train_step(config, generator, critic, tx, 10, mesh, stage)
    source = data.open_source("mnist5k")
    batch = next(data.Batches(source, 8, 16, 1, seed=0))
    inputs = {"alpha": np.float32(0.5), "g_lr": np.float32(1e-3), "d_lr": np.float32(1e-3)}
    _, metrics = step(state, data.to_global(batch, parallel.sharded_on(mesh, 1)), inputs)
    got = {k: float(metrics[k]) for k in GOLDEN}
    if os.environ.get("GOLDEN_PRINT"):
        print(got)
    for key, value in GOLDEN.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-4, err_msg=key)
    # The terms add up to the loss: WGAN + 10·GP + 0.001·drift (summed in float32 in the step, in
    # float64 here: a few float32 ulps of the largest term, |10·GP| <~ 10, against d_loss ~ 4.5).
    np.testing.assert_allclose(
        float(metrics["d_adversarial"])
        + 10 * float(metrics["d_wgan_gp"])
        + 0.001 * float(metrics["d_drift"]),
        got["d_loss"],
        rtol=1e-5,
    )
