"""CycleGAN's step pieces (jaxgan/methods/cyclegan.py) against the reference's definitions."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.core import errors
from jaxgan.methods import cyclegan, translation
from jaxgan.models import cyclegan as cyclegan_networks


class ReferencePool:
    """util/image_pool.py::ImagePool.query, one image at a time, with its two random draws given."""

    def __init__(self, size):
        self.size, self.images = size, []

    def query(self, image, uniform, index):
        if len(self.images) < self.size:
            self.images.append(image)
            return image
        if uniform > 0.5:
            old = self.images[index].copy()
            self.images[index] = image
            return old
        return image


def _draws(key, n, size):
    """The draws pool_query makes for a batch of n images from `key`."""
    draws = []
    for k in jax.random.split(key, n):
        k_swap, k_index = jax.random.split(k)
        draws.append(
            (float(jax.random.uniform(k_swap)), int(jax.random.randint(k_index, (), 0, size)))
        )
    return draws


def test_pool_fills_then_swaps_half_the_time_as_the_reference():
    size, shape = 3, (2, 2, 1)
    pool = cyclegan.pool_init(size, shape)
    reference = ReferencePool(size)
    query = jax.jit(cyclegan.pool_query)
    rng = np.random.RandomState(0)
    returned_old = kept_new = 0
    for i in range(12):
        images = rng.randn(2, *shape).astype(np.float32)
        key = jax.random.fold_in(jax.random.key(7), i)
        pool, out = query(pool, jnp.asarray(images), key)
        expected = [reference.query(im, u, j) for im, (u, j) in zip(images, _draws(key, 2, size))]
        np.testing.assert_array_equal(np.asarray(out), np.stack(expected))
        returned_old += sum(not any(np.array_equal(e, im) for im in images) for e in expected)
        kept_new += sum(any(np.array_equal(e, im) for im in images) for e in expected)
    np.testing.assert_array_equal(np.asarray(pool["images"]), np.stack(reference.images))
    assert int(pool["count"]) == size
    assert returned_old > 0 and kept_new > size  # both branches ran after the pool filled


def test_a_zero_size_pool_passes_images_through():
    pool = cyclegan.pool_init(0, (2, 2, 3))
    images = jnp.arange(24.0).reshape(2, 2, 2, 3)
    same_pool, out = cyclegan.pool_query(pool, images, jax.random.key(0))
    assert out is images and same_pool is pool


def _toy_models():
    """A 'generator' x * p and a 'critic' mean(x * p) per image: losses computable by hand."""
    generate = lambda p, x: x * p  # noqa: E731
    criticize = lambda p, x: jnp.mean(x * p, axis=(1, 2, 3))  # noqa: E731
    return generate, criticize


def test_generator_loss_equals_the_hand_computation_and_an_identity_generator_has_no_cycle_loss():
    generate, criticize = _toy_models()
    rng = np.random.RandomState(1)
    a, b = rng.randn(2, 4, 4, 3), rng.randn(2, 4, 4, 3)
    g = {"G_A": 1.5, "G_B": -0.5}
    d = {"D_A": 2.0, "D_B": 0.25}
    weights = cyclegan.Weights(cycle_a=10.0, cycle_b=7.0, identity=0.5)
    gan = cyclegan.gan_mode("lsgan")
    loss, (fakes, terms) = cyclegan.generator_loss(
        g, d, generate, criticize, jnp.asarray(a), jnp.asarray(b), gan, weights
    )
    fake_b, fake_a = 1.5 * a, -0.5 * b
    mse1 = lambda s: np.mean((s - 1.0) ** 2)  # noqa: E731
    want = {
        "g_adv_a": mse1((2.0 * fake_b).mean(axis=(1, 2, 3))),
        "g_adv_b": mse1((0.25 * fake_a).mean(axis=(1, 2, 3))),
        "cycle_a": 10.0 * np.mean(np.abs(-0.5 * fake_b - a)),
        "cycle_b": 7.0 * np.mean(np.abs(1.5 * fake_a - b)),
        "idt_a": 7.0 * 0.5 * np.mean(np.abs(1.5 * b - b)),  # G_A(B) vs B, weighed by lambda_B
        "idt_b": 10.0 * 0.5 * np.mean(np.abs(-0.5 * a - a)),
    }
    for name, value in want.items():
        np.testing.assert_allclose(float(terms[name]), value, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(float(loss), sum(want.values()), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(fakes["B"]), fake_b, rtol=1e-6)
    identity = {"G_A": 1.0, "G_B": 1.0}
    _, (_, terms) = cyclegan.generator_loss(
        identity, d, generate, criticize, jnp.asarray(a), jnp.asarray(b), gan, weights
    )
    for name in ("cycle_a", "cycle_b", "idt_a", "idt_b"):
        assert float(terms[name]) == 0.0
    _, (_, terms) = cyclegan.generator_loss(
        g, d, generate, criticize, jnp.asarray(a), jnp.asarray(b), gan, weights._replace(identity=0)
    )
    assert "idt_a" not in terms


@pytest.mark.parametrize("mode", ["lsgan", "vanilla", "wgangp"])
def test_critic_loss_is_half_the_reference_gan_loss_per_critic(mode):
    _, criticize = _toy_models()
    rng = np.random.RandomState(2)
    real_a, real_b, fake_a, fake_b = (rng.randn(3, 2, 2, 1) for _ in range(4))
    d = {"D_A": 1.5, "D_B": -2.0}
    loss, terms = cyclegan.critic_loss(
        d,
        criticize,
        *map(jnp.asarray, (real_a, real_b, fake_a, fake_b)),
        cyclegan.gan_mode(mode),
    )
    score = lambda p, x: (p * x).mean(axis=(1, 2, 3))  # noqa: E731
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    reference = {  # GANLoss: MSE / BCEWithLogits against 1 (real) and 0 (fake); WGAN-GP's means
        "lsgan": lambda r, f: np.mean((r - 1) ** 2) + np.mean(f**2),
        "vanilla": lambda r, f: np.mean(softplus(-r)) + np.mean(softplus(f)),
        "wgangp": lambda r, f: -np.mean(r) + np.mean(f),
    }[mode]
    d_a = 0.5 * reference(score(1.5, real_b), score(1.5, fake_b))
    d_b = 0.5 * reference(score(-2.0, real_a), score(-2.0, fake_a))
    np.testing.assert_allclose([float(terms["d_a"]), float(terms["d_b"])], [d_a, d_b], rtol=1e-5)
    np.testing.assert_allclose(float(loss), d_a + d_b, rtol=1e-5)


def test_unknown_gan_mode_names_the_choices():
    with pytest.raises(errors.ConfigError, match="gan_mode='hinge'.*lsgan, vanilla, wgangp"):
        cyclegan.gan_mode("hinge")


def test_learning_rate_is_constant_then_linear_to_zero():
    lr = translation.learning_rate_fn(2e-4, num_steps=200, decay_steps=100)
    steps = np.array([0, 50, 100, 150, 199, 200, 250])
    want = 2e-4 * np.array([1.0, 1.0, 1.0, 0.5, 0.01, 0.0, 0.0])
    # float32: 1 - 99/100 keeps ~5 significant digits of the 0.01.
    np.testing.assert_allclose(np.asarray(jax.vmap(lr)(steps)), want, rtol=1e-4, atol=1e-12)


@pytest.mark.slow
def test_one_step_equals_the_reference_optimize_parameters():
    """The jitted step against a PyTorch build of the reference's `optimize_parameters` (the
    fixture of `scripts/make_cyclegan_fixture.py`): every loss term and every weight of the four
    networks after one iteration, in float64, with SGD on both sides (the fixture says why)."""
    with jax.enable_x64(True):
        _one_step_against_the_reference()


def _one_step_against_the_reference():
    import optax

    from jaxgan.core import parallel

    fixture = np.load(pathlib.Path(__file__).parent / "fixtures" / "cyclegan" / "one_step.npz")

    def networks(stage):
        def state_dict(name):
            prefix = f"{stage}/{name}/"
            return {k[len(prefix) :]: fixture[k] for k in fixture.files if k.startswith(prefix)}

        return (
            {
                n: cyclegan_networks.generator_params_from_torch(state_dict(n))
                for n in ("G_A", "G_B")
            },
            {
                n: cyclegan_networks.discriminator_params_from_torch(state_dict(n))
                for n in ("D_A", "D_B")
            },
        )

    (g, d), (want_g, want_d) = networks("before"), networks("after")
    g, d = jax.tree.map(jnp.asarray, (g, d))
    tx = optax.sgd(float(fixture["lr"]))
    state = {
        "step": jnp.zeros((), jnp.int32), "rng": jax.random.key_data(jax.random.key(0)),
        "g_params": g, "d_params": d, "g_opt": tx.init(g), "d_opt": tx.init(d),
        "pool_a": cyclegan.pool_init(0, (16, 16, 3), jnp.float64),
        "pool_b": cyclegan.pool_init(0, (16, 16, 3), jnp.float64),
    }  # fmt: skip
    step = cyclegan.make_train_step(
        cyclegan_networks.Generator(3, 4, 1), cyclegan_networks.Discriminator(4, 1), tx, tx,
        cyclegan.gan_mode("lsgan"), cyclegan.Weights(), parallel.make_mesh(1),
    )  # fmt: skip
    pixels = {domain: fixture[f"pixels/{domain}"][None] for domain in "AB"}
    new, metrics = step(state, pixels)
    names = {"g_adv_a": "G_A", "g_adv_b": "G_B", "cycle_a": "cycle_A", "cycle_b": "cycle_B",
             "idt_a": "idt_A", "idt_b": "idt_B", "d_a": "D_A", "d_b": "D_B"}  # fmt: skip
    for ours, reference in names.items():
        np.testing.assert_allclose(float(metrics[ours]), fixture[f"loss/{reference}"], rtol=1e-10)
    for got, want in ((new["g_params"], want_g), (new["d_params"], want_d)):
        for (path, x), y in zip(
            jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want), strict=True
        ):
            # float64 rounding (weights move by ~1e-2 per step here: a wrong order shows).
            np.testing.assert_allclose(np.asarray(x), y, rtol=1e-8, atol=1e-11, err_msg=str(path))


@pytest.mark.slow
def test_a_smoke_run_trains_draws_its_grid_and_resumes_exactly(
    tmp_path, translation_run, translation_smoke_config
):
    """`cyclegan:smoke` through the run loop (one device: half the compile time of 8): a
    resumed run (2 steps, then 3) ends bit-equal to an uninterrupted one, history pools included."""
    from PIL import Image

    from jaxgan.training import loop

    workdir, root, _, whole = translation_run
    loop.train_and_evaluate(translation_smoke_config(root, 2), str(tmp_path / "resumed"))
    resumed = loop.train_and_evaluate(translation_smoke_config(root, 3), str(tmp_path / "resumed"))
    assert int(whole["step"]) == int(resumed["step"]) == 3
    assert int(whole["pool_a"]["count"]) == 3  # a pool of 3 after 3 batches of 2
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(whole), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(path))
    grids = sorted(pathlib.Path(workdir, "samples").iterdir())
    grid = np.asarray(Image.open(grids[-1]))
    assert grid.shape == (
        6 * 18 + 2,
        2 * 18 + 2,
        3,
    )  # rows A, G_A(A), G_B(G_A(A)), B, ...; 2 columns
    # The first row is the first two test images of A as given (the test transform at 16x16).
    first = np.asarray(Image.open(root / "testA" / "000.png").resize((16, 16), Image.BICUBIC))
    np.testing.assert_allclose(grid[2:18, 2:18].astype(int), first.astype(int), atol=1)


@pytest.mark.parametrize(
    "change, scaled",
    [
        ({"gan": 0.0}, ("g_adv_a", "g_adv_b")),  # Table 4's "cycle alone"
        ({"gan": 2.5}, ("g_adv_a", "g_adv_b")),
        ({"cycle_a": 0.0}, ("cycle_a", "idt_b")),  # "GAN + backward cycle"
        ({"cycle_b": 0.0}, ("cycle_b", "idt_a")),  # "GAN + forward cycle"
        ({"cycle_a": 5.0}, ("cycle_a", "idt_b")),
    ],
)
def test_each_loss_weight_scales_exactly_its_terms(change, scaled):
    """gan_weight scales both adversarial terms, lambda_a the forward cycle G_B(G_A(A)) ~ A (and
    the identity term it weighs), lambda_b the backward one; every other term is bit-equal."""
    generate, criticize = _toy_models()
    rng = np.random.RandomState(3)
    a, b = (jnp.asarray(rng.randn(2, 4, 4, 3)) for _ in range(2))
    g, d = {"G_A": 1.5, "G_B": -0.5}, {"D_A": 2.0, "D_B": 0.25}
    gan, base_weights = cyclegan.gan_mode("lsgan"), cyclegan.Weights()
    assert base_weights.gan == 1.0  # the default: the reference's loss

    def terms(weights):
        loss, (_, parts) = cyclegan.generator_loss(g, d, generate, criticize, a, b, gan, weights)
        np.testing.assert_allclose(float(loss), sum(float(v) for v in parts.values()), rtol=1e-6)
        return {k: float(v) for k, v in parts.items()}

    base, changed = terms(base_weights), terms(base_weights._replace(**change))
    assert set(changed) == set(base)
    [(field, value)] = change.items()
    for name in base:
        if name not in scaled:
            assert changed[name] == base[name], name
        elif value == 0.0:
            assert changed[name] == 0.0, name
        else:
            np.testing.assert_allclose(
                changed[name], base[name] * value / getattr(base_weights, field), rtol=1e-6
            )


@pytest.mark.slow  # two compiles of the step: ~40 s
def test_gan_weight_in_the_step_changes_only_the_generators_adversarial_pull():
    """One jitted step of the smoke networks with gan_weight 1 (the existing step) and 0 (cycle
    alone) from the same state: the adversarial terms are 0, the cycle and identity terms and the
    critics' losses and update are bit-equal (D judges the forward's fakes, taken before G moved),
    and G's update differs."""
    import optax

    from jaxgan.core import parallel

    generator, critic = cyclegan_networks.Generator(3, 4, 1), cyclegan_networks.Discriminator(4, 1)
    mesh, tx, shape = parallel.make_mesh(1), optax.adam(1e-3), (16, 16, 3)
    config = type("C", (), {"seed": 0, "pool_size": 0})
    state = cyclegan.create_state(config, generator, critic, tx, tx, shape, mesh)
    rng = np.random.RandomState(4)
    batch = {k: rng.randint(0, 256, (1, 2, *shape)).astype(np.uint8) for k in "AB"}

    def step(weights):
        train_step = cyclegan.make_train_step(
            generator, critic, tx, tx, cyclegan.gan_mode("lsgan"), weights, mesh
        )
        new, metrics = train_step(jax.tree.map(jnp.copy, state), batch)  # the step donates
        return jax.device_get(new), {k: float(v) for k, v in metrics.items()}

    with_gan, base = step(cyclegan.Weights())
    without, cycle_alone = step(cyclegan.Weights(gan=0.0))
    assert base["g_adv_a"] > 0 and base["g_adv_b"] > 0
    assert cycle_alone["g_adv_a"] == cycle_alone["g_adv_b"] == 0.0
    for name in ("cycle_a", "cycle_b", "idt_a", "idt_b", "d_a", "d_b", "d_loss"):
        assert cycle_alone[name] == base[name], name
    for x, y in zip(jax.tree.leaves(with_gan["d_params"]), jax.tree.leaves(without["d_params"])):
        np.testing.assert_array_equal(x, y)
    assert any(
        not np.array_equal(x, y)
        for x, y in zip(jax.tree.leaves(with_gan["g_params"]), jax.tree.leaves(without["g_params"]))
    )


def test_runs_saved_before_gan_weight_read_as_1_and_a_change_is_refused():
    from jaxgan.configs import cyclegan as cyclegan_config
    from jaxgan.configs import nicegan as nicegan_config
    from jaxgan.training import contract, registry

    upgraded = contract.upgrade({"method": "cyclegan", "lambda_a": 10.0})
    assert upgraded["gan_weight"] == 1.0 == cyclegan_config.get_config().gan_weight
    assert "gan_weight" not in contract.upgrade({"method": "nicegan"})  # NICE-GAN: adv_weight
    assert "gan_weight" not in nicegan_config.get_config()
    safe = contract.SAFE_TO_CHANGE | frozenset(registry.get("cyclegan").safe_to_change)
    with pytest.raises(errors.ConfigError, match="gan_weight: 1.0 -> 0.0"):
        contract.check_contract(upgraded, {**upgraded, "gan_weight": 0.0}, safe, 3, "w")
