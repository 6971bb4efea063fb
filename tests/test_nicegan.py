"""NICE-GAN's decoupled step (jaxgan/methods/nicegan.py) against a PyTorch build of `NICE.py::train`
(tests/fixtures/nicegan/one_step.npz, made by scripts/make_nicegan_fixture.py), and its run."""

import os
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.methods import nicegan
from jaxgan.models import nicegan as networks
from jaxgan.training import losses

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "nicegan" / "one_step.npz"
SPECTRAL = nicegan.SPECTRAL


def _smoke_config(**overrides):
    from jaxgan.configs import nicegan as nicegan_config

    config = nicegan_config.get_config("smoke")
    config.update_from_flattened_dict(overrides)
    return config


def _tree_equal(x, y) -> bool:
    return all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(y), strict=True)
    )


@pytest.mark.slow
def test_three_iterations_equal_the_reference_train_loop():
    """D step then G step, three times, against the PyTorch fixture in float64: every loss term of
    every iteration, then every parameter and spectral-norm u of the four networks. Adam with
    coupled weight decay and the reference's lr decay (iteration 4: the third update at lr/2) on
    both sides. Along the way: the D step leaves G's parameters and optimizer bit-equal, the G
    step D's, and each step advances every u (the reference's training-mode forwards)."""
    with jax.enable_x64(True):
        _three_iterations()


def _three_iterations():
    fixture = np.load(FIXTURE)

    def state_dicts(stage):
        def one(name):
            prefix = f"{stage}/{name}/"
            return {k[len(prefix) :]: fixture[k] for k in fixture.files if k.startswith(prefix)}

        d = {n: networks.discriminator_variables_from_torch(one(n)) for n in ("disA", "disB")}
        g = {n: networks.generator_params_from_torch(one(n)) for n in ("gen2A", "gen2B")}
        to = lambda tree: jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), tree)  # noqa: E731
        return (
            to(g),
            to({n: v["params"] for n, v in d.items()}),
            to({n: v[SPECTRAL] for n, v in d.items()}),
        )

    config = _smoke_config(
        **{"optim.lr": float(fixture["lr"]), "num_steps": int(fixture["iteration"])},
        decay_steps=int(fixture["iteration"]) // 2,
    )
    assert config.optim.weight_decay == float(fixture["weight_decay"])
    generator, discriminator = nicegan.build_models(config)
    assert (config.model.width, config.model.num_blocks, config.model.num_layers) == (2, 1, 6)
    g_tx, d_tx = nicegan.make_optimizer(config), nicegan.make_optimizer(config)
    d_step, g_step = nicegan.make_steps(
        nicegan.make_networks(generator, discriminator), g_tx, d_tx,
        losses.mse_lsgan(), nicegan.Weights(),
    )  # fmt: skip
    d_step, g_step = jax.jit(d_step), jax.jit(g_step)
    g, d, u = state_dicts("before")
    state = {"g_params": g, "d_params": d, SPECTRAL: u, "g_opt": g_tx.init(g),
             "d_opt": d_tx.init(d)}  # fmt: skip
    metrics = []
    for i in range(fixture["pixels/A"].shape[0]):
        real_a, real_b = (jnp.asarray(fixture[f"pixels/{x}"][i]) / 127.5 - 1 for x in "AB")
        after_d, d_metrics = d_step(state, real_a, real_b)
        assert _tree_equal(after_d["g_params"], state["g_params"])
        assert _tree_equal(after_d["g_opt"], state["g_opt"])
        assert not _tree_equal(after_d["d_params"], state["d_params"])
        after_g, g_metrics = g_step(after_d, real_a, real_b)
        assert _tree_equal(after_g["d_params"], after_d["d_params"])
        assert _tree_equal(after_g["d_opt"], after_d["d_opt"])
        assert not _tree_equal(after_g["g_params"], after_d["g_params"])
        for before, after in ((state, after_d), (after_d, after_g)):  # every u moves each step
            for x, y in zip(jax.tree.leaves(before[SPECTRAL]), jax.tree.leaves(after[SPECTRAL])):
                assert x.size == 1 or not np.array_equal(x, y)  # (the CAM fc's u is ±1)
        metrics.append({**d_metrics, **g_metrics})
        state = after_g
    for name in ("d_a", "d_b", "g_adv_a", "g_adv_b", "cycle_a", "cycle_b", "recon_a", "recon_b"):
        got = [float(m[name]) for m in metrics]
        np.testing.assert_allclose(got, fixture[f"loss/{name}"], rtol=1e-10, err_msg=name)
    want = state_dicts("after")
    got = (state["g_params"], state["d_params"], state[SPECTRAL])
    for (path, x), y in zip(
        jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want), strict=True
    ):
        # Three Adam updates of ~1e-3 each: a wrong term, order or lr shows far above this.
        np.testing.assert_allclose(np.asarray(x), y, rtol=1e-8, atol=1e-11, err_msg=str(path))


def test_learning_rate_is_the_references_decrement_before_each_update():
    # NICE.py l.188-190 with iteration 8, lr0 1: steps 1-4 at 1, then 0.75, 0.5, 0.25, 0.
    config = _smoke_config(**{"optim.lr": 1.0, "num_steps": 8}, decay_steps=4)
    tx = nicegan.make_optimizer(config)
    params = {"w": jnp.zeros(())}
    state, lrs = tx.init(params), []
    for _ in range(8):  # a gradient of 1 and no weight on θ: Adam's first moments make -lr·1
        updates, state = tx.update({"w": jnp.ones(())}, state, params)
        lrs.append(-float(updates["w"]))
    # (float32 Adam: m̂/√v̂ is 1 to ~1e-5)
    np.testing.assert_allclose(lrs, [1, 1, 1, 1, 0.75, 0.5, 0.25, 0], rtol=1e-4, atol=1e-6)


def test_resolution_too_small_for_the_global_head_is_a_config_error():
    from jaxgan.core import errors

    with pytest.raises(errors.ConfigError, match="at least 96"):
        nicegan.check_resolution(_smoke_config(**{"data.resolution": 64, "model.num_layers": 7}))
    nicegan.check_resolution(_smoke_config(**{"data.resolution": 48, "model.num_layers": 6}))


def _translate_by_hand(generator, discriminator, state, encoder, decoder):
    """images -> `decoder`(`encoder`.encode(images)) from `state`'s parameters and spectral-norm
    u, as one compiled call (applied op by op, each of its ~100 operations compiles apart)."""
    encoder_variables = {"params": state["d_params"][encoder], SPECTRAL: state[SPECTRAL][encoder]}
    decoder_variables = {"params": state["g_params"][decoder]}

    @jax.jit
    def translate(encoder_variables, decoder_variables, images):
        code = discriminator.apply(encoder_variables, images, method=networks.Discriminator.encode)
        return generator.apply(decoder_variables, code)

    return lambda images: translate(encoder_variables, decoder_variables, images)


@pytest.mark.slow
def test_translate_is_the_source_encoder_then_the_target_decoder():
    """`translate(params, x, 'AtoB')` is gen2B(disA.encode(x)) with disA's u read, not advanced."""
    from jaxgan.core import parallel

    config = _smoke_config()
    model = nicegan.build(config, parallel.make_mesh(1))
    state = model.init_state()
    params = {k: state[k] for k in nicegan.EVAL_PARAMS}
    images = jax.random.uniform(jax.random.key(1), (2, 48, 48, 3), minval=-1, maxval=1)
    generator, discriminator = nicegan.build_models(config)
    for direction, route in nicegan.ROUTE.items():
        want = _translate_by_hand(generator, discriminator, state, *route)(images)
        got = model.translate(params, images, direction)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="AtoB"):
        model.translate(params, images, "A2B")


@pytest.fixture(scope="module")
def nice_run(tmp_path_factory, translation_smoke_config):
    """`nicegan:smoke` (48x48, width 2) for 3 steps on a `write_two_domain_folder`
    pair; (workdir, pair root, config, final state). Its step compiles once for the module: the
    resumed runs below reuse it through the session's compilation cache (a constant lr keeps
    num_steps out of the program)."""
    from conftest import write_two_domain_folder

    from jaxgan.training import loop

    root = write_two_domain_folder(tmp_path_factory.mktemp("pair"))
    workdir = str(tmp_path_factory.mktemp("nice_run"))
    config = translation_smoke_config(root, 3, "nicegan")
    return workdir, root, config, loop.train_and_evaluate(config, workdir)


@pytest.mark.slow
def test_a_smoke_run_trains_draws_its_grid_and_resumes_exactly(tmp_path, nice_run):
    """The run's checkpoint 2 resumed to step 3 ends bit-equal to its 3 uninterrupted steps:
    parameters, optimizers and every spectral-norm u (state the reference keeps in its modules'
    buffers)."""
    from PIL import Image

    from jaxgan.training import loop

    workdir, _, config, whole = nice_run
    again = str(tmp_path / "r")
    shutil.copytree(workdir, again)
    assert sorted(os.listdir(os.path.join(again, "checkpoints"))) == ["2", "3"]
    shutil.rmtree(os.path.join(again, "checkpoints", "3"))  # as if killed after step 2's save
    resumed = loop.train_and_evaluate(config, again)
    assert int(whole["step"]) == int(resumed["step"]) == 3
    assert sorted(whole) == sorted(resumed) and SPECTRAL in whole
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(whole), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(path))
    grid = np.asarray(Image.open(sorted(pathlib.Path(workdir, "samples").iterdir())[-1]))
    assert grid.shape == (6 * 50 + 2, 2 * 50 + 2, 3)  # A, A->B, A->B->A, B, ...; 2 test images


@pytest.mark.slow
def test_the_evaluator_and_translate_use_encoder_and_decoder(nice_run, tmp_path):
    """The evaluator's paired L1 and `jaxgan.translate`'s files are gen2B(disA.encode(a)) and
    gen2A(disB.encode(b)) of the final state, applied here by hand (the checkpoint entries
    g_params, d_params and spectral_norm restored together)."""
    from PIL import Image

    from jaxgan import translate
    from jaxgan.core import run_files
    from jaxgan.eval import runner
    from jaxgan.eval.options import Options

    workdir, root, config, state = nice_run
    generator, discriminator = nicegan.build_models(config)
    size = config.data.resolution

    def by_hand(domain):
        files = sorted((root / f"test{domain}").iterdir())
        images = np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size),
                                                                          Image.BICUBIC))
                           for f in files])  # fmt: skip
        route = nicegan.ROUTE["AtoB" if domain == "A" else "BtoA"]
        fake = _translate_by_hand(generator, discriminator, state, *route)(images / 127.5 - 1.0)
        return images, run_files.to_uint8(np.asarray(fake))

    (a, a2b), (b, b2a) = by_hand("A"), by_hand("B")
    options = Options(cache_dir=str(tmp_path / "cache"), progress=False)
    rows = runner.evaluate_workdir(workdir, ["paired_l1"], options)
    by = {(r["kind"], r["step"], r["direction"]): r["value"] for r in rows}
    level = 1 / 255  # eight devices there, one here: a pixel may round to the next level
    assert by[("checkpoint", 3, "AtoB")] == pytest.approx(
        np.abs(a2b / 255 - b / 255).mean(), abs=level
    )
    assert by[("checkpoint", 3, "BtoA")] == pytest.approx(
        np.abs(b2a / 255 - a / 255).mean(), abs=level
    )
    written = translate.translate_folder(workdir, "AtoB", str(root / "testA"), str(tmp_path / "out"),
                                         progress=False)  # fmt: skip
    # testA's images are 20x20: translated at that size (a multiple of 4), not at 48.
    files = sorted((root / "testA").iterdir())
    images = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    code = discriminator.apply(
        {"params": state["d_params"]["disA"], SPECTRAL: state[SPECTRAL]["disA"]},
        images / 127.5 - 1.0, method=networks.Discriminator.encode,
    )  # fmt: skip
    want = run_files.to_uint8(
        np.asarray(generator.apply({"params": state["g_params"]["gen2B"]}, code))
    )
    got = np.stack([np.asarray(Image.open(p)) for p in written])
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
