"""FID statistics files (`--save_stats`, `--real=stats:FILE`) and the Inception weights download.

The equality tests use the shipped emoji_cnn (32x32 RGB, like the folders here, which are read as
RGB), which runs in seconds on a CPU: the statistics path is the same for every network. The Inception-specific parts (the weights' SHA-256 in the metadata,
`--resize`) are checked on a stand-in weights file, since the real weights are not here. The
references are independent: the network applied to the PNGs read back with PIL, `np.mean` /
`np.cov`, and pytorch-fid's formula with `scipy.linalg.sqrtm`.
"""

import json
import os
import pathlib
import subprocess
import sys
import urllib.request
import warnings

import numpy as np
import pytest
import scipy.linalg
from PIL import Image

from jaxgan import data
from jaxgan.core import errors, npz_weights
from jaxgan.eval import features, fid, fid_stats, imagesets, inception, runner, scoring
from jaxgan.eval.options import Options

REPO = pathlib.Path(__file__).parents[1]
FIXTURES = REPO / "tests" / "fixtures"
NUM_REAL, NUM_FAKE = 300, 200  # > 128 emoji_cnn features: neither covariance is singular
NETWORK = "emoji_cnn"


def _write_folder(root: pathlib.Path, digits: np.ndarray, seed: int) -> pathlib.Path:
    """mnist5k digits [N, 32, 32, 1] as RGB PNGs, each in a seeded random colour."""
    root.mkdir()
    colours = np.random.RandomState(seed).uniform(0.2, 1.0, (len(digits), 1, 1, 3))
    for i, image in enumerate((digits * colours).astype(np.uint8)):
        Image.fromarray(image).save(root / f"{i:04d}.png")
    return root


def _read_folder(root: pathlib.Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(root.glob("*.png"))])


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(real folder, fake folder): mnist5k training and test digits as coloured 32x32 PNGs."""
    root = tmp_path_factory.mktemp("sets")
    real = _write_folder(root / "real", data.open_source("mnist5k", "train").images[:NUM_REAL], 0)
    fake = _write_folder(root / "fake", data.open_source("mnist5k", "test").images[:NUM_FAKE], 1)
    return real, fake


@pytest.fixture(scope="module")
def reference_statistics(folders):
    """(mu, sigma) of each folder's emoji_cnn features, from the PNGs read back with PIL."""
    network = features.load(NETWORK, 32, 3)

    def statistics(folder):
        feats = network.extract(_read_folder(folder))["features"].astype(np.float64)
        return feats.mean(axis=0), np.cov(feats, rowvar=False)

    return [statistics(folder) for folder in folders]


def _options(tmp_path, **changes) -> Options:
    return Options(
        cache_dir=str(tmp_path / "cache"), progress=False, **{"feature_network": NETWORK, **changes}
    )


def _pytorch_fid(mu1, sigma1, mu2, sigma2) -> float:
    """pytorch-fid's `calculate_frechet_distance`: the non-symmetric sqrtm of sigma1 sigma2."""
    diff = mu1 - mu2
    with warnings.catch_warnings():  # dead ReLU units make both covariances singular
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


# ------------------------------------------------------------------------ the round trip


def test_saved_statistics_give_the_folders_fid(folders, reference_statistics, tmp_path):
    real, fake = folders
    path = tmp_path / "stats" / "real.npz"
    (from_images,) = runner.evaluate_sets(
        str(real), str(fake), ["fid"], _options(tmp_path, save_stats=str(path))
    )
    auto = _options(tmp_path, feature_network="auto")  # the file's network
    (from_file,) = runner.evaluate_sets(f"stats:{path}", str(fake), ["fid"], auto)
    assert from_file["value"] == pytest.approx(from_images["value"], rel=1e-6, abs=1e-6)
    assert from_file["value"] == pytest.approx(_pytorch_fid(*reference_statistics[0],
                                               *reference_statistics[1]), rel=1e-6)  # fmt: skip
    # The row names the real side as given, and how its features were made (the file's).
    assert from_file["real"] == f"stats:{path}" and from_file["n_real"] == NUM_REAL
    same = ("feature_network", "feature_weights", "resize", "feature_code", "n_fake", "fake")
    assert {k: from_file[k] for k in same} == {k: from_images[k] for k in same}
    assert from_file["feature_network"] == NETWORK


def test_the_reals_statistics_alone_are_those_two_set_mode_writes(folders, tmp_path):
    real, fake = folders
    beside, alone = tmp_path / "beside.npz", tmp_path / "alone.npz"
    runner.evaluate_sets(str(real), str(fake), ["fid"], _options(tmp_path, save_stats=str(beside)))
    runner.save_real_statistics(str(real), _options(tmp_path, save_stats=str(alone)))
    with np.load(beside) as a, np.load(alone) as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


def test_the_file_is_pytorch_fids_format_with_metadata(folders, reference_statistics, tmp_path):
    real, fake = folders
    path = tmp_path / "real.npz"
    runner.evaluate_sets(str(real), str(fake), ["fid"], _options(tmp_path, save_stats=str(path)))
    with np.load(path, allow_pickle=False) as stored:  # no pickle: plain arrays and 0-d strings
        arrays = {k: stored[k] for k in stored.files}
    mu, sigma = reference_statistics[0]
    assert arrays["mu"].dtype == arrays["sigma"].dtype == np.float64
    assert arrays["mu"].shape == (128,) and arrays["sigma"].shape == (128, 128)
    np.testing.assert_allclose(arrays["mu"], mu, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(arrays["sigma"], sigma, rtol=1e-6, atol=1e-9)
    metadata = {k: v.item() for k, v in arrays.items() if k not in ("mu", "sigma")}
    assert all(arrays[k].ndim == 0 for k in metadata)
    assert metadata == {
        "format": "jaxgan/fid_stats/v1",
        "feature_network": NETWORK,
        "weights_sha256": inception.sha256_of_file(features.domain_weights_path(NETWORK)),
        "resize": "legacy",
        "feature_code": features.CODE_VERSION[NETWORK],
        "resolution": 32,
        "channels": 3,
        "n": NUM_REAL,
        "real": f"folder:{real}",
    }


def test_a_file_without_metadata_is_trusted(folders, reference_statistics, tmp_path, caplog):
    """pytorch-fid's / TTUR's own files: only mu and sigma; the FID is pytorch-fid's formula."""
    (mu, sigma), (fake_mu, fake_sigma) = reference_statistics
    path = tmp_path / "ttur.npz"
    np.savez(path, mu=mu, sigma=sigma)
    options = _options(tmp_path)  # the network is given: such a file does not name it
    (row,) = runner.evaluate_sets(f"stats:{path}", str(folders[1]), ["fid"], options)
    assert row["value"] == pytest.approx(_pytorch_fid(mu, sigma, fake_mu, fake_sigma), rel=1e-6)
    assert row["real"] == f"stats:{path}" and row["n_real"] is None
    assert f"{path} has no metadata" in caplog.text
    # With the network left to auto, such a file is Inception pool3 statistics.
    stats = imagesets.stats_set(f"stats:{path}")
    assert stats.metadata is None
    assert fid_stats.options_for(stats, [], Options()).feature_network == "inception_v3"


# ----------------------------------------------------------------------------- refusals


@pytest.fixture
def stand_in_weights(tmp_path):
    """An Inception weights file that records the SHA-256 of the .pth it was converted from (no
    tensors: nothing here loads them), and that SHA-256."""
    digest = "ab" * 32
    path = tmp_path / "inception.npz"
    npz_weights.save(path, {}, inception.FORMAT_TAG, records={"source_sha256": digest})
    return path, digest


def _stats_file(path, **metadata):
    made = {
        "feature_network": "inception_v3", "weights_sha256": "", "resize": "legacy",
        "feature_code": features.CODE_VERSION["inception_v3"], "resolution": 32, "channels": 1,
        "n": 1000, "real": "somewhere",
    }  # fmt: skip
    made.update(metadata)
    fid.save_statistics(path, np.zeros(4), np.eye(4), made)
    return f"stats:{path}"


def test_inception_metadata_names_the_source_weights(stand_in_weights, tmp_path):
    weights, digest = stand_in_weights
    assert fid_stats.weights_sha256("inception_v3", str(weights)) == digest
    untagged = tmp_path / "random.npz"  # written by save_params directly: the file's own hash
    npz_weights.save(untagged, {}, inception.FORMAT_TAG)
    assert inception.weights_source_sha256(untagged) == inception.sha256_of_file(untagged)
    options = Options(inception_weights=str(weights), resize="clean")
    scorer = scoring.Scorer("inception_v3", options, 64, 3)
    real = imagesets.ImageSet("folder:x", 5, lambda: None)
    assert fid_stats.metadata(scorer, real) == {
        "feature_network": "inception_v3", "weights_sha256": digest, "resize": "clean",
        "feature_code": features.CODE_VERSION["inception_v3"], "resolution": 64, "channels": 3,
        "n": 5, "real": "folder:x",
    }  # fmt: skip


@pytest.mark.parametrize(
    "made, flags, message",
    [
        (
            {"resize": "clean"},
            {},
            "was made with --resize=clean, this run uses --resize=legacy: pass --resize=clean "
            "or remake the file",
        ),
        (
            {"feature_network": "mnist_cnn"},
            {"feature_network": "inception_v3"},
            "was made with --feature_network=mnist_cnn, this run uses "
            "--feature_network=inception_v3: pass --feature_network=mnist_cnn",
        ),
        ({}, {"resolution": 64}, "was made with --resolution=32, this run uses --resolution=64"),
        ({"weights_sha256": "6726825d" + "0" * 56}, {}, "weights of SHA-256 6726825d0000"),
        ({"feature_code": 0}, {}, "was made by version 0 of jaxgan's inception_v3 feature code"),
    ],
)
def test_a_file_made_otherwise_is_refused(
    folders, stand_in_weights, tmp_path, made, flags, message
):
    weights, digest = stand_in_weights
    spec = _stats_file(tmp_path / "made.npz", **{"weights_sha256": digest, **made})
    flags = {"feature_network": "auto", **flags}
    options = _options(tmp_path, inception_weights=str(weights), **flags)
    with pytest.raises(errors.ConfigError, match=message) as error:
        runner.evaluate_sets(spec, str(folders[1]), ["fid"], options)
    assert str(tmp_path / "made.npz") in str(error.value)


def test_metrics_that_need_the_real_images_are_refused(folders, tmp_path):
    spec = _stats_file(tmp_path / "made.npz")
    with pytest.raises(errors.ConfigError, match=r"kid, pr need the real images; --real=stats:"):
        runner.evaluate_sets(spec, str(folders[1]), ["fid", "kid", "pr"], _options(tmp_path))
    with pytest.raises(errors.ConfigError, match="already a statistics file"):
        options = _options(tmp_path, save_stats=str(tmp_path / "again.npz"))
        runner.evaluate_sets(spec, str(folders[1]), ["fid"], options)


def test_wrong_files_give_one_clear_error(tmp_path):
    cases = {
        "keys.npz": dict(m=np.zeros(3), s=np.eye(3)),
        "shapes.npz": dict(mu=np.zeros(3), sigma=np.zeros(3)),
        "square.npz": dict(mu=np.zeros(3), sigma=np.eye(4)),
    }
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
    np.savez(tmp_path / "nan.npz", mu=np.full(3, np.nan), sigma=np.eye(3))
    np.save(tmp_path / "array.npy", np.zeros(3))
    np.savez(tmp_path / "objects.npz", mu=np.array([{}], dtype=object), sigma=np.eye(1))
    fid.save_statistics(tmp_path / "future.npz", np.zeros(3), np.eye(3), {})
    with np.load(tmp_path / "future.npz") as stored:
        future = {**stored, "format": np.array("jaxgan/fid_stats/v9")}
    np.savez(tmp_path / "future.npz", **future)
    expected = {
        "keys.npz": r"'mu' \[D\] and 'sigma' \[D, D\].*it holds \['m', 's'\]",
        "shapes.npz": r"mu is float64 \(3,\), sigma float64 \(3,\)",
        "square.npz": r"sigma float64 \(4, 4\)",
        "nan.npz": "non-finite",
        "array.npy": "is not an FID statistics file",
        "objects.npz": "is not an FID statistics file",
        "future.npz": "statistics format 'jaxgan/fid_stats/v9'",
        "absent.npz": "no such file",
    }
    for name, message in expected.items():
        with pytest.raises(errors.UserError, match=message):
            imagesets.stats_set(f"stats:{tmp_path / name}")


# -------------------------------------------------------------- the weights, downloaded


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """A fresh cache folder, downloads allowed, the URL at a copy of a small .pth (file://)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(inception.WEIGHTS_ENV_VAR, raising=False)
    monkeypatch.delenv(inception.NO_DOWNLOAD_ENV_VAR, raising=False)
    pth = tmp_path / "served" / inception.FID_WEIGHTS_FILENAME
    pth.parent.mkdir()
    pth.write_bytes((FIXTURES / "tiny_state_dict_zip.pth").read_bytes())
    url = pathlib.Path(pth).as_uri()
    monkeypatch.setenv(inception.URL_ENV_VAR, url)
    return pth, url


def _cheap_state_dict(path):
    """A full-size pytorch-fid state_dict with distinct, deterministic values (cheaper than
    `random_torch_state_dict`); stands in for what the tiny .pth holds, as test_eval_inception's
    convert test does."""
    shapes = inception.torch_state_dict_shapes()
    return {
        name: (np.arange(np.prod(shape), dtype=np.float32).reshape(shape) % 97 + i) / 97
        for i, (name, shape) in enumerate(shapes.items())
    }


def test_weights_are_downloaded_checked_and_converted(empty_cache, tmp_path, monkeypatch):
    pth, url = empty_cache
    digest = inception.sha256_of_file(pth)
    monkeypatch.setattr(inception, "read_torch_state_dict", _cheap_state_dict)
    monkeypatch.setattr(inception, "FID_WEIGHTS_SHA256_PREFIX", digest[:8])  # the file's own
    found = inception.find_weights()
    assert found == inception.default_weights_path() and found.is_file()
    assert sorted(p.name for p in found.parent.iterdir()) == [inception.WEIGHTS_FILENAME]
    by_hand = inception.convert_pth(pth, tmp_path / "by_hand.npz")
    downloaded, expected = (npz_weights.flatten(inception.load_params(p)) for p in (found, by_hand))
    assert downloaded.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(downloaded[name], value, err_msg=name)
    assert inception.weights_source_sha256(found) == digest
    assert inception.find_weights() == found  # found now, not downloaded again


def test_a_download_with_the_wrong_hash_is_refused(empty_cache):
    pth, url = empty_cache
    assert urllib.request.urlopen(url).read() == pth.read_bytes()  # the URL serves the file
    with pytest.raises(inception.InceptionWeightsNotFoundError) as error:
        inception.find_weights()
    message = str(error.value)
    assert f"The file downloaded from {url} is not the FID weights" in message
    assert "does not start with 6726825d" in message and inception.CONVERT_COMMAND in message
    assert not inception.default_weights_path().parent.exists() or not any(
        inception.default_weights_path().parent.iterdir()
    )  # neither weights nor the downloaded .pth are left behind


def test_a_failed_download_names_the_url_and_the_manual_route(empty_cache, tmp_path, monkeypatch):
    url = (tmp_path / "nowhere.pth").as_uri()
    monkeypatch.setenv(inception.URL_ENV_VAR, url)
    with pytest.raises(inception.InceptionWeightsNotFoundError) as error:
        inception.find_weights()
    message = str(error.value)
    assert f"Downloading them from {url} failed: " in message
    assert f"wget {inception.FID_WEIGHTS_URL}" in message and inception.CONVERT_COMMAND in message


def test_the_offline_switch_prints_the_manual_route(empty_cache, monkeypatch):
    monkeypatch.setenv(inception.NO_DOWNLOAD_ENV_VAR, "1")
    with pytest.raises(inception.InceptionWeightsNotFoundError) as error:
        inception.find_weights()
    message = str(error.value)
    assert "$JAXGAN_NO_DOWNLOAD is set, so they were not downloaded" in message
    assert f"wget {inception.FID_WEIGHTS_URL}" in message and inception.CONVERT_COMMAND in message
    assert not inception.default_weights_path().parent.exists()
    # An asked-for path that is absent is an error, never replaced by a download.
    monkeypatch.setenv(inception.NO_DOWNLOAD_ENV_VAR, "0")
    with pytest.raises(inception.InceptionWeightsNotFoundError, match="explicit path"):
        inception.find_weights(empty_cache[0].parent / "absent.npz")


# --------------------------------------------------------------- workdir mode, the CLI


def test_workdir_mode_saves_the_real_splits_statistics(make_smoke_run, tmp_path):
    workdir, _ = make_smoke_run("stats_run")
    path = tmp_path / "mnist5k.npz"
    options = _options(
        tmp_path, feature_network="auto", save_stats=str(path), num_real=400, num_samples=160
    )
    runner.evaluate_workdir(workdir, ["fid"], options, steps="latest")
    real = imagesets.dataset_set("mnist5k", "train", None, 32, 1, 400, 0)
    feats = features.load("mnist_cnn", 32, 1).extract(real.images)["features"]
    mu, sigma, made = fid.load_statistics(path)
    np.testing.assert_allclose(mu, feats.astype(np.float64).mean(axis=0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sigma, np.cov(feats.astype(np.float64), rowvar=False), atol=1e-9)
    assert (made["real"], made["n"], made["feature_network"]) == ("mnist5k:train", 400, "mnist_cnn")


@pytest.mark.slow
def test_cli_round_trip_and_failed_download(folders, tmp_path):
    real, fake = folders
    path = tmp_path / "real.npz"
    env = dict(os.environ, JAX_PLATFORMS="cpu", XDG_CACHE_HOME=str(tmp_path / "cache"))

    def evaluate(*flags):
        command = [sys.executable, "-m", "jaxgan.evaluate", f"--fake={fake}", "--metrics=fid"]
        return subprocess.run([*command, *flags], env=env, capture_output=True, text=True, cwd=REPO)

    saved = evaluate(f"--real={real}", f"--save_stats={path}", f"--feature_network={NETWORK}")
    assert saved.returncode == 0, saved.stderr
    scored = evaluate(f"--real=stats:{path}")
    assert scored.returncode == 0, scored.stderr
    rows = [json.loads(r.stdout.strip().splitlines()[-1]) for r in (saved, scored)]
    assert rows[1]["value"] == pytest.approx(rows[0]["value"], rel=1e-6, abs=1e-6)
    assert rows[1]["real"] == f"stats:{path}"
    # No network here, or a URL that is not there: one message, no traceback.
    env.pop(inception.NO_DOWNLOAD_ENV_VAR, None)
    env[inception.URL_ENV_VAR] = (tmp_path / "nowhere.pth").as_uri()
    failed = evaluate(f"--real={real}", "--feature_network=inception_v3")
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert (
        env[inception.URL_ENV_VAR] in failed.stderr and inception.CONVERT_COMMAND in failed.stderr
    )
