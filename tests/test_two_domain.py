"""Two-domain sources and batches (`data/two_domain.py`) and the emoji pair (`data/prepare.py`)."""

import io
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image

from jaxgan.core import errors, parallel
from jaxgan.data import prepare, two_domain

# ----------------------------------------------------------------------------------------------
# A folder in the CycleGAN layout, and a numpy/PIL reference of the reference's transforms.
# ----------------------------------------------------------------------------------------------

SIZES = {"trainA": 5, "trainB": 7, "testA": 2, "testB": 3}


def _write_layout(root, sizes=SIZES, same_images=False):
    """PNG files root/<split>/<split>_<i>.png of random RGB pixels, 20×30 (H×W: the resize squashes).

    same_images: every split holds the same pixels under the same names (image i of trainA and of
    trainB are equal), so two streams over A and B differ only by their order and crops.
    """
    for split, count in sizes.items():
        os.makedirs(root / split)
        for i in range(count):
            seed = i if same_images else sum(map(ord, split)) * 100 + i
            pixels = np.random.default_rng(seed).integers(0, 256, (20, 30, 3), dtype=np.uint8)
            name = f"{i}.png" if same_images else f"{split}_{i}.png"
            Image.fromarray(pixels).save(root / split / name)
    return root


def _reference_stream(files, seed, domain, positions, size):
    """The documented stream, computed without two_domain: example p of domain d is the file at
    offset p % n of the permutation `default_rng([s_d, p // n])` (pipeline.Batches' rule) with
    s_d = SeedSequence([seed, d]); PIL bicubic resize to round(size·286/256)², then a crop at
    (top, left) and a flip drawn by `default_rng([s_d, 1, p])`."""
    s_d = int(np.random.SeedSequence([seed, domain]).generate_state(1)[0])
    load = round(size * 286 / 256)
    out = []
    for p in positions:
        index = np.random.default_rng([s_d, p // len(files)]).permutation(len(files))[
            p % len(files)
        ]
        rng = np.random.default_rng([s_d, 1, p])
        top, left = rng.integers(0, load - size + 1, size=2)
        flip = rng.random() < 0.5
        with Image.open(files[index]) as image:
            big = np.asarray(image.convert("RGB").resize((load, load), Image.BICUBIC))
        crop = big[top : top + size, left : left + size]
        out.append(crop[:, ::-1] if flip else crop)
    return np.stack(out)


def _files(root, split):
    return sorted(str(root / split / f) for f in os.listdir(root / split))


def test_load_size_scales_the_references_286_for_256():
    assert [two_domain.load_size(s) for s in (256, 128, 64, 32, 16)] == [286, 143, 72, 36, 18]


def test_folder_batches_are_the_reference_train_transform_of_independent_streams(tmp_path):
    root = _write_layout(tmp_path / "pair")
    a, b = two_domain.open_domains(f"folder:{root}")
    assert (len(a), len(b)) == (5, 7)
    stream = two_domain.TwoDomainBatches(a, b, batch_size=4, size=16, seed=7, steps=2)
    assert stream.epoch_size == 7
    batches = [next(stream) for _ in range(2)]  # 16 examples: A wraps into its 4th epoch
    stream.close()
    assert batches[0]["A"].shape == (2, 4, 16, 16, 3) and batches[0]["A"].dtype == np.uint8
    assert stream.cursor == 16
    for d, name in enumerate("AB"):
        got = np.concatenate([x[name].reshape(-1, 16, 16, 3) for x in batches])
        expected = _reference_stream(_files(root, f"train{name}"), 7, d, range(16), 16)
        np.testing.assert_array_equal(got, expected)
    # The draws are not degenerate: both flips and several offsets in [0, 18 - 16] occur.
    draws = [two_domain.crop_params(123, p, 16) for p in range(40)]
    assert {f for *_, f in draws} == {True, False}
    assert {t for t, _, _ in draws} == {0, 1, 2} and {left for _, left, _ in draws} == {0, 1, 2}


def test_a_and_b_are_drawn_independently(tmp_path):
    """Identical images in trainA and trainB: the two streams still differ in order and crop, and
    domain A's stream does not depend on what domain B holds."""
    root = _write_layout(tmp_path / "same", {"trainA": 6, "trainB": 6}, same_images=True)
    a, b = two_domain.open_domains(f"folder:{root}")
    stream = two_domain.TwoDomainBatches(a, b, batch_size=6, size=16, seed=0)
    batch = next(stream)
    order_a = stream.domains["A"].indices(0, 6)
    order_b = stream.domains["B"].indices(0, 6)
    assert sorted(order_a) == sorted(order_b) == list(range(6)) and list(order_a) != list(order_b)
    assert not np.array_equal(batch["A"], batch["B"])
    crops = [
        [two_domain.crop_params(s.seed, p, 16) for p in range(6)] for s in stream.domains.values()
    ]
    assert crops[0] != crops[1]
    stream.close()
    other = _write_layout(tmp_path / "other", {"trainA": 6, "trainB": 3}, same_images=True)
    other_a, other_b = two_domain.open_domains(f"folder:{other}")
    alone = two_domain.TwoDomainBatches(other_a, other_b, batch_size=6, size=16, seed=0)
    np.testing.assert_array_equal(next(alone)["A"], batch["A"])
    alone.close()


def test_resume_at_step_k_equals_the_uninterrupted_stream_and_processes_split_it(tmp_path):
    root = _write_layout(tmp_path / "pair")
    a, b = two_domain.open_domains(f"folder:{root}")
    whole = two_domain.TwoDomainBatches(a, b, batch_size=4, size=16, seed=3)
    uninterrupted = [next(whole) for _ in range(5)]
    whole.close()
    k = 3
    resumed = two_domain.TwoDomainBatches(a, b, batch_size=4, size=16, seed=3, cursor=k * 4)
    for expected in uninterrupted[k:]:
        got = next(resumed)
        for name in "AB":
            np.testing.assert_array_equal(got[name], expected[name])
    resumed.close()
    parts = [
        two_domain.TwoDomainBatches(a, b, 4, 16, seed=3, process_index=p, process_count=2)
        for p in range(2)
    ]
    halves = [next(p) for p in parts]
    for name in "AB":
        np.testing.assert_array_equal(
            np.concatenate([h[name] for h in halves], axis=1), uninterrupted[0][name]
        )
    for p in parts:
        p.close()


def test_global_batches_are_sharded_over_the_mesh(tmp_path):
    root = _write_layout(tmp_path / "pair")
    a, b = two_domain.open_domains(f"folder:{root}")
    mesh = parallel.make_mesh()
    stream = two_domain.TwoDomainBatches(
        a, b, batch_size=8, size=16, seed=1, sharding=parallel.sharded_on(mesh, 1)
    )
    batch = next(stream)
    stream.close()
    local = next(two_domain.TwoDomainBatches(a, b, batch_size=8, size=16, seed=1, prefetch=0))
    for name in "AB":
        assert batch[name].shape == (1, 8, 16, 16, 3)
        assert {s.data.shape for s in batch[name].addressable_shards} == {(1, 1, 16, 16, 3)}
        np.testing.assert_array_equal(np.asarray(batch[name]), local[name])


def test_test_split_is_resized_in_order_without_crop_or_flip(tmp_path):
    root = _write_layout(tmp_path / "pair")
    test_a, test_b = two_domain.open_domains(f"folder:{root}", "test")
    assert (len(test_a), len(test_b)) == (2, 3)
    got = two_domain.eval_images(test_b, 16)
    expected = [
        np.asarray(Image.open(f).convert("RGB").resize((16, 16), Image.BICUBIC))
        for f in _files(root, "testB")
    ]
    np.testing.assert_array_equal(got, np.stack(expected))
    assert two_domain.eval_images(test_a, 8, channels=1).shape == (2, 8, 8, 1)


def test_tfds_cycle_gan_through_mock_data():
    """`tfds.testing.mock_data` serves cycle_gan/horse2zebra's four splits offline from the
    builder's features alone (random images of varying size), without TensorFlow."""
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=6):
        a, b = two_domain.open_domains("tfds:cycle_gan/horse2zebra")
        test_a, test_b = two_domain.open_domains("tfds:cycle_gan/horse2zebra", "test")
        assert [len(s) for s in (a, b, test_a, test_b)] == [6, 6, 6, 6]
        assert a.channels == 3
        stream = two_domain.TwoDomainBatches(a, b, batch_size=3, size=16, seed=5)
        batch = next(stream)
        stream.close()
        for d, (name, source) in enumerate((("A", a), ("B", b))):
            s_d = int(np.random.SeedSequence([5, d]).generate_state(1)[0])
            order = np.random.default_rng([s_d, 0]).permutation(6)[:3]
            for p, index in enumerate(order):
                raw = source[int(index)][0]
                assert raw.ndim == 3 and raw.shape[-1] == 3
                rng = np.random.default_rng([s_d, 1, p])
                top, left = rng.integers(0, 3, size=2)
                big = np.asarray(Image.fromarray(raw).resize((18, 18), Image.BICUBIC))
                crop = big[top : top + 16, left : left + 16]
                expected = crop[:, ::-1] if rng.random() < 0.5 else crop
                np.testing.assert_array_equal(batch[name][0, p], expected)
        np.testing.assert_array_equal(
            two_domain.eval_images(test_a, 16)[2],
            np.asarray(Image.fromarray(test_a[2][0]).resize((16, 16), Image.BICUBIC)),
        )
    assert "tensorflow" not in sys.modules


@pytest.mark.parametrize(
    "make, dataset, split, problem",
    [
        (None, "folder:{root}/nowhere", "train", r"nowhere does not exist.*trainA/, trainB/"),
        ("no_testB", "folder:{root}", "test", r"has no testB/ sub-folder \(its sub-folders: testA, "),
        ("empty_trainB", "folder:{root}", "train", r"(?s)its trainB/ split is unusable:.*contains "
         r"no images.*Put the images of that domain in .*trainB"),
        (None, "folder:{root}", "val", r"split 'val' is not 'train' or 'test'"),
        (None, "tfds:cycle_gan/horse2zebra:trainA", "train", r"names split 'trainA'.*Use tfds:cycle_gan/horse2zebra"),
        (None, "folder:{root}:n=3", "train", r"':n=K' and ':class=C'.*drop the field"),
        (None, "mnist5k", "train", r"expected 'folder:PATH' \(PATH holding trainA/"),
    ],
)  # fmt: skip
def test_errors_name_the_input_the_problem_and_the_fix(tmp_path, make, dataset, split, problem):
    root = _write_layout(tmp_path / "pair", {"trainA": 1, "trainB": 1, "testA": 1})
    if make == "empty_trainB":
        for f in os.listdir(root / "trainB"):
            os.remove(root / "trainB" / f)
    with pytest.raises(errors.UserError, match=problem):
        two_domain.open_domains(dataset.format(root=root), split)


# ----------------------------------------------------------------------------------------------
# The emoji pair, prepared from fixture tarballs laid out as the npm packages are.
# ----------------------------------------------------------------------------------------------

# 1f600 and 1f443 (with two skin tones) fall in test, the rest in train (golden: the split rule
# defines the dataset; change it only on purpose, and these names with it).
SHARED = [
    "1f600",
    "1f443",
    "1f443-1f3fb",
    "1f443-1f3fd",
    "1f44b",
    "1f44b-1f3ff",
    "0023-fe0f-20e3",
    "1f431",
]
ONLY = {"google": "1f9ff", "twitter": "1fae0"}
COLOUR = (200, 100, 0)
# package/emoji.json as the packages have it: skin variations nested in their parent's entry with
# no category of their own (16.0.0), except 1f44b-1f3ff, given one here to show that it wins.
EMOJI_JSON = [
    {"image": "0023-fe0f-20e3.png", "category": "Symbols"},
    {"image": "1f431.png", "category": "Animals & Nature"},
    {
        "image": "1f443.png",
        "category": "People & Body",
        "skin_variations": {
            "1F3FB": {"image": "1f443-1f3fb.png"},
            "1F3FD": {"image": "1f443-1f3fd.png"},
        },
    },
    {
        "image": "1f44b.png",
        "category": "People & Body",
        "skin_variations": {"1F3FF": {"image": "1f44b-1f3ff.png", "category": "Activities"}},
    },
    {"image": "1f600.png", "category": "Smileys & Emotion"},
    {"image": "1f9ff.png", "category": "Objects"},
    {"image": "1fae0.png", "category": "Smileys & Emotion"},
]
# categories.json of the SHARED names, written out by hand from EMOJI_JSON.
CATEGORIES = {
    "0023-fe0f-20e3.png": "Symbols",
    "1f431.png": "Animals & Nature",
    "1f443.png": "People & Body",
    "1f443-1f3fb.png": "People & Body",
    "1f443-1f3fd.png": "People & Body",
    "1f44b.png": "People & Body",
    "1f44b-1f3ff.png": "Activities",
    "1f600.png": "Smileys & Emotion",
}


def _emoji_pixels(name, style):
    """RGBA 64×64: COLOUR everywhere, alpha 255 in the top rows, 0 in the bottom rows, 128 between;
    a per-name, per-style mark in pixel [0, 0] keeps images distinct."""
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = COLOUR
    rgba[:20, :, 3], rgba[20:40, :, 3], rgba[40:, :, 3] = 255, 128, 0
    rgba[0, 0, :3] = [sum(map(ord, name)) % 256, 0 if style == "google" else 255, 7]
    return rgba


def _write_tarball(path, style, names, palette_name=None, emoji_json=EMOJI_JSON):
    """The npm package's layout: package/img/<style>/64/<name>.png, package/emoji.json (left out
    when emoji_json is None) and a README."""
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            image = Image.fromarray(_emoji_pixels(name, style))
            if name == palette_name:  # a palette PNG with tRNS, as some of Twemoji's are
                image = image.quantize(colors=16)  # RGBA -> P keeps alpha in the palette
            buffer = io.BytesIO()
            image.save(buffer, "PNG")
            info = tarfile.TarInfo(f"package/img/{style}/64/{name}.png")
            info.size = len(buffer.getvalue())
            tar.addfile(info, io.BytesIO(buffer.getvalue()))
        files = {"package/README.md": b"emoji-datasource fixture"}
        if emoji_json is not None:
            files["package/emoji.json"] = json.dumps(emoji_json).encode()
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return str(path)


@pytest.fixture
def tarballs(tmp_path):
    return {
        style: _write_tarball(
            tmp_path / f"emoji-datasource-{style}-16.0.0.tgz",
            style,
            SHARED + [ONLY[style]],
            palette_name="1f431" if style == "twitter" else None,
        )
        for style in ("google", "twitter")
    }


def test_emoji_split_is_deterministic_by_codepoint_with_skin_tones_together():
    assert prepare.emoji_group("1f443-1f3fd.png") == "1f443"
    assert prepare.emoji_group("0023-fe0f-20e3.png") == "0023-20e3"
    assert [prepare.emoji_split(f"{n}.png") for n in SHARED] == ["test"] * 4 + ["train"] * 4


def test_prepare_emoji_composites_on_white_splits_and_keeps_the_pairing(tmp_path, tarballs):
    out = tmp_path / "emoji"
    manifest = prepare.prepare_emoji(str(out), tarballs["google"], tarballs["twitter"])
    assert manifest["counts"] == {"trainA": 4, "trainB": 4, "testA": 4, "testB": 4}
    assert manifest["only_in"] == {"google": 1, "twitter": 1}
    for split in ("train", "test"):
        names_a, names_b = (
            sorted(os.listdir(out / f"{split}A")),
            sorted(os.listdir(out / f"{split}B")),
        )
        assert (
            names_a
            == names_b
            == sorted(f"{n}.png" for n in SHARED if prepare.emoji_split(n) == split)
        )
    # Alpha compositing on white, by hand: c·α/255 + 255·(1 − α/255), rounded; α = 128 gives
    # 200·128/255 + 127 = 227.39 -> 227, 100·128/255 + 127 = 177.20 -> 177, 0 + 127 = 127.
    image = np.asarray(Image.open(out / "trainA" / "1f44b.png"))
    assert image.shape == (64, 64, 3)
    np.testing.assert_array_equal(image[1:20].reshape(-1, 3)[0], COLOUR)
    assert set(map(tuple, image[20:40].reshape(-1, 3))) == {(227, 177, 127)}
    assert set(map(tuple, image[40:].reshape(-1, 3))) == {(255, 255, 255)}
    palette = np.asarray(Image.open(out / "trainB" / "1f431.png"))  # the palette PNG: same rule
    assert set(map(tuple, palette[40:].reshape(-1, 3))) == {(255, 255, 255)}
    # The pairing: same name, same emoji, the domain's style (the fixture's mark in [0, 0]).
    a, b = two_domain.open_domains(f"folder:{out}", "test")
    ia, ib = two_domain.pairs(a, b)
    assert len(ia) == 4
    for i, j in zip(ia, ib):
        assert os.path.basename(a.files[i]) == os.path.basename(b.files[j])
        assert a[i][0][0, 0, 0] == b[j][0][0, 0, 0] and (a[i][0][0, 0, 1], b[j][0][0, 0, 1]) == (
            0,
            255,
        )
    # Deterministic: a second preparation writes the same files, at a smaller size by Lanczos.
    again = prepare.prepare_emoji(str(tmp_path / "again"), tarballs["google"], tarballs["twitter"])
    assert again["counts"] == manifest["counts"]
    for split in ("trainA", "testB"):
        for name in os.listdir(out / split):
            assert (out / split / name).read_bytes() == (
                tmp_path / "again" / split / name
            ).read_bytes()
    # Each kept name's category (a skin variation's own, else its parent's), recorded in prepare.json.
    with open(out / "categories.json") as f:
        assert json.load(f) == CATEGORIES
    assert manifest["categories"]["file"] == "categories.json"
    assert manifest["categories"]["counts"] == {
        c: list(CATEGORIES.values()).count(c) for c in prepare.EMOJI_CATEGORIES
    }
    assert sum(manifest["categories"]["counts"].values()) == len(SHARED)
    assert (out / "categories.json").read_bytes() == (
        tmp_path / "again" / "categories.json"
    ).read_bytes()
    prepare.prepare_emoji(str(tmp_path / "small"), tarballs["google"], tarballs["twitter"], size=16)
    small = np.asarray(Image.open(tmp_path / "small" / "testB" / "1f600.png"))
    big = np.asarray(Image.open(out / "testB" / "1f600.png"))
    np.testing.assert_array_equal(
        small, np.asarray(Image.fromarray(big).resize((16, 16), Image.LANCZOS))
    )


@pytest.mark.slow
def test_prepare_command_uses_the_npm_cache_and_prints_the_counts(tmp_path, tarballs, monkeypatch):
    cache = os.path.dirname(tarballs["google"])  # tarballs named as `npm pack` names them
    monkeypatch.setattr(prepare.shutil, "which", lambda name: None)  # npm never runs: a cache hit
    assert prepare.npm_pack("emoji-datasource-twitter", "16.0.0", cache) == tarballs["twitter"]
    with pytest.raises(
        errors.DataError,
        match=r"(?s)needs npm, which is not on PATH.*apt-get install npm.*npm pack emoji-datasource-google@16\.0\.0.*--google=PATH",
    ):
        prepare.npm_pack("emoji-datasource-google", "16.0.0", str(tmp_path / "empty_cache"))
    result = subprocess.run(
        [sys.executable, "-m", "jaxgan.data.prepare", "emoji", f"--out={tmp_path / 'cli'}", f"--cache_dir={cache}"],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"trainA": 4, "trainB": 4, "testA": 4, "testB": 4' in result.stdout


def test_prepare_errors_name_the_input_and_the_fix(tmp_path, tarballs):
    not_tar = tmp_path / "x.tgz"
    not_tar.write_bytes(b"not a tarball")
    with pytest.raises(errors.DataError, match=r"--google=.*x\.tgz: cannot read it as a tarball"):
        prepare.prepare_emoji(str(tmp_path / "o1"), str(not_tar), tarballs["twitter"])
    with pytest.raises(
        errors.DataError,
        match=r"has no package/img/google/64/\*\.png: it is not the emoji-datasource-google",
    ):
        prepare.prepare_emoji(str(tmp_path / "o2"), tarballs["twitter"], tarballs["twitter"])
    with pytest.raises(errors.ConfigError, match=r"--size=128: .*pick a size from 1 to 64"):
        prepare.prepare_emoji(
            str(tmp_path / "o3"), tarballs["google"], tarballs["twitter"], size=128
        )
    no_json = _write_tarball(tmp_path / "no_json.tgz", "google", SHARED, emoji_json=None)
    with pytest.raises(
        errors.DataError, match=r"--google=.*no_json\.tgz: cannot read package/emoji\.json"
    ):
        prepare.prepare_emoji(str(tmp_path / "o5"), no_json, tarballs["twitter"])
    moved = [dict(e, category="Objects") if e["image"] == "1f600.png" else e for e in EMOJI_JSON]
    other = _write_tarball(tmp_path / "other.tgz", "twitter", SHARED, emoji_json=moved)
    with pytest.raises(
        errors.DataError,
        match=r"1f600\.png: package/emoji\.json gives it the categories \['Objects', 'Smileys & Emotion'\]",
    ):
        prepare.prepare_emoji(str(tmp_path / "o6"), tarballs["google"], other)
    prepare.prepare_emoji(str(tmp_path / "o4"), tarballs["google"], tarballs["twitter"])
    with pytest.raises(
        errors.DataError, match=r"trainA already holds 4 files.*new --out, or delete"
    ):
        prepare.prepare_emoji(str(tmp_path / "o4"), tarballs["google"], tarballs["twitter"])
