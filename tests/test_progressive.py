"""The progressive schedule against the reference formula, real-image fading, samplers, latents."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from jaxgan import data, interpolate
from jaxgan.configs import pggan
from jaxgan.core import errors, parallel
from jaxgan.eval import sampling
from jaxgan.methods import progressive
from jaxgan.models import layers, progan
from jaxgan.training import losses


def _reference_lod(kimg, final_log2, initial_resolution, training_kimg, transition_kimg):
    """Theano train_gan's form of the formula (np.fmod), independent of `lod_at`'s."""
    lod = final_log2 - int(np.round(np.log2(initial_resolution)))
    tlod = kimg / (training_kimg + transition_kimg)
    lod -= np.floor(tlod)
    lod -= max(
        1.0 + (np.fmod(tlod, 1.0) - 1.0) * (training_kimg + transition_kimg) / transition_kimg,
        0.0,
    )
    return max(lod, 0.0)


# (kimg, lod, resolution, minibatch) of the default preset: 15 + 15 kimg phases, 4 -> 32,
# minibatch 64 at 4 and 8, 32 at 16 and 32.
DEFAULT_POINTS = [
    (0.0, 3.0, 4, 64),
    (14.9, 3.0, 4, 64),
    (15.0, 3.0, 4, 64),
    (22.5, 2.5, 8, 64),
    (30.0, 2.0, 8, 64),
    (52.5, 1.5, 16, 32),
    (86.25, 0.25, 32, 32),
    (90.0, 0.0, 32, 32),
    (500.0, 0.0, 32, 32),
]


@pytest.mark.parametrize("kimg, lod, resolution, minibatch", DEFAULT_POINTS)
def test_schedule_of_the_default_preset(kimg, lod, resolution, minibatch):
    config = pggan.get_config()
    s = progressive.schedule_at(config, int(round(kimg * 1000)))
    assert s.lod == pytest.approx(lod, abs=1e-9)
    assert s.lod == pytest.approx(_reference_lod(kimg, 5, 4, 15.0, 15.0), abs=1e-9)
    assert (s.stage.resolution, s.minibatch) == (resolution, minibatch)
    assert s.alpha == pytest.approx(1.0 - (lod - math.floor(lod)))
    assert s.stage.fade_in == (resolution > 4)
    assert s.g_lr == s.d_lr == 1e-3


@pytest.mark.parametrize(
    "kimg, lod, resolution, minibatch",
    [(0, 8.0, 4, 16), (1200, 7.5, 8, 16), (9600, 2.0, 256, 14), (12000, 1.0, 512, 6),
     (13200, 0.0, 1024, 3)],
)  # fmt: skip
def test_schedule_of_the_celebahq_preset(kimg, lod, resolution, minibatch):
    """TF preset v1: 800 + 800 kimg phases, minibatch 16 with {256: 14, 512: 6, 1024: 3}."""
    s = progressive.schedule_at(pggan.get_config("celebahq"), kimg * 1000)
    assert s.lod == pytest.approx(lod) == _reference_lod(kimg, 10, 4, 800.0, 800.0)
    assert (s.stage.resolution, s.minibatch) == (resolution, minibatch)


def test_learning_rate_table_and_rampup():
    config = pggan.get_config("lsun256")  # Theano: rampup_kimg 40
    assert progressive.schedule_at(config, 20_000).g_lr == pytest.approx(1e-3 * math.exp(-1.25))
    assert progressive.schedule_at(config, 40_000).d_lr == pytest.approx(1e-3)
    config = pggan.get_config("celebahq")
    config.schedule.lr_by_resolution = "1024:0.0015"  # TF preset v2-1gpu
    assert progressive.schedule_at(config, 18_000_000).g_lr == pytest.approx(1.5e-3)
    assert progressive.schedule_at(config, 0).g_lr == pytest.approx(1e-3)


def test_minibatch_is_rounded_to_the_device_count():
    """TF: minibatch -= minibatch % num_gpus; a minibatch smaller than the devices is an error."""
    config = pggan.get_config()
    config.schedule.batch_by_resolution = "4:30"
    assert progressive.schedule_at(config, 0, num_devices=8).minibatch == 24
    with pytest.raises(ValueError, match="1024x1024 is smaller than the 8 devices"):
        progressive.schedule_at(pggan.get_config("celebahq"), 14_000_000, num_devices=8)


def test_no_growing_trains_the_final_resolution_from_the_start():
    config = pggan.get_config()
    config.progressive = False
    for kimg in (0, 22.5, 90):
        s = progressive.schedule_at(config, int(kimg * 1000))
        assert (s.lod, s.stage) == (0.0, progressive.Stage(5, False))


def test_stages_and_optimizer_reset_points():
    """One compiled stage per resolution; Adam resets where floor or ceil of lod changes."""
    assert progressive.stage_of(3.0, 5, 2) == progressive.Stage(2, False)
    assert progressive.stage_of(2.5, 5, 2) == progressive.stage_of(2.0, 5, 2)
    assert progressive.stage_of(2.0, 5, 2) == progressive.Stage(3, True)
    lods = [3.0, 3.0, 2.75, 2.5, 2.0, 2.0, 1.5]
    bounds = [progressive.lod_bounds(x) for x in lods]
    resets = [i for i in range(1, len(lods)) if bounds[i] != bounds[i - 1]]
    assert resets == [2, 4, 6]  # start of the fade, its end, the next fade


def test_reals_are_box_filtered_and_faded_like_process_reals():
    """TF process_reals: [-1, 1], box-filter to the stage, lerp(x, up(down(x)), lod - floor(lod))."""
    config = pggan.get_config()
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 1), dtype=np.uint8)
    x = images.astype(np.float64) / 127.5 - 1.0

    def box(v, f):
        n, h, w, c = v.shape
        return v.reshape(n, h // f, f, w // f, f, c).mean(axis=(2, 4))

    key = jax.random.key(0)
    for stage, alpha, expected in [
        (progressive.Stage(5, False), 1.0, x),
        (progressive.Stage(3, False), 1.0, box(x, 4)),
        (progressive.Stage(3, True), 1.0, box(x, 4)),
        (progressive.Stage(3, True), 0.0, box(x, 8).repeat(2, 1).repeat(2, 2)),
        (
            progressive.Stage(4, True),
            0.25,
            0.25 * box(x, 2) + 0.75 * box(x, 4).repeat(2, 1).repeat(2, 2),
        ),
    ]:
        # In float64 (to_float follows JAX's default float): box means of up to 64 values in
        # [-1, 1] are within 64·2^-53 ~ 7e-15 on any CPU (in float32, up to 64·2^-24 = 4e-6).
        with jax.enable_x64(True):
            got = progressive.process_reals(jnp.asarray(images), key, config, stage, alpha)
        assert got.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(got), expected, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_eval_sampler_returns_full_resolution_images_at_the_checkpoint_lod():
    config = pggan.get_config("smoke")  # 16x16, one channel
    generator, _ = progressive.build_models(config, 1, 0)
    z = jax.random.normal(jax.random.key(0), (6, config.model.z_dim))
    labels = jnp.zeros((6,), jnp.int32)
    params = jax.jit(generator.init)(jax.random.key(1, impl="rbg"), z)["params"]
    # Large biases push some pixels outside [-1, 1], which the sampler must clip.
    params["ToRGB_8x8"]["bias"] = jnp.full((1,), 0.8)
    for lod, res_log2, alpha in [(1.25, 3, 0.75), (0.0, 4, None), (2.0, 2, None)]:
        sample = progressive.make_eval_sampler(config, {"lod": lod}, 1, 0)
        out = jax.eval_shape(sample, params, z, labels)  # what the evaluator gets, uncompiled
        assert out.shape == (6, 16, 16, 1) and out.dtype == jnp.float32
        # Jitted vs eager, in float64: XLA fuses the jitted network differently, and in float32
        # how far the two round apart depends on the CPU; in float64 it is ~1e-15.
        with jax.enable_x64(True):
            params64 = jax.tree.map(lambda x: x.astype(jnp.float64), params)
            z64 = z.astype(jnp.float64)
            images = np.asarray(sample(params64, z64, labels))
            stage_out = generator.apply(
                {"params": params64}, z64, labels, res_log2=res_log2, alpha=alpha
            )
        factor = 16 // 2**res_log2
        expected = np.clip(np.asarray(stage_out).repeat(factor, 1).repeat(factor, 2), -1, 1)
        assert images.dtype == np.float64
        np.testing.assert_allclose(images, expected, rtol=0, atol=1e-12)
        assert images.min() >= -1.0 and images.max() <= 1.0
    assert np.abs(expected).max() == 1.0  # some pixels were clipped
    with pytest.raises(KeyError, match="no 'lod'"):
        progressive.make_eval_sampler(config, {"data_cursor": 0}, 1, 0)


def test_eval_samplers_compile_once_per_stage_not_per_checkpoint():
    """Checkpoints at lods 1.75 and 1.25 fade into 8x8 with different α: one compiled generator,
    α an argument; each gives make_eval_sampler's images (what one sampler per checkpoint did)."""
    config = pggan.get_config("smoke")
    generator, _ = progressive.build_models(config, 1, 0)
    z = jax.random.normal(jax.random.key(0), (4, config.model.z_dim))
    labels = jnp.zeros((4,), jnp.int32)
    params = jax.jit(generator.init)(jax.random.key(1, impl="rbg"), z)["params"]
    samplers = progressive.EvalSamplers(config, 1, 0)
    with jax.enable_x64(True):  # jitted programs of two structures: compare far above 1e-15
        params64 = jax.tree.map(lambda x: x.astype(jnp.float64), params)
        z64 = z.astype(jnp.float64)
        images = {
            lod: np.asarray(samplers({"lod": lod})(params64, z64, labels)) for lod in (1.75, 1.25)
        }
        alone = {
            lod: np.asarray(
                progressive.make_eval_sampler(config, {"lod": lod}, 1, 0)(params64, z64, labels)
            )
            for lod in (1.75, 1.25)
        }
    assert len(samplers._by_stage) == 1
    assert np.abs(images[1.75] - images[1.25]).max() > 1e-3  # α differs: so do the images
    for lod in images:
        np.testing.assert_allclose(images[lod], alone[lod], rtol=0, atol=1e-12)
    samplers({"lod": 0.0})
    assert len(samplers._by_stage) == 2  # 16x16, not fading: a second stage


def test_evaluator_and_gif_label_an_ac_gan_generator_as_training_builds_it():
    """PGGAN's label_size feeds G and D, so an AC head alone makes the generator conditional."""
    config = pggan.get_config("smoke")
    config.model.ac_head = True
    generator, critic = progressive.build_models(config, 1, 10)
    assert generator.num_classes == 10 and critic.num_classes == 10
    assert sampling.generator_is_conditional(config)
    config.model.ac_head = False
    assert progressive.build_models(config, 1, 10)[0].num_classes == 0
    assert not sampling.generator_is_conditional(config)


def test_latent_walk_is_a_blurred_loop_on_the_hypersphere():
    """TF generate_interpolation_video: randn, Gaussian blur over frames (wrap), then normalised."""
    z = interpolate.latent_walk(50, 3, 8, smoothing_frames=5.0, seed=1000)
    raw = np.random.RandomState(1000).randn(50, 3, 8).astype(np.float32)
    blurred = scipy.ndimage.gaussian_filter(raw, [5.0, 0, 0], mode="wrap")
    # numpy float32 norms of 8-vectors (blurred in float64 by scipy): ~10 roundings, ~6e-7.
    np.testing.assert_allclose(np.linalg.norm(z, axis=-1), math.sqrt(8), rtol=1e-5)
    directions = blurred / np.linalg.norm(blurred, axis=-1, keepdims=True)
    np.testing.assert_allclose(z / math.sqrt(8), directions, rtol=1e-5, atol=1e-6)
    step = np.linalg.norm(np.diff(z, axis=0, append=z[:1]), axis=-1)  # wraps: last -> first
    assert step.max() < 0.5 * np.linalg.norm(z[0] - z[25], axis=-1).mean()


def test_upsample_helpers_agree():
    x = jnp.arange(2 * 4 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 4, 1)
    np.testing.assert_array_equal(
        progressive.upsample_to(x, 16), np.asarray(x).repeat(4, 1).repeat(4, 2)
    )
    np.testing.assert_array_equal(progressive.upsample_to(x, 4), x)
    np.testing.assert_array_equal(layers.upsample_nearest(x, 4), progressive.upsample_to(x, 16))


@pytest.mark.slow
def test_lsgan_variant_loss_and_adaptive_noise():
    """Theano lsgan: D = E[D(real)²] + 0.1·E[(D(fake) - 1)²], G = E[D(fake)²]; D noise strength
    0.2·max(avg - 0.5, 0)², avg <- 0.9·avg + 0.1·clip(D loss, 0, 1) after every D step."""
    loss = losses.get("pggan_lsgan")
    real, fake = jnp.array([0.5, -0.5]), jnp.array([1.0, 0.0])
    assert float(loss.critic(real, fake)) == pytest.approx(0.25 + 0.1 * 0.5)
    assert float(loss.generator(fake)) == pytest.approx(0.5)

    config = pggan.get_config("lsgan")
    config.update_from_flattened_dict({"data.resolution": 16, "model.fmap_base": 32,
                                       "model.fmap_max": 16, "model.z_dim": 16})  # fmt: skip
    assert progressive.uses_noise(config) and not config.penalties
    mesh = parallel.make_mesh(1)
    generator, critic = progressive.build_models(config, 1, 10, mesh)
    tx = progressive.make_optimizer(config)
    state = progressive.create_state(config, generator, critic, tx, (16, 16, 1), mesh)
    state["d_noise_average"] = jax.device_put(np.float32(0.9), parallel.replicated(mesh))
    step = progressive.make_train_step(
        config, generator, critic, tx, 10, mesh, progressive.Stage(2, False)
    )
    images = np.random.default_rng(0).integers(0, 256, (1, 8, 16, 16, 1), dtype=np.uint8)
    batch = data.to_global(
        {"image": images, "label": np.zeros((1, 8), np.int32)}, parallel.sharded_on(mesh, 1)
    )
    inputs = {"alpha": np.float32(1), "g_lr": np.float32(1e-3), "d_lr": np.float32(1e-3)}
    new_state, metrics = step(state, batch, inputs)
    assert float(metrics["d_noise_strength"]) == pytest.approx(0.2 * 0.4**2)
    d_loss = float(metrics["d_loss"])
    assert d_loss == pytest.approx(float(metrics["d_adversarial"]))
    assert float(new_state["d_noise_average"]) == pytest.approx(0.81 + 0.1 * min(d_loss, 1.0))


# The paper's Table 1 rows (§6.1, App. A.2) and Theano config.py's `config_idx` blocks: (growing,
# n_critic, minibatch, wscale, pixelnorm, mbstd, minibatch discrimination kernels, BN/LN/tanh
# baseline, lr, fmap_base, total kimg). (e*) is config_idx 5: minibatch discrimination, no
# stddev; (h) is (g) with "a non-reduced network and longer training".
TABLE1 = {
    "a": (False, 5, 64, False, False, False, 0, True, 1e-4, 2048, 10000.0),
    "b": (True, 5, 64, False, False, False, 0, True, 1e-4, 2048, 10000.0),
    "c": (True, 5, 16, False, False, False, 0, True, 1e-4, 2048, 10000.0),
    "d": (True, 1, 16, False, False, False, 0, False, 1e-4, 2048, 10000.0),
    "e_star": (True, 1, 16, False, False, False, 100, False, 1e-4, 2048, 10000.0),
    "e": (True, 1, 16, False, False, True, 0, False, 1e-4, 2048, 10000.0),
    "f": (True, 1, 16, True, False, True, 0, False, 1e-3, 2048, 10000.0),
    "g": (True, 1, 16, True, True, True, 0, False, 1e-3, 2048, 10000.0),
    "h": (True, 1, 16, True, True, True, 0, False, 1e-3, 8192, 20000.0),
}


def _table1_switches(c):
    m = c.model
    return (
        c.progressive,
        c.n_critic,
        c.batch_size,
        m.use_wscale,
        m.use_pixelnorm,
        m.mbstd_group_size > 1,
        m.mbdisc_kernels,
        m.use_batchnorm and m.use_layernorm and m.tanh_output and not m.use_leakyrelu,
        c.optim.g_lr,
        m.fmap_base,
        c.schedule.total_kimg,
    )


def test_table1_rows_are_the_papers_in_its_order():
    assert pggan.TABLE1_ROWS == tuple(TABLE1)
    with pytest.raises(ValueError, match="table1-e_star"):
        pggan.get_config("table1-i")


@pytest.mark.parametrize("row", list(TABLE1))
def test_table1_presets_switch_what_the_paper_and_theano_config_switch(row):
    c = pggan.get_config(f"table1-{row}")
    assert _table1_switches(c) == TABLE1[row]
    assert (c.data.resolution, c.data.dataset, c.schedule.training_kimg) == (
        128, "folder:data/celeba128", 800.0
    )  # fmt: skip
    assert c.ema_decay == {"a": 0.999**20, "b": 0.999**20, "c": 0.999**5}.get(row, 0.999)
    assert c.penalties.drift.weight == (0.0 if row in "abc" else 0.001)
    assert c.model.z_dim == (128 if row in "abc" else 512)


# The presets as they were labelled before they took the paper's letters: old label -> the Theano
# config_idx it built ("abcdefgh".index(label); f was refused).
OLD_TABLE1_CONFIG_IDX = {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4, "g": 6, "h": 7}


@pytest.mark.parametrize("old_label", sorted(OLD_TABLE1_CONFIG_IDX))
def test_a_run_of_an_old_table1_label_resumes_only_where_the_meaning_is_unchanged(old_label):
    """The preset name is not stored: a run's config.json holds its fields (without
    mbdisc_kernels, which came later). Resumed under the same label, the run continues where the
    row means what it meant; where it does not, the contract refuses it, naming the field."""
    from jaxgan.training import contract

    idx = OLD_TABLE1_CONFIG_IDX[old_label]
    same_idx = next(r for r, i in pggan.TABLE1_CONFIG_IDX.items() if i == idx and r != "h")
    stored = pggan.get_config(f"table1-{same_idx}").to_dict()
    del stored["model"]["mbdisc_kernels"]
    stored = contract.upgrade(stored)
    assert stored["model"]["mbdisc_kernels"] == 0
    new = pggan.get_config(f"table1-{old_label}").to_dict()
    refused = {"g": "model.use_pixelnorm", "h": "model.fmap_base"}.get(old_label)
    if refused is None:
        assert contract.check_contract(stored, new, contract.SAFE_TO_CHANGE, 5, "W") == {}
    else:
        with pytest.raises(errors.ConfigError, match=refused.replace(".", r"\.")):
            contract.check_contract(stored, new, contract.SAFE_TO_CHANGE, 5, "W")


def test_cifar10_preset_is_the_theano_run():
    c = pggan.get_config("cifar10")
    widths = [
        progan.num_features(s, c.model.fmap_base, c.model.fmap_decay, c.model.fmap_max)
        for s in range(6)
    ]
    assert widths == [128] * 6 and c.model.z_dim == 128
    assert (c.batch_size, c.schedule.batch_by_resolution) == (16, "")
    assert (c.schedule.training_kimg, c.schedule.transition_kimg) == (400.0, 400.0)
    assert (c.schedule.total_kimg, c.schedule.rampup_kimg) == (20000.0, 0.0)
    assert c.simultaneous_updates and not c.data.flip
    assert c.penalties.wgan_gp.to_dict() == {"weight": 10.0, "target": 750.0}
    assert c.penalties.drift.weight == 0.001 and c.model.mbstd_group_size == 16
    assert (c.optim.b1, c.optim.b2, c.optim.eps, c.optim.g_lr) == (0.0, 0.99, 1e-8, 1e-3)
    assert c.ema_decay == 0.999 and not c.ema_warmup


@pytest.mark.parametrize("name", ["wgan_gp", "r1"])
def test_the_penalty_is_taken_at_the_final_resolution_as_the_references_take_it(name):
    """`full_resolution_penalty` at a 4×4 stage of a 16×16 run equals the TF construction done
    literally (reals and fakes nearest-upscaled ×4, a critic that box-downscales its input first),
    and differs from the penalty taken at the stage resolution (what jaxgan did before)."""
    from jaxgan.training import penalties

    rng = np.random.default_rng(0)
    weights = rng.normal(size=(4 * 4 * 3, 5))

    def critic(images):  # any smooth function of the stage-resolution images
        return jnp.sum(jnp.tanh(images.reshape(images.shape[0], -1) @ weights), axis=-1)

    with jax.enable_x64(True):
        reals, fakes = (jnp.asarray(rng.uniform(-1, 1, (6, 4, 4, 3))) for _ in range(2))
        key = jax.random.key(3)
        penalty = penalties.get(name)  # wgan_gp with γ = 1
        ours = progressive.full_resolution_penalty(
            penalty, critic, reals, fakes, None, key, factor=4
        )
        literal = penalty(
            lambda x: critic(layers.downsample_mean(x, 4)),
            layers.upsample_nearest(reals, 4),
            layers.upsample_nearest(fakes, 4),
            None,
            key,
        )
        at_stage = penalty(critic, reals, fakes, None, key)
    np.testing.assert_allclose(float(ours), float(literal), rtol=1e-12)
    assert abs(float(ours) - float(at_stage)) > 0.1 * abs(float(at_stage))
