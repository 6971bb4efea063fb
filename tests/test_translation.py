"""CycleGAN's step pieces (jaxgan/translation.py) against the reference's definitions."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import errors, translation


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
    pool = translation.pool_init(size, shape)
    reference = ReferencePool(size)
    query = jax.jit(translation.pool_query)
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
    pool = translation.pool_init(0, (2, 2, 3))
    images = jnp.arange(24.0).reshape(2, 2, 2, 3)
    same_pool, out = translation.pool_query(pool, images, jax.random.key(0))
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
    weights = translation.Weights(cycle_a=10.0, cycle_b=7.0, identity=0.5)
    gan = translation.gan_mode("lsgan")
    loss, (fakes, terms) = translation.generator_loss(
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
    _, (_, terms) = translation.generator_loss(
        identity, d, generate, criticize, jnp.asarray(a), jnp.asarray(b), gan, weights
    )
    for name in ("cycle_a", "cycle_b", "idt_a", "idt_b"):
        assert float(terms[name]) == 0.0
    _, (_, terms) = translation.generator_loss(
        g, d, generate, criticize, jnp.asarray(a), jnp.asarray(b), gan, weights._replace(identity=0)
    )
    assert "idt_a" not in terms


@pytest.mark.parametrize("mode", ["lsgan", "vanilla", "wgangp"])
def test_critic_loss_is_half_the_reference_gan_loss_per_critic(mode):
    _, criticize = _toy_models()
    rng = np.random.RandomState(2)
    real_a, real_b, fake_a, fake_b = (rng.randn(3, 2, 2, 1) for _ in range(4))
    d = {"D_A": 1.5, "D_B": -2.0}
    loss, terms = translation.critic_loss(
        d,
        criticize,
        *map(jnp.asarray, (real_a, real_b, fake_a, fake_b)),
        translation.gan_mode(mode),
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
        translation.gan_mode("hinge")


def test_learning_rate_is_constant_then_linear_to_zero():
    lr = translation.learning_rate_fn(2e-4, num_steps=200, decay_steps=100)
    steps = np.array([0, 50, 100, 150, 199, 200, 250])
    want = 2e-4 * np.array([1.0, 1.0, 1.0, 0.5, 0.01, 0.0, 0.0])
    # float32: 1 - 99/100 keeps ~5 significant digits of the 0.01.
    np.testing.assert_allclose(np.asarray(jax.vmap(lr)(steps)), want, rtol=1e-4, atol=1e-12)


def test_one_step_is_g_on_the_old_critics_then_d_on_the_pre_update_fakes():
    """train_step against the reference's order composed by hand: G_A/G_B's step on the loss
    through the old critics, then D_A/D_B's on the fakes of that same forward pass (the pools are
    filling, so they pass the fakes through). In float64: tiny instance-normed nets amplify float32
    rounding differently on each CPU."""
    with jax.enable_x64(True):
        _one_step_against_composition()


def _one_step_against_composition():
    import optax

    from jaxgan import parallel
    from jaxgan.models import cyclegan

    generator, critic = cyclegan.Generator(3, width=2, num_blocks=1), cyclegan.Discriminator(2, 1)
    rng = np.random.RandomState(3)
    pixels = {k: rng.randint(0, 256, (1, 2, 8, 8, 3)).astype(np.uint8) for k in "AB"}
    batch = {k: jnp.asarray(v[0] / 127.5 - 1.0) for k, v in pixels.items()}  # to_float, float64
    keys = jax.random.split(jax.random.key(0), 4)
    as64 = lambda tree: jax.tree.map(lambda x: x.astype(jnp.float64), tree)  # noqa: E731
    x32 = batch["A"].astype(jnp.float32)  # init in float32 (the layers' kernels), then cast
    init = lambda net, key: as64(jax.jit(net.init)(key, x32)["params"])  # noqa: E731
    g = {n: init(generator, k) for n, k in zip(("G_A", "G_B"), keys[:2])}
    d = {n: init(critic, k) for n, k in zip(("D_A", "D_B"), keys[2:])}
    # SGD, not the reference's Adam: a conv bias before instance norm has a zero gradient up to
    # rounding, which Adam's first step (g / |g|) would turn into ±lr in either order of summation.
    g_tx = d_tx = optax.sgd(0.5)
    gan, weights = translation.gan_mode("lsgan"), translation.Weights()
    state = {
        "step": jnp.zeros((), jnp.int32), "rng": jax.random.key_data(jax.random.key(1)),
        "g_params": g, "d_params": d, "g_opt": g_tx.init(g), "d_opt": d_tx.init(d),
        "pool_a": translation.pool_init(50, (8, 8, 3), jnp.float64),
        "pool_b": translation.pool_init(50, (8, 8, 3), jnp.float64),
    }  # fmt: skip
    generate = lambda p, x: generator.apply({"params": p}, x)  # noqa: E731
    criticize = lambda p, x: critic.apply({"params": p}, x)  # noqa: E731
    g_loss = lambda g, d, a, b: translation.generator_loss(
        g, d, generate, criticize, a, b, gan, weights
    )  # noqa: E731
    d_loss = lambda d, *images: translation.critic_loss(d, criticize, *images, gan)  # noqa: E731
    g_grads, (fakes, _) = jax.jit(jax.grad(g_loss, has_aux=True))(g, d, batch["A"], batch["B"])
    d_grads, _ = jax.jit(jax.grad(d_loss, has_aux=True))(
        d, batch["A"], batch["B"], fakes["A"], fakes["B"]
    )
    want_g = optax.apply_updates(g, g_tx.update(g_grads, g_tx.init(g), g)[0])
    want_d = optax.apply_updates(d, d_tx.update(d_grads, d_tx.init(d), d)[0])
    step = translation.make_train_step(
        generator, critic, g_tx, d_tx, gan, weights, parallel.make_mesh(1)
    )
    new, metrics = step(jax.tree.map(jnp.copy, state), pixels)
    for got, want in ((new["g_params"], want_g), (new["d_params"], want_d)):
        for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            # float64 rounding; a wrong order (D on the post-update fakes, G through the new D)
            # moves weights by ~1e-2.
            assert x.dtype == jnp.float64
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        np.asarray(new["pool_b"]["images"][:2]), np.asarray(fakes["B"]), atol=1e-12
    )
    assert int(new["pool_a"]["count"]) == 2 and int(new["step"]) == 1 and metrics["update_ok"] == 1


def test_a_smoke_run_trains_draws_its_grid_and_resumes_exactly(
    tmp_path, translation_run, translation_smoke_config
):
    """`configs/cyclegan.py:smoke` through the run loop (one device: half the compile time of 8): a
    resumed run (2 steps, then 3) ends bit-equal to an uninterrupted one, history pools included."""
    from PIL import Image

    from jaxgan import loop

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
