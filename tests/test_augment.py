"""DiffAugment (jaxgan/training/augment.py) and FreezeD (gan.make_optimizer), each against its definition.

The augmentation ops are checked against numpy transcriptions of the reference
`DiffAugment_pytorch.py` (mit-han-lab/data-efficient-gans; NCHW, as there) fed the same random
draws; FreezeD by training two steps and comparing parameters bit for bit.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import data
from jaxgan.configs import dcgan, wgan_gp
from jaxgan.core import errors, parallel
from jaxgan.methods import gan
from jaxgan.training import augment

# Non-square, with an odd cutout width (10 // 2 = 5), to catch swapped axes and the odd-size rule.
SHAPE = (64, 16, 10, 3)  # N, H, W, C


def _images(seed=0, shape=SHAPE):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _nchw(x):
    return np.transpose(x, (0, 3, 1, 2))


def _nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


# ---- the reference's formulas, in numpy on NCHW, with its torch.rand draws given ---------------


def ref_brightness(x, rand):  # rand ~ U(0, 1) per sample, [N, 1, 1, 1]
    return x + (rand - 0.5)


def ref_color(x, rand):
    x_mean = x.mean(axis=1, keepdims=True)
    return (x - x_mean) * (rand * 2) + x_mean


def ref_contrast(x, rand):
    x_mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - x_mean) * (rand + 0.5) + x_mean


def ref_translation(x, translation_x, translation_y):  # integer shifts [N] along H and along W
    n, _, h, w = x.shape
    grid_batch, grid_x, grid_y = np.meshgrid(
        np.arange(n), np.arange(h), np.arange(w), indexing="ij"
    )
    grid_x = np.clip(grid_x + translation_x[:, None, None] + 1, 0, h + 1)
    grid_y = np.clip(grid_y + translation_y[:, None, None] + 1, 0, w + 1)
    x_pad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    return np.transpose(x_pad[grid_batch, :, grid_x, grid_y], (0, 3, 1, 2))


def ref_cutout(x, offset_x, offset_y, ratio=0.5):
    n, _, h, w = x.shape
    cutout_size = int(h * ratio + 0.5), int(w * ratio + 0.5)
    grid_batch, grid_x, grid_y = np.meshgrid(
        np.arange(n), np.arange(cutout_size[0]), np.arange(cutout_size[1]), indexing="ij"
    )
    grid_x = np.clip(grid_x + offset_x[:, None, None] - cutout_size[0] // 2, 0, h - 1)
    grid_y = np.clip(grid_y + offset_y[:, None, None] - cutout_size[1] // 2, 0, w - 1)
    mask = np.ones((n, h, w), x.dtype)
    mask[grid_batch, grid_x, grid_y] = 0
    return x * mask[:, None]


# ---- each op against the reference -----------------------------------------------------------


@pytest.mark.parametrize(
    "op, reference, low, high",
    [
        # brightness: our draw b is the reference's rand - 0.5, so rand = b + 0.5
        (augment.rand_brightness, lambda x, b: ref_brightness(x, b + 0.5), -0.5, 0.5),
        (augment.rand_saturation, lambda x, s: ref_color(x, s / 2), 0.0, 2.0),
        (augment.rand_contrast, lambda x, c: ref_contrast(x, c - 0.5), 0.5, 1.5),
    ],
)
def test_color_ops_match_the_reference(op, reference, low, high):
    x, key = _images(), jax.random.key(1)
    draws = np.asarray(op.draw(key, x.shape))
    assert draws.shape == (SHAPE[0], 1, 1, 1)
    assert low <= draws.min() < draws.max() <= high  # the reference's range, one draw per sample
    assert draws.max() - draws.min() > 0.8 * (high - low)
    got = np.asarray(op(jnp.asarray(x), key))
    np.testing.assert_allclose(got, _nhwc(reference(_nchw(x), draws)), rtol=1e-5, atol=1e-6)


def test_translation_matches_the_reference():
    x, key = _images(), jax.random.key(2)
    shifts = np.asarray(augment.rand_translation.draw(key, x.shape))
    # round(16 / 8) = 2 rows, round(10 / 8) = 1 column, every integer shift drawn.
    assert sorted(set(shifts[:, 0])) == [-2, -1, 0, 1, 2]
    assert sorted(set(shifts[:, 1])) == [-1, 0, 1]
    got = np.asarray(augment.rand_translation(jnp.asarray(x), key))
    np.testing.assert_array_equal(got, _nhwc(ref_translation(_nchw(x), shifts[:, 0], shifts[:, 1])))
    # By hand: a shift of (dy, dx) = (1, -1) moves content up one row and right one column.
    one = augment.rand_translation.apply(jnp.asarray(x[:1]), jnp.array([[1, -1]]))
    np.testing.assert_array_equal(one[0, :-1, 1:], x[0, 1:, :-1])
    assert not np.any(one[0, -1]) and not np.any(one[0, :, 0])


def test_cutout_matches_the_reference():
    x, key = _images(), jax.random.key(3)
    centres = np.asarray(augment.rand_cutout.draw(key, x.shape))
    # Rows: cut 8 (even), centre in [0, 16]; columns: cut 5 (odd), centre in [0, 9].
    assert centres[:, 0].min() == 0 and centres[:, 0].max() == 16
    assert centres[:, 1].min() == 0 and centres[:, 1].max() == 9
    got = np.asarray(augment.rand_cutout(jnp.asarray(x), key))
    np.testing.assert_array_equal(got, _nhwc(ref_cutout(_nchw(x), centres[:, 0], centres[:, 1])))
    # A centre far enough inside zeroes a whole 8 x 5 square, the same for every channel.
    inside = augment.rand_cutout.apply(jnp.ones((1, 16, 10, 3)), jnp.array([[8, 5]]))
    assert int(jnp.sum(inside == 0)) == 8 * 5 * 3
    assert not np.any(inside[0, 4:12, 3:8]) and np.all(inside[0, :4]) and np.all(inside[0, :, :3])


def test_diff_augment_applies_the_policy_in_order_with_one_key_per_op():
    x, key = jnp.asarray(_images()), jax.random.key(4)
    policy = "color,translation,cutout"
    ops = [
        augment.rand_brightness,
        augment.rand_saturation,
        augment.rand_contrast,
        augment.rand_translation,
        augment.rand_cutout,
    ]
    expected = x
    for op, op_key in zip(ops, jax.random.split(key, len(ops))):
        expected = op(expected, op_key)
    got = augment.diff_augment(x, key, policy)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
    assert not np.allclose(got, x)
    # Pure: the same key gives the same images; another key others.
    np.testing.assert_array_equal(np.asarray(augment.diff_augment(x, key, policy)), got)
    assert not np.allclose(augment.diff_augment(x, jax.random.key(5), policy), got)
    assert augment.diff_augment(x, None, "") is x


def test_unknown_policy_names_the_field():
    with pytest.raises(errors.ConfigError, match=r"config\.diffaugment='color,flip'.*'flip'"):
        augment.parse_policy("color,flip")
    assert augment.parse_policy(" color, cutout ") == ("color", "cutout")


def test_gradients_flow_through_diff_augment():
    x, key = jnp.asarray(_images()), jax.random.key(6)
    weights = jnp.asarray(_images(7))
    grad = jax.grad(
        lambda x: jnp.sum(weights * augment.diff_augment(x, key, "color,translation,cutout"))
    )(x)
    assert bool(jnp.all(jnp.isfinite(grad)))
    assert float(jnp.mean(grad != 0)) > 0.3  # cutout and the shifted-out border give exact zeros
    # Cutout alone: d(sum)/dx is its mask (1 kept, 0 cut), the same in every channel.
    cut_grad = jax.grad(lambda x: jnp.sum(augment.diff_augment(x, key, "cutout")))(x)
    mask = augment.diff_augment(jnp.ones_like(x), key, "cutout")
    np.testing.assert_array_equal(np.asarray(cut_grad), np.asarray(mask))


# ---- FreezeD ---------------------------------------------------------------------------------


def _critic_params(name, **overrides):
    config = {"wgan_gp": wgan_gp, "dcgan": dcgan}[name].get_config("smoke")
    config.update_from_flattened_dict(overrides)
    _, critic = gan.build_models(config, 1, 10)
    shape = (2, config.data.resolution, config.data.resolution, 1)
    init = lambda: critic.init(jax.random.key(0), jnp.zeros(shape), jnp.zeros((2,), jnp.int32))
    return jax.eval_shape(init)["params"]


@pytest.mark.parametrize(
    "name, overrides, blocks",
    [
        (
            "dcgan",
            {"model.ac_head": True, "model.conditional_generator": True},
            [["Conv0"], ["Conv1", "Norm1"], ["Conv2", "Norm2"]],
        ),
        (
            "wgan_gp",
            {"model.ac_head": True},
            [["Block1Conv1", "Block1Conv2", "Block1Shortcut"], ["Block2"], ["Block3"], ["Block4"]],
        ),
        (
            "wgan_gp",
            {"data.resolution": 64},
            [["Input"], ["Res1"], ["Res2"], ["Res3"], ["Res4"]],
        ),
        (
            "wgan_gp",
            {"model.name": "sngan", "model.projection": True},
            [["Block1"], ["Block2"], ["Block3"], ["Block4"]],
        ),
    ],
)
def test_critic_blocks_of_each_family(name, overrides, blocks):
    params = _critic_params(name, **overrides)
    assert gan.critic_blocks(params) == blocks
    mask = gan.frozen_critic_mask(params, 2)
    frozen = {k for k, subtree in mask.items() if all(jax.tree.leaves(subtree))}
    assert frozen == set(blocks[0] + blocks[1])
    assert not any(
        leaf for k, sub in mask.items() if k not in frozen for leaf in jax.tree.leaves(sub)
    )


def test_too_many_frozen_blocks_names_field_value_and_range():
    params = _critic_params("dcgan")
    match = r"config\.d_freeze_blocks=4: this critic has 3 blocks .* 0\.\.3"
    with pytest.raises(errors.ConfigError, match=match):
        gan.frozen_critic_mask(params, 4)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, diffaugment",
    [("dcgan", ""), ("wgan_gp", "color,translation,cutout")],  # FreezeD alone; with DiffAugment
)
def test_freeze_d_keeps_the_first_block_bit_equal(name, diffaugment, monkeypatch):
    """Two train steps with d_freeze_blocks=1: block 1 bit-equal with zero Adam moments, the
    rest of the critic moved. With DiffAugment, also which images the step augments."""
    calls = []

    def spy(images, key, policy):
        calls.append((images.shape, key, policy))
        return real_diff_augment(images, key, policy)

    real_diff_augment = augment.diff_augment
    monkeypatch.setattr(augment, "diff_augment", spy)
    config = {"wgan_gp": wgan_gp, "dcgan": dcgan}[name].get_config("smoke")
    config.d_freeze_blocks, config.diffaugment = 1, diffaugment
    mesh = parallel.make_mesh(1)
    generator, critic = gan.build_models(config, 1, 10)
    g_tx = gan.make_optimizer(config, config.optim.g_lr, 1)
    d_tx = gan.make_optimizer(config, config.optim.d_lr, config.n_critic, config.d_freeze_blocks)
    state = gan.create_state(config, generator, critic, g_tx, d_tx, (32, 32, 1), mesh)
    initial = jax.device_get(state["d_params"])
    step = gan.make_train_step(config, generator, critic, g_tx, d_tx, 10, mesh)
    batches = data.Batches(
        data.open_source("mnist5k"), config.batch_size, 32, 1, seed=0, steps=config.n_critic
    )
    try:
        for _ in range(2):
            state, metrics = step(
                state, data.to_global(next(batches), parallel.sharded_on(mesh, 1))
            )
    finally:
        batches.close()
    assert all(np.isfinite(float(v)) for v in metrics.values())
    # Traced once: the critic step's reals, fakes and (wgan_gp) penalty interpolates, then the
    # generator step's fakes; the interpolates through the reals' T (the reference's
    # ns_DiffAugment_r1), each other call with its own key.
    shapes = [shape for shape, _, _ in calls]
    # The critic loop is unrolled in Python, so each of the n_critic steps is traced.
    if diffaugment:
        n = config.n_critic
        assert shapes == [(8, 32, 32, 1)] * (3 * n + 1) and {p for *_, p in calls} == {diffaugment}
        keys = [key for _, key, _ in calls]
        for i in range(n):  # per critic step: reals, fakes, penalty interpolates
            reals_key, fakes_key, penalty_key = keys[3 * i : 3 * i + 3]
            assert penalty_key is reals_key
        distinct = [keys[3 * i + j] for i in range(n) for j in (0, 1)] + [keys[-1]]
        assert len({id(key) for key in distinct}) == 2 * n + 1
    else:
        n = config.n_critic
        assert shapes == [(8, 32, 32, 1)] * (2 * n + 1)
        assert {(k, p) for _, k, p in calls} == {(None, "")}
    frozen = set(gan.critic_blocks(initial)[0])
    final = jax.device_get(state["d_params"])
    _, adam_state = state["d_opt"]
    for block in initial:
        pairs = list(zip(jax.tree.leaves(initial[block]), jax.tree.leaves(final[block])))
        if block in frozen:
            for before, after in pairs:
                np.testing.assert_array_equal(after, before, err_msg=block)
        else:  # some leaf: a Wasserstein critic's output bias has gradient exactly 0 (it cancels)
            assert any(not np.array_equal(after, before) for before, after in pairs), block
        for moment in (adam_state[0].mu[block], adam_state[0].nu[block]):
            if block in frozen:
                assert not any(np.any(np.asarray(m)) for m in jax.tree.leaves(moment)), block
            else:
                assert any(np.any(np.asarray(m)) for m in jax.tree.leaves(moment)), block
