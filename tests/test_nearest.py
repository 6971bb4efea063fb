"""`python -m jaxgan.experiments nearest` (jaxgan/experiments/nearest.py): the exact search
against a brute-force float64 computation (every pair's difference squared and summed), and the
PNG's tiles against the training images the JSON names."""

import json
import pathlib

import ml_collections
import numpy as np
import pytest
from PIL import Image

from jaxgan import data
from jaxgan.eval import features, imagesets, sampling
from jaxgan.eval.options import Options
from jaxgan.experiments import nearest


def brute_force(queries, references, m, scale=1.0):
    """Each query's m nearest references: sum((q - r)^2) per pair in float64, a stable sort."""
    q = np.asarray(queries, np.float64).reshape(len(queries), -1)
    r = np.asarray(references, np.float64).reshape(len(references), -1)
    d2 = ((q[:, None, :] - r[None, :, :]) ** 2).sum(-1)
    indices = np.argsort(d2, axis=1, kind="stable")[:, :m]
    return indices, np.sqrt(np.take_along_axis(d2, indices, axis=1)) / scale


def test_pixel_search_is_exact_on_uint8_images_and_finds_planted_copies(monkeypatch):
    rng = np.random.RandomState(0)
    train = rng.randint(0, 256, (300, 6, 6, 3)).astype(np.uint8)
    fakes = rng.randint(0, 256, (7, 6, 6, 3)).astype(np.uint8)
    fakes[2] = train[123]  # a memorised image: distance 0 to it
    fakes[4] = np.clip(train[45].astype(int) + 1, 0, 255)  # a near copy
    monkeypatch.setattr(nearest, "BLOCK_VALUES", 108 * 50)  # 50 images a block: 6 blocks
    indices, distances = nearest.nearest_neighbours(fakes, train, 4, scale=255.0)
    want_indices, want_distances = brute_force(fakes, train, 4, scale=255.0)
    np.testing.assert_array_equal(indices, want_indices)
    # Squared distances of uint8 images are integers: float64 holds them exactly.
    np.testing.assert_array_equal(distances, want_distances)
    assert (indices[2, 0], distances[2, 0]) == (123, 0.0)
    assert indices[4, 0] == 45


def test_feature_search_equals_brute_force_and_ties_go_to_the_lower_index():
    rng = np.random.RandomState(1)
    train = rng.randn(500, 128).astype(np.float32)
    train[400] = train[17]  # an exact tie: 17 comes first
    queries = rng.randn(5, 128).astype(np.float32)
    queries[3] = train[17] + 1e-3
    indices, distances = nearest.nearest_neighbours(queries, train, 6)
    want_indices, want_distances = brute_force(queries, train, 6)
    np.testing.assert_array_equal(indices, want_indices)
    np.testing.assert_allclose(distances, want_distances, rtol=1e-9, atol=1e-9)
    assert list(indices[3, :2]) == [17, 400]


def tiles(png: np.ndarray, tile: int, rows: int, columns: int) -> np.ndarray:
    """[rows, columns, tile, tile, C] of a `run_files.make_grid` picture (padding 2)."""
    png = png[..., None] if png.ndim == 2 else png
    return np.stack([
        np.stack([png[2 + r * (tile + 2):][:tile, 2 + c * (tile + 2):][:, :tile]
                  for c in range(columns)])
        for r in range(rows)
    ])  # fmt: skip


def test_picture_places_each_fake_and_the_images_its_row_names():
    rng = np.random.RandomState(2)
    train = rng.randint(0, 256, (20, 5, 5, 1)).astype(np.uint8)
    fakes = rng.randint(0, 256, (3, 5, 5, 1)).astype(np.uint8)
    rows = [
        {"pixel": {"indices": [i, i + 1]}, "feature": {"indices": [19 - i, 0]}} for i in range(3)
    ]
    layout = nearest.tile_layout(2)
    got = tiles(nearest.picture(fakes, train, rows, 2), 5, 3, layout["columns"])
    for i, row in enumerate(rows):
        np.testing.assert_array_equal(got[i, layout["fake"]], fakes[i])
        for space in ("pixel", "feature"):
            for column, index in zip(layout[space], row[space]["indices"]):
                np.testing.assert_array_equal(got[i, column], train[index])
        assert (got[i, 1] == 255).all() and (got[i, 4] == 255).all()  # the blanks


@pytest.fixture(scope="module")
def unconditional_run(make_smoke_run):
    return make_smoke_run("nearest_run")


def test_a_smoke_run_through_the_command_line(
    unconditional_run, tmp_path, capsys, run_experiments_cli
):
    """The JSON's indices and distances against brute force over the run's own fakes and training
    images (pixels and mnist_cnn features), and the PNG's tiles against the images they name."""
    workdir, config = unconditional_run
    argv = ["nearest", f"--workdir={workdir}", "--num_fakes=3", "--num_neighbours=2"]
    run_experiments_cli([*argv, f"--cache_dir={tmp_path}", "--batch_size=8"])
    out = capsys.readouterr().out
    assert "nearest.json and .png" in out
    table = json.loads((pathlib.Path(workdir) / "eval" / "nearest.json").read_text())
    assert (table["checkpoint"], table["n_train"], table["feature_network"]["name"]) == (
        3, 4000, "mnist_cnn"
    )  # fmt: skip

    fakes, _, _ = sampling.sample_checkpoint(workdir, config, "latest", 3, 0, 8)
    source, channels, _ = data.open_run_source(config, "train")
    train, _ = imagesets.load_images(source, np.arange(len(source)), 32, channels)
    network = features.load("mnist_cnn", 32, 1)
    for space, (want_indices, want_distances) in {
        "pixel": brute_force(fakes, train, 2, scale=255.0),
        "feature": brute_force(
            network.extract(fakes)["features"], network.extract(train)["features"], 2
        ),
    }.items():
        got = table["rows"]
        np.testing.assert_array_equal([r[space]["indices"] for r in got], want_indices)
        np.testing.assert_allclose(
            [r[space]["distances"] for r in got], want_distances, rtol=1e-9, atol=1e-6
        )

    test_source = data.open_run_source(config, "test")[0]
    test, _ = imagesets.load_images(test_source, np.arange(3), 32, channels)
    assert table["held_out"]["n"] == 3
    np.testing.assert_allclose(
        table["held_out"]["pixel"], brute_force(test, train, 1, scale=255.0)[1][:, 0], rtol=1e-12
    )
    want_feature = brute_force(
        network.extract(test)["features"], network.extract(train)["features"], 1
    )[1][:, 0]
    np.testing.assert_allclose(table["held_out"]["feature"], want_feature, rtol=1e-9, atol=1e-6)
    printed = (
        f"| feature | {nearest.summary(want_distances[:, 0])} | {nearest.summary(want_feature)} |"
    )
    assert printed in out

    layout = table["png_columns"]
    png = np.asarray(Image.open(pathlib.Path(workdir) / "eval" / "nearest.png"))
    got_tiles = tiles(png, 32, 3, layout["columns"])
    for i, row in enumerate(table["rows"]):
        np.testing.assert_array_equal(got_tiles[i, layout["fake"]], fakes[i])
        for space in ("pixel", "feature"):
            for column, index in zip(layout[space], row[space]["indices"]):
                np.testing.assert_array_equal(got_tiles[i, column], train[index])


def test_a_folder_has_no_held_out_images(tmp_path):
    config = ml_collections.ConfigDict({"data": {"dataset": f"folder:{tmp_path}"}})
    assert nearest.held_out_source(config)[0] is None
    table = {"held_out": None, "n_train": 4, "checkpoint": 7, "num_fakes": 1,
             "rows": [{"pixel": {"distances": [2.0]}, "feature": {"distances": [0.5]}}]}  # fmt: skip
    assert nearest.markdown(table).splitlines()[2:] == [
        "| space | 1 fakes |", "|---|---:|",
        "| pixel | 2.000 [2.000, 2.000] |", "| feature | 0.500 [0.500, 0.500] |",
    ]  # fmt: skip


def test_a_translation_run_is_refused_with_the_command_to_use(translation_run):
    from jaxgan.core import errors

    workdir, *_ = translation_run
    with pytest.raises(errors.ConfigError, match="python -m jaxgan.translate"):
        nearest.nearest(workdir, Options(progress=False), 2, 1)
