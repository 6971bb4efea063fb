"""`config.data.preprocess` of two-domain data (`data/two_domain.py`): each mode of the reference's
`--preprocess` against a PIL computation written here from `base_dataset.py`'s formulas
(`get_params`, `__scale_width`, `__make_power_2`, `__crop`, `__flip`), on non-square images."""

import os

import numpy as np
import pytest
from PIL import Image

from jaxgan.configs import common, cyclegan, nicegan
from jaxgan.core import errors, parallel
from jaxgan.data import two_domain
from jaxgan.methods import translation
from jaxgan.training import contract, registry

SIZE, LOAD = 16, 18  # crop and load_size (round(16 * 286 / 256))

# (H, W) of each split's images: landscape, portrait, one already LOAD wide (`__scale_width`'s
# early return), one whose scaled height is under the crop (`max(..., crop_size)`).
NON_SQUARE = {
    "trainA": [(20, 30), (34, 18), (16, 25), (40, 17)],
    "trainB": [(18, 40), (28, 21), (17, 17)],
    "testA": [(20, 30), (33, 16)],
    "testB": [(17, 29)],
}
# Sides that `__make_power_2` rounds to 16: 14 (3.5 -> 4) ... 18 (4.5 -> 4, Python's round).
NEAR_16 = {
    "trainA": [(16, 16), (17, 15), (18, 14)],
    "trainB": [(14, 18), (16, 17)],
    "testA": [(15, 16)],
    "testB": [(18, 18)],
}


def _write(root, sizes):
    """root/<split>/<i>.png of random RGB pixels of the given (H, W): the reference layout."""
    for split, shapes in sizes.items():
        os.makedirs(root / split)
        for i, (h, w) in enumerate(shapes):
            seed = sum(map(ord, split)) * 100 + i
            pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / f"{i}.png")
    return root


def _files(root, split):
    return sorted(str(root / split / f) for f in os.listdir(root / split))


# ----------------------------------------------------------------------------------------------
# The reference's transforms, with PIL, from base_dataset.py's formulas.
# ----------------------------------------------------------------------------------------------


def _scale_width(img, target, crop):
    ow, oh = img.size
    if ow == target and oh >= crop:
        return img
    return img.resize((target, int(max(target * oh / ow, crop))), Image.BICUBIC)


def _make_power_2(img, base=4):
    ow, oh = img.size
    h, w = int(round(oh / base) * base), int(round(ow / base) * base)
    return img if (h, w) == (oh, ow) else img.resize((w, h), Image.BICUBIC)


def _resized(img, mode, load, crop):
    """get_transform's resize step."""
    if "resize" in mode:
        return img.resize((load, load), Image.BICUBIC)
    if "scale_width" in mode:
        return _scale_width(img, load, crop)
    if mode == "none":
        return _make_power_2(img)
    return img


def _crop_ranges(w, h, mode, load, crop):
    """get_params: the largest (y, x) of the crop's corner, for an image of w x h; (0, 0) for a
    mode without a crop, where get_params' draw is unused and jaxgan's range is empty."""
    if "crop" not in mode:
        return 0, 0
    new_w, new_h = w, h
    if mode == "resize_and_crop":
        new_w = new_h = load
    elif mode == "scale_width_and_crop":
        new_w, new_h = load, load * h // w
    return max(0, new_h - crop), max(0, new_w - crop)


def _reference_train(path, mode, rng):
    """One training example: (y, x) drawn in get_params' ranges by the documented generator,
    `integers(0, [y_max + 1, x_max + 1])` then `random() < 0.5` for the flip."""
    with Image.open(path) as image:
        img = image.convert("RGB")
    y_max, x_max = _crop_ranges(*img.size, mode, LOAD, SIZE)
    y, x = rng.integers(0, [y_max + 1, x_max + 1])
    flip = rng.random() < 0.5
    img = _resized(img, mode, LOAD, SIZE)
    if "crop" in mode:
        img = img.crop((x, y, x + SIZE, y + SIZE))
    if flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(img)


def _reference_test(path, mode):
    """The test transform: load_size = crop_size (test_options.py), the crop centred, no flip."""
    with Image.open(path) as image:
        img = _resized(image.convert("RGB"), mode, SIZE, SIZE)
    if "crop" in mode:
        x, y = (img.size[0] - SIZE) // 2, (img.size[1] - SIZE) // 2
        img = img.crop((x, y, x + SIZE, y + SIZE))
    return np.asarray(img)


def _reference_stream(files, seed, domain, positions, mode):
    """pipeline.Batches' order (file at offset p % n of `default_rng([s_d, p // n])`'s
    permutation) and the crop and flip from `default_rng([s_d, 1, p])`."""
    s_d = int(np.random.SeedSequence([seed, domain]).generate_state(1)[0])
    n = len(files)
    return np.stack(
        [
            _reference_train(
                files[np.random.default_rng([s_d, p // n]).permutation(n)[p % n]],
                mode,
                np.random.default_rng([s_d, 1, p]),
            )
            for p in positions
        ]
    )


def _stream_examples(root, mode, positions, seed=7, **kwargs):
    a, b = two_domain.open_domains(f"folder:{root}")
    stream = two_domain.TwoDomainBatches(
        a, b, batch_size=len(positions), size=SIZE, seed=seed, preprocess=mode, **kwargs
    )
    try:
        batch = next(stream)
    finally:
        stream.close()
    return {name: batch[name][0] for name in "AB"}


# ----------------------------------------------------------------------------------------------
# Each mode against the reference.
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mode, sizes",
    [
        ("resize_and_crop", NON_SQUARE),
        ("crop", NON_SQUARE),
        ("scale_width_and_crop", NON_SQUARE),
        ("none", NEAR_16),
    ],
)
def test_train_and_test_transforms_equal_the_references_pil_computation(tmp_path, mode, sizes):
    root = _write(tmp_path / mode, sizes)
    got = _stream_examples(root, mode, range(12))  # 3 or 4 epochs of each domain
    for d, name in enumerate("AB"):
        expected = _reference_stream(_files(root, f"train{name}"), 7, d, range(12), mode)
        assert got[name].shape == (12, SIZE, SIZE, 3)
        np.testing.assert_array_equal(got[name], expected)
    test_a, test_b = two_domain.open_domains(f"folder:{root}", "test")
    for source, split in ((test_a, "testA"), (test_b, "testB")):
        expected = np.stack([_reference_test(f, mode) for f in _files(root, split)])
        np.testing.assert_array_equal(
            two_domain.eval_images(source, SIZE, preprocess=mode), expected
        )


def test_crop_ranges_follow_each_images_size_after_the_resize_step(tmp_path):
    """The draws are not degenerate: 'crop' moves over each image's own size, scale_width_and_crop
    vertically over the scaled height, both flips occur; a 40x17 image scales to 42x18."""
    assert two_domain.resized_shape(40, 17, SIZE, "scale_width_and_crop") == (42, 18)
    assert two_domain.resized_shape(20, 30, SIZE, "scale_width_and_crop") == (16, 18)  # max(12, 16)
    assert two_domain.resized_shape(34, 18, SIZE, "scale_width_and_crop") == (34, 18)  # kept
    assert two_domain.resized_shape(30, 20, SIZE, "scale_width_and_crop", train=False) == (24, 16)
    assert two_domain.resized_shape(20, 30, SIZE, "crop") == (20, 30)
    draws = [two_domain.crop_params(5, p, SIZE, (20, 30)) for p in range(200)]
    assert {t for t, _, _ in draws} == set(range(5)) and {x for _, x, _ in draws} == set(range(15))
    assert {f for *_, f in draws} == {True, False}
    assert {two_domain.crop_params(5, p, SIZE, (SIZE, SIZE))[:2] for p in range(50)} == {(0, 0)}


def test_the_default_mode_is_the_transform_of_before(tmp_path):
    """resize_and_crop is the default everywhere, and its crops are those stored before
    `preprocess` existed (crop_params(seed, position, size) of the earlier code)."""
    before = {  # (seed, position, size) -> (top, left, flip), printed by the code before the change
        (0, 0, 16): (1, 2, False),
        (7, 3, 16): (1, 1, True),
        (123, 41, 16): (1, 2, False),
        (2**31, 5, 16): (2, 2, True),
        (9, 0, 256): (7, 25, True),
        (9, 1, 256): (26, 28, True),
        (9, 2, 256): (18, 30, True),
        (9, 3, 256): (5, 13, False),
    }
    for (seed, position, size), expected in before.items():
        assert two_domain.crop_params(seed, position, size) == expected
        load = two_domain.load_size(size)
        assert two_domain.crop_params(seed, position, size, (load, load)) == expected
    assert common.translation().data.preprocess == two_domain.PREPROCESS[0] == "resize_and_crop"
    root = _write(tmp_path / "default", NON_SQUARE)
    a, b = two_domain.open_domains(f"folder:{root}")
    default = two_domain.TwoDomainBatches(a, b, batch_size=4, size=SIZE, seed=3)
    batch = next(default)
    default.close()
    named = _stream_examples(root, "resize_and_crop", range(4), seed=3)
    for name in "AB":
        np.testing.assert_array_equal(batch[name][0], named[name])
        expected = _reference_stream(_files(root, f"train{name}"), 3, "AB".index(name), range(4),
                                     "resize_and_crop")  # fmt: skip
        np.testing.assert_array_equal(batch[name][0], expected)


def test_resume_reproduces_the_batches_of_a_cropping_mode(tmp_path):
    root = _write(tmp_path / "resume", NON_SQUARE)
    a, b = two_domain.open_domains(f"folder:{root}")
    kwargs = dict(batch_size=2, size=SIZE, seed=1, preprocess="crop")
    whole = two_domain.TwoDomainBatches(a, b, **kwargs)
    batches = [next(whole) for _ in range(4)]
    whole.close()
    resumed = two_domain.TwoDomainBatches(a, b, cursor=4, **kwargs)
    for expected in batches[2:]:
        got = next(resumed)
        for name in "AB":
            np.testing.assert_array_equal(got[name], expected[name])
    resumed.close()


# ----------------------------------------------------------------------------------------------
# What a mode cannot do says so, naming the image.
# ----------------------------------------------------------------------------------------------


def test_an_image_smaller_than_the_crop_is_named_with_its_size_and_the_fix(tmp_path):
    root = _write(tmp_path / "small", {"trainA": [(20, 30), (12, 30)], "trainB": [(20, 20)],
                                       "testA": [(20, 20)], "testB": [(20, 13)]})  # fmt: skip
    small = os.path.join(root, "trainA", "1.png")
    with pytest.raises(errors.DataError, match="12x30") as raised:
        _stream_examples(root, "crop", range(2))
    message = str(raised.value)
    assert message.startswith(small) and "16x16" in message and "resize_and_crop" in message
    _, test_b = two_domain.open_domains(f"folder:{root}", "test")
    with pytest.raises(errors.DataError, match=r"testB.0\.png: the image is 20x13"):
        two_domain.eval_images(test_b, SIZE, preprocess="crop")
    # The modes that resize first take the same images.
    assert _stream_examples(root, "scale_width_and_crop", range(2))["A"].shape == (2, 16, 16, 3)


def test_none_accepts_only_images_it_rounds_to_the_resolution(tmp_path):
    root = _write(tmp_path / "none", {"trainA": [(16, 16), (20, 16)], "trainB": [(16, 16)],
                                      "testA": [(16, 16)], "testB": [(16, 10)]})  # fmt: skip
    with pytest.raises(errors.DataError, match=r"20x16 .*\(20x16\).*16x16") as raised:
        _stream_examples(root, "none", range(2))
    assert str(raised.value).startswith(os.path.join(root, "trainA", "1.png"))
    assert "scale_width_and_crop" in str(raised.value)
    _, test_b = two_domain.open_domains(f"folder:{root}", "test")
    with pytest.raises(errors.DataError, match=r"16x10 .*\(16x8\)"):  # round(2.5) = 2
        two_domain.eval_images(test_b, SIZE, preprocess="none")


def test_scale_width_and_unknown_modes_are_refused_before_any_image_is_read(tmp_path):
    root = _write(tmp_path / "refused", NON_SQUARE)
    a, b = two_domain.open_domains(f"folder:{root}")
    for mode, expected in (("scale_width", "scale_width_and_crop"), ("resize", "crop, scale")):
        with pytest.raises(errors.ConfigError, match=expected):
            two_domain.TwoDomainBatches(a, b, batch_size=2, size=SIZE, seed=0, preprocess=mode)
        with pytest.raises(errors.ConfigError, match=expected):
            two_domain.eval_images(a, SIZE, preprocess=mode)


# ----------------------------------------------------------------------------------------------
# The config field: the trainer reads it, old runs' configs get the default, it is not safe mid-run.
# ----------------------------------------------------------------------------------------------


def test_the_trainer_reads_data_preprocess(tmp_path):
    root = _write(tmp_path / "trainer", NON_SQUARE)
    config = cyclegan.get_config("smoke")
    config.data.dataset, config.num_devices, config.data.preprocess = f"folder:{root}", 1, "crop"
    mesh = parallel.make_mesh(1)
    trainer = registry.get("cyclegan").trainer(config, str(tmp_path / "run"), mesh)
    trainer.start({})
    try:
        got = next(trainer.batches)
    finally:
        trainer.close()
    expected = _stream_examples(root, "crop", range(config.batch_size), seed=config.seed)
    for name in "AB":
        np.testing.assert_array_equal(np.asarray(got[name])[0], expected[name])
    test_a = _files(root, "testA")
    np.testing.assert_allclose(
        np.asarray(trainer.sample_inputs["A"]),
        np.stack([_reference_test(f, "crop") for f in test_a]) / 127.5 - 1,
        atol=1e-6,
    )
    assert isinstance(trainer, translation.Trainer)


def test_stored_translation_configs_upgrade_to_the_default_and_a_change_is_refused():
    for method, config in (("cyclegan", cyclegan.get_config()), ("nicegan", nicegan.get_config())):
        upgraded = contract.upgrade({"method": method, "data": {"resolution": 64}})
        assert upgraded["data"] == {"resolution": 64, "preprocess": config.data.preprocess}
        safe = contract.SAFE_TO_CHANGE | frozenset(registry.get(method).safe_to_change)
        assert "data.preprocess" not in safe
        new = upgraded | {"data": {"resolution": 64, "preprocess": "crop"}}
        with pytest.raises(
            errors.ConfigError, match="data.preprocess: 'resize_and_crop' -> 'crop'"
        ):
            contract.check_contract(upgraded, new, safe, 3, "w")
