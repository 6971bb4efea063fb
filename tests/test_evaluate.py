"""The evaluator end to end on a `:smoke` run's checkpoints: rows against direct metric calls, the
real-feature cache, skipping and `--force`, `--watch`, two-set mode, plots, and the CLI's fast
failure without Inception weights.

The reference numbers are computed here along an independent path: the whole checkpoint restored
with Orbax's StandardCheckpointer, the generator applied batch by batch on one device, the real
split read from `data.open_source`, then `fid_from_features`, `kernel_inception_distance`, ... on
the mnist_cnn features.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxgan import data, evaluate
from jaxgan.configs import wgan_gp
from jaxgan.core import checkpoint, run_files
from jaxgan.eval import (
    catalog,
    features,
    fid,
    imagesets,
    inception,
    inception_score,
    kid,
    ms_ssim,
    prd,
    sampling,
    scoring,
    swd,
)
from jaxgan.eval.options import Options
from jaxgan.methods import gan

METRICS = ["fid", "kid", "is", "swd", "ms_ssim", "pr"]
NUM_REAL = 400  # a seeded subset of each split keeps the test fast
NUM_SAMPLES = 160  # > 128 features, so the fakes' covariance is not singular
# The evaluator samples on all 8 test devices, the reference on one: float rounding flips a few
# pixels by one level after quantisation, which moves generator-dependent metrics by ~1e-5.
GENERATOR_RTOL = 1e-4
REPO = pathlib.Path(__file__).parents[1]


@pytest.fixture(scope="module")
def run(make_smoke_run):
    """A 3-step `:smoke` run (checkpoints 2 and 3), as `python -m jaxgan.main` leaves it."""
    return make_smoke_run("run")


@pytest.fixture(scope="module")
def options(tmp_path_factory):
    return Options(
        num_samples=NUM_SAMPLES,
        num_real=NUM_REAL,
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        ms_ssim_pairs=40,
        kid_subsets=20,
        kid_subset_size=50,
        is_splits=4,
        batch_size=48,
        swd_preset="shmelkov",  # 4x fewer projections than pggan: the same code, a faster test
        progress=False,
    )


@pytest.fixture(scope="module")
def evaluated(run, options):
    workdir, _ = run
    rows = evaluate.evaluate_workdir(workdir, METRICS, options)
    return rows


@pytest.fixture(scope="module")
def network():
    return features.load("mnist_cnn", 32, 1)


def _real_images(split, options):
    source = data.open_source("mnist5k", split)
    order = np.random.RandomState(options.seed).permutation(len(source))[: options.num_real]
    return source.images[order]


def _fakes(workdir, config, step, options):
    """The evaluator's fakes for `step`, computed without the evaluator's restore or sampler."""
    state = ocp.StandardCheckpointer().restore(
        os.path.join(workdir, "checkpoints", str(step), "state")
    )
    generator, _ = gan.build_models(config, 1, 10)
    devices = jax.device_count()
    batch = -(-min(options.batch_size, options.num_samples) // devices) * devices
    z, labels = sampling.generation_inputs(config, 10, options.num_samples, batch, options.seed)
    apply = jax.jit(generator.apply)  # one device, no sharding: unlike the evaluator's sampler
    images = [
        run_files.to_uint8(
            apply({"params": state["ema_params"]}, z[i : i + batch], labels[i : i + batch])
        )
        for i in range(0, len(z), batch)
    ]
    return np.concatenate(images)[: options.num_samples]


@pytest.fixture(scope="module")
def reference(run, options, network):
    workdir, config = run
    real = _real_images("train", options)
    test = _real_images("test", options)
    fakes = {step: _fakes(workdir, config, step, options) for step in (2, 3)}
    return {
        "real": real,
        "test": test,
        "fakes": fakes,
        "real_out": network.extract(real),
        "test_out": network.extract(test),
        "fake_out": {step: network.extract(images) for step, images in fakes.items()},
    }


def _swd_descriptors(images, rng):
    accumulator = swd.SWDDescriptorAccumulator(32, rng, "shmelkov")
    accumulator.add(images)  # < 256 images: one minibatch, as the evaluator feeds them
    return accumulator.finalize()


def _rows(workdir):
    return run_files.read_jsonl(os.path.join(workdir, "eval", "metrics.jsonl"))


def _find(rows, kind, step, metric):
    found = [r for r in rows if r["kind"] == kind and r["step"] == step and r["metric"] == metric]
    assert len(found) == 1, (kind, step, metric, len(found))
    return found[0]


@pytest.mark.slow
def test_rows_for_every_checkpoint_and_the_baseline(run, evaluated):
    workdir, _ = run
    rows = _rows(workdir)
    assert rows == evaluated
    assert len(rows) == 3 * len(METRICS)  # steps 2, 3 and the real-vs-real baseline
    for step in (2, 3):
        for metric in METRICS:
            row = _find(rows, "checkpoint", step, metric)
            assert row["real"] == "mnist5k:train" and row["fake"] == f"ema_params@{step}"
            assert (row["n_real"], row["n_fake"], row["seed"]) == (NUM_REAL, NUM_SAMPLES, 0)
            assert row["sample_batch_size"] == 48 and row["wall_time_s"] >= 0
            feature_metric = catalog.get(metric).features
            assert row["feature_network"] == ("mnist_cnn" if feature_metric else None)
            assert row["resize"] == "none"
            assert np.isfinite(row["value"])
    baseline = _find(rows, "real_vs_real", None, "fid")
    assert (baseline["real"], baseline["fake"]) == ("mnist5k:train", "mnist5k:test")
    assert baseline["feature_weights"].startswith("sha256:")
    for metric in METRICS:
        assert os.path.getsize(os.path.join(workdir, "eval", f"{metric}.png")) > 1000


def test_rows_equal_the_metric_functions(run, evaluated, reference, options):
    workdir, _ = run
    rows = _rows(workdir)
    real_f = reference["real_out"]["features"]
    for step in (2, 3):
        fake_f = reference["fake_out"][step]["features"]
        np.testing.assert_allclose(
            _find(rows, "checkpoint", step, "fid")["value"],
            fid.fid_from_features(real_f, fake_f),
            rtol=GENERATOR_RTOL,
        )
        kid_row = _find(rows, "checkpoint", step, "kid")
        mean, std = kid.kernel_inception_distance(real_f, fake_f, 20, 50, 0)
        np.testing.assert_allclose(
            [kid_row["value"], kid_row["std"]], [mean, std], rtol=GENERATOR_RTOL
        )
        is_row = _find(rows, "checkpoint", step, "is")
        expected = inception_score.inception_score(reference["fake_out"][step]["logits"], 4, 0)
        np.testing.assert_allclose(is_row["value"], expected[0], rtol=GENERATOR_RTOL)
        # The std of the splits' scores errs by as much as the scores do (1e-5 here), which is
        # over 1e-4 of a std of 0.09: its tolerance is the score's.
        np.testing.assert_allclose(is_row["std"], expected[1], atol=GENERATOR_RTOL * expected[0])
        real_is = inception_score.inception_score(reference["real_out"]["logits"], 4, 0)[0]
        np.testing.assert_allclose(is_row["real_value"], real_is, rtol=1e-9)
        pr_row = _find(rows, "checkpoint", step, "pr")
        expected = prd.precision_recall(real_f, fake_f, k=3)
        for name in ("precision", "recall"):  # fractions of 160 / 400 samples
            assert pr_row["values"][name] == pytest.approx(expected[name], abs=1.5 / NUM_SAMPLES)
        assert pr_row["value"] == pr_row["values"]["precision"]
        ms_row = _find(rows, "checkpoint", step, "ms_ssim")
        np.testing.assert_allclose(
            ms_row["value"],
            ms_ssim.ms_ssim_random_pairs(reference["fakes"][step], 40, 0),
            rtol=GENERATOR_RTOL,
        )
        np.testing.assert_allclose(
            ms_row["real_value"], ms_ssim.ms_ssim_random_pairs(reference["real"], 40, 0)
        )
        swd_row = _find(rows, "checkpoint", step, "swd")
        n = NUM_SAMPLES  # SWD compares equal counts: the first n reals of the shuffled subset
        real_desc = _swd_descriptors(reference["real"][:n], np.random.RandomState(0))
        rng = np.random.RandomState(1)  # the fakes' patches, then the directions: seed + 1
        fake_desc = _swd_descriptors(reference["fakes"][step], rng)
        expected = swd.sliced_wasserstein_distances(real_desc, fake_desc, [32, 16], rng, "shmelkov")
        assert swd_row["values"].keys() == expected.keys()
        for name, value in expected.items():
            np.testing.assert_allclose(
                swd_row["values"][name], value, rtol=GENERATOR_RTOL, err_msg=name
            )
        assert swd_row["value"] == swd_row["values"]["SWDx1e3_avg"]
        assert swd_row["details"]["images_per_set"] == n
    # Real vs real: train split vs test split through the same code.
    np.testing.assert_allclose(
        _find(rows, "real_vs_real", None, "fid")["value"],
        fid.fid_from_features(real_f, reference["test_out"]["features"]),
        rtol=1e-9,
    )


def test_second_run_skips_and_force_replaces(run, evaluated, options):
    workdir, _ = run
    path = os.path.join(workdir, "eval", "metrics.jsonl")
    before = pathlib.Path(path).read_text()
    assert evaluate.evaluate_workdir(workdir, METRICS, options) == []
    assert pathlib.Path(path).read_text() == before
    again = evaluate.evaluate_workdir(workdir, ["fid", "ms_ssim"], options, steps="3", force=True)
    assert [(r["step"], r["metric"]) for r in again] == [
        (None, "fid"),
        (None, "ms_ssim"),
        (3, "fid"),
        (3, "ms_ssim"),
    ]
    rows = _rows(workdir)
    assert len(rows) == 3 * len(METRICS)  # replaced, not appended
    for new in again:
        old = _find(evaluated, new["kind"], new["step"], new["metric"])
        assert new["value"] == old["value"]  # seeded: the same number again


def test_real_features_come_from_the_cache(run, evaluated, reference, options):
    """Overwrite the cached train-split features (same key) with the test split's: --force then
    scores against what the cache holds, proving the file is read rather than recomputed."""
    workdir, _ = run
    cached = [
        f
        for f in os.listdir(options.cache_dir)
        if f.startswith("mnist5k_train-mnist_cnn") and f.endswith(".npz")
    ]
    assert len(cached) == 1, os.listdir(options.cache_dir)
    path = os.path.join(options.cache_dir, cached[0])
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    np.testing.assert_allclose(arrays["features"], reference["real_out"]["features"], rtol=1e-6)
    key = json.loads(str(arrays["__key__"]))
    assert (key["set"], key["n"], key["resolution"], key["channels"]) == (
        "mnist5k:train",
        400,
        32,
        1,
    )
    assert key["what"] == "mnist_cnn" and key["resize"] == "none"
    swapped = dict(arrays, features=reference["test_out"]["features"])
    try:
        np.savez(path, **swapped)
        (row,) = evaluate.evaluate_workdir(
            workdir, ["fid"], dataclasses.replace(options, baseline=False), steps="2", force=True
        )
        expected = fid.fid_from_features(
            reference["test_out"]["features"], reference["fake_out"][2]["features"]
        )
        np.testing.assert_allclose(row["value"], expected, rtol=GENERATOR_RTOL)
    finally:
        np.savez(path, **arrays)
        evaluate.evaluate_workdir(
            workdir, ["fid"], dataclasses.replace(options, baseline=False), steps="2", force=True
        )


def test_watch_scores_checkpoints_as_they_appear(run, evaluated, options, tmp_path):
    workdir, _ = run
    watched = tmp_path / "watched"
    (watched / "checkpoints").mkdir(parents=True)
    shutil.copy(os.path.join(workdir, "config.json"), watched / "config.json")
    shutil.copytree(os.path.join(workdir, "checkpoints", "2"), watched / "checkpoints" / "2")
    sleeps = []

    def sleep(seconds):  # the trainer "writes" step 3 while the evaluator waits
        sleeps.append(seconds)
        shutil.copytree(os.path.join(workdir, "checkpoints", "3"), watched / "checkpoints" / "3")

    rows = evaluate.evaluate_workdir(
        str(watched),
        ["fid"],
        dataclasses.replace(options, baseline=False),
        watch=True,
        poll_seconds=7,
        sleep=sleep,
    )
    assert sleeps == [7]  # one wait; then step 3 = config.num_steps is scored and the watch ends
    assert [r["step"] for r in rows] == [2, 3]
    for row in rows:
        assert row["value"] == _find(evaluated, "checkpoint", row["step"], "fid")["value"]


def test_two_sets_mode(evaluated, reference, options, tmp_path):
    # The workdir baseline's sets: 400 of each split (--num_samples caps the fake set here).
    same_counts = dataclasses.replace(options, num_samples=NUM_REAL)
    rows = evaluate.evaluate_sets("mnist5k:train", "mnist5k:test", ["fid", "kid"], same_counts)
    baseline = _find(evaluated, "real_vs_real", None, "fid")
    assert rows[0]["value"] == pytest.approx(baseline["value"], rel=1e-12)
    assert rows[0]["kind"] == "sets" and rows[0]["fake"] == "mnist5k:test"
    fakes = tmp_path / "fakes.npz"
    np.savez(fakes, images=reference["fakes"][3][..., 0])  # [N, H, W] is accepted too
    (row,) = evaluate.evaluate_sets("mnist5k", str(fakes), ["fid"], options)
    assert (row["n_real"], row["n_fake"], row["fake"]) == (NUM_REAL, NUM_SAMPLES, str(fakes))
    np.testing.assert_allclose(
        row["value"],
        fid.fid_from_features(
            reference["real_out"]["features"], reference["fake_out"][3]["features"]
        ),
        rtol=GENERATOR_RTOL,
    )
    floats = tmp_path / "floats.npz"
    np.savez(floats, images=np.zeros((4, 32, 32, 1), np.float32))
    with pytest.raises(ValueError, match="to_uint8"):
        evaluate.evaluate_sets("mnist5k", str(floats), ["fid"], options)


def test_fid5k_x10_row_is_fid_chunks():
    rng = np.random.RandomState(0)
    real_f, fake_f = rng.normal(size=(50_000, 4)), rng.normal(0.1, 1.0, size=(50_000, 4))
    sets = []
    for name, f in (("a", real_f), ("b", fake_f)):
        image_set = imagesets.ImageSet(name, 50_000, lambda: None)
        image_set.memo["features"] = {"features": f}
        sets.append(image_set)
    scorer = scoring.Scorer("mnist_cnn", Options(), 32, 1)
    scorer._network = features.FeatureNetwork("mnist_cnn", "none", "sha256:x", "", "", None)
    metrics = catalog.parse(["fid5k_x10"])
    (row,) = scorer.rows(*sets, metrics, {"kind": "sets", "step": None})
    assert (row["value"], row["std"]) == fid.fid_chunks(real_f, fake_f)
    assert row["n_fake"] == 50_000 and "warning" not in row  # the paper's count
    with pytest.raises(ValueError, match="needs 50,000 images per set"):
        scoring.check_metric_inputs(metrics, 4000, {"fid5k_x10": 4000}, False, Options())
    with pytest.raises(ValueError, match="class-conditional generator"):
        scoring.check_metric_inputs(
            catalog.parse(["gan_test"]), 4000, {"gan_test": 4000}, False, Options()
        )


def test_step_selection_and_metric_names():
    assert sampling.select_steps([2, 3, 5], "all") == [2, 3, 5]
    assert sampling.select_steps([2, 3, 5], "latest") == [5]
    assert sampling.select_steps([2, 3, 5], "3,4,5") == [3, 5]
    with pytest.raises(ValueError, match="--steps"):
        sampling.select_steps([2], "last")
    assert [m.name for m in catalog.parse(["fid", " kid", "fid"])] == ["fid", "kid"]
    with pytest.raises(ValueError, match="unknown fidd"):
        catalog.parse(["fidd"])


@pytest.mark.slow
def test_cli_fails_fast_without_inception_weights(run, tmp_path):
    workdir, _ = run
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), JAX_PLATFORMS="cpu")
    env.pop(inception.WEIGHTS_ENV_VAR, None)
    command = [sys.executable, "-m", "jaxgan.evaluate", f"--workdir={workdir}", "--metrics=fid"]
    start = time.perf_counter()
    result = subprocess.run(
        command + ["--feature_network=inception_v3"],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    elapsed = time.perf_counter() - start
    assert result.returncode != 0
    assert "InceptionWeightsNotFoundError" in result.stderr
    assert inception.FID_WEIGHTS_URL in result.stderr
    assert inception.CONVERT_COMMAND in result.stderr
    assert elapsed < 5.0, f"the evaluator took {elapsed:.1f} s to fail"


@pytest.mark.slow
def test_cli_two_sets(options, evaluated, tmp_path):
    output = tmp_path / "rows.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxgan.evaluate",
            "--real=mnist5k:train",
            "--fake=mnist5k:test",
            "--metrics=fid",
            f"--num_real={NUM_REAL}",
            f"--num_samples={NUM_REAL}",
            f"--cache_dir={options.cache_dir}",
            f"--output={output}",
        ],
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    (row,) = run_files.read_jsonl(str(output))
    assert json.loads(result.stdout.strip().splitlines()[-1]) == row
    assert row["value"] == pytest.approx(_find(evaluated, "real_vs_real", None, "fid")["value"])


def test_feature_network_choice_and_resize(network, tmp_path):
    assert features.resolve_name("auto", "mnist5k", None, 32) == "mnist_cnn"
    assert features.resolve_name("auto", "folder:digits", 1, 16) == "mnist_cnn"
    assert features.resolve_name("auto", "tfds:cifar10", 3, 32) == "inception_v3"
    assert features.resolve_name("auto", "folder:x", None, 32) == "inception_v3"
    assert features.resolve_name("inception_v3", "mnist5k", 1, 32) == "inception_v3"
    with pytest.raises(ValueError, match="--feature_network='vgg16'"):
        features.resolve_name("vgg16", "mnist5k", 1, 32)
    with pytest.raises(inception.InceptionWeightsNotFoundError, match="convert"):
        features.check_available("inception_v3", str(tmp_path / "absent.npz"))
    with pytest.raises(ValueError, match="grayscale images of at most 32x32"):
        features.load("mnist_cnn", 32, 3)
    # Smaller grayscale images reach the 32x32 classifier through the project's Lanczos resize.
    small = features.load("mnist_cnn", 16, 1)
    assert (small.resize, network.resize) == ("pil_lanczos_32", "none")
    images = data.open_source("mnist5k", "test").images[:10, ::2, ::2]
    expected = network.extract(np.stack([data.fit_image(im, 32, 1) for im in images]))
    got = small.extract(iter([images[:4], images[4:]]))  # chunks are accepted too
    for name in ("features", "logits"):
        np.testing.assert_array_equal(got[name], expected[name])
    assert got["features"].shape == (10, 128) and got["logits"].shape == (10, 10)


def test_gan_test_of_labelled_fakes(options, tmp_path):
    """GAN-test with the mnist5k test split posing as labelled fakes: exactly the shipped
    classifier's test accuracy (tests/test_classifier.py), which is also the real baseline."""
    test = data.open_source("mnist5k", "test")
    fakes = tmp_path / "labelled.npz"
    np.savez(fakes, images=test.images, labels=test.labels)
    all_fakes = dataclasses.replace(options, num_samples=0)
    (row,) = evaluate.evaluate_sets("mnist5k:train", str(fakes), ["gan_test"], all_fakes)
    assert row["n_fake"] == 1000
    assert row["value"] == pytest.approx(0.98, abs=1e-9)
    assert row["real_value"] == pytest.approx(0.98, abs=1e-9)


def test_conditional_generators_get_balanced_labels():
    config = wgan_gp.get_config("smoke")
    z, labels = sampling.generation_inputs(config, 10, 95, 48, seed=5)
    assert z.shape == (96, config.model.z_dim) and not labels.any()  # unconditional: zeros
    config.model.conditional_generator = True
    z_cond, labels = sampling.generation_inputs(config, 10, 95, 48, seed=5)
    np.testing.assert_array_equal(labels, np.arange(96) % 10)
    np.testing.assert_array_equal(z_cond, z)  # latents depend on the seed and count only
    expected = gan.sample_latents(config, jax.random.fold_in(jax.random.key(5), 0), 1000)
    np.testing.assert_array_equal(z, np.asarray(expected)[:96])
    # Latent i does not depend on how many are drawn: each metric's fakes are a prefix of all.
    z_many, _ = sampling.generation_inputs(config, 10, 2500, 48, seed=5)
    np.testing.assert_array_equal(z_many[:96], z)
    second_block = gan.sample_latents(config, jax.random.fold_in(jax.random.key(5), 1), 1000)
    np.testing.assert_array_equal(z_many[1000:2000], np.asarray(second_block))


# ----------------------------------------------------------------------------------------------
# Unreadable checkpoints; per-checkpoint config.
# ----------------------------------------------------------------------------------------------


def _copy_run(workdir, destination):
    """A copy of the run's workdir without its evaluation (the `evaluated` fixture's eval/)."""
    shutil.copytree(workdir, destination, ignore=shutil.ignore_patterns("eval"))
    return str(destination)


def _damage(checkpoint_dir):
    """Overwrites every non-empty file of a checkpoint's state with zero bytes."""
    damaged = 0
    for root, _, files in os.walk(os.path.join(checkpoint_dir, "state")):
        for name in files:
            path = os.path.join(root, name)
            if os.path.getsize(path):
                pathlib.Path(path).write_bytes(bytes(os.path.getsize(path)))
                damaged += 1
    assert damaged > 3


@pytest.mark.slow
def test_unreadable_checkpoint_is_an_error_row_and_watch_goes_on(
    run, evaluated, options, tmp_path, caplog
):
    workdir, _ = run
    watched = tmp_path / "watched"
    (watched / "checkpoints").mkdir(parents=True)
    shutil.copy(os.path.join(workdir, "config.json"), watched / "config.json")
    shutil.copytree(os.path.join(workdir, "checkpoints", "2"), watched / "checkpoints" / "2")
    _damage(watched / "checkpoints" / "2")
    sleeps = []

    def sleep(seconds):  # the trainer writes step 3 while the evaluator waits
        sleeps.append(seconds)
        shutil.copytree(os.path.join(workdir, "checkpoints", "3"), watched / "checkpoints" / "3")

    no_baseline = dataclasses.replace(options, baseline=False)
    rows = evaluate.evaluate_workdir(
        str(watched), ["fid", "kid"], no_baseline, watch=True, poll_seconds=7, sleep=sleep
    )
    assert sleeps == [7]  # step 2 failed on the first poll and was not retried on the second
    assert [(r["step"], r["metric"]) for r in rows] == [
        (2, "fid"),
        (2, "kid"),
        (3, "fid"),
        (3, "kid"),
    ]
    for row in rows[:2]:
        assert row["value"] is None and row["values"] == {}
        assert row["error"].startswith(f"checkpoint {watched}/checkpoints/2: ")
        assert (row["fake"], row["n_fake"], row["seed"]) == ("ema_params@2", NUM_SAMPLES, 0)
    for row in rows[2:]:
        assert "error" not in row
        assert row["value"] == _find(evaluated, "checkpoint", 3, row["metric"])["value"]
    unreadable = [r.getMessage() for r in caplog.records if "is unreadable" in r.getMessage()]
    assert len(unreadable) == 1 and unreadable[0].startswith("Checkpoint 2 is unreadable")
    assert len(unreadable[0].splitlines()) == 1
    assert os.path.exists(watched / "eval" / "fid.png")  # the null rows did not break the plot

    # The next evaluator retries the error rows (the checkpoint was repaired meanwhile), replaces
    # them with the numbers, and leaves step 3 alone.
    shutil.rmtree(watched / "checkpoints" / "2")
    shutil.copytree(os.path.join(workdir, "checkpoints", "2"), watched / "checkpoints" / "2")
    again = evaluate.evaluate_workdir(str(watched), ["fid", "kid"], no_baseline)
    assert [(r["step"], r["metric"]) for r in again] == [(2, "fid"), (2, "kid")]
    logged = _rows(str(watched))
    assert len(logged) == 4 and not any("error" in r for r in logged)
    for row in again:
        assert row["value"] == _find(evaluated, "checkpoint", 2, row["metric"])["value"]


@pytest.mark.slow
def test_each_checkpoint_is_sampled_with_its_own_config(
    run, evaluated, options, tmp_path, monkeypatch
):
    """Checkpoint 3 and config.json hold a config that differs from checkpoint 2's in a field that
    is not safe mid-run (Adam's b2, written by hand: the loop refuses such a resume) and so builds
    its own sampler; each checkpoint's generator is built from its own config. (A changed learning
    rate, safe mid-run, shares the sampler: test_samplers_compile_once_per_network_config.)"""
    workdir, _ = run
    copy = _copy_run(workdir, tmp_path / "resumed")
    config = json.loads(pathlib.Path(copy, "config.json").read_text())
    config["optim"]["b2"] = 0.99
    pathlib.Path(copy, "config.json").write_text(json.dumps(config))
    meta_path = pathlib.Path(copy, "checkpoints", "3", "meta", "metadata")
    meta = json.loads(meta_path.read_text())
    meta["config"]["optim"]["b2"] = 0.99
    meta_path.write_text(json.dumps(meta))
    stored = {
        step: json.loads(
            pathlib.Path(copy, "checkpoints", str(step), "meta", "metadata").read_text()
        )["config"]
        for step in (2, 3)
    }
    assert stored[2]["optim"]["b2"] == 0.9 and stored[3] == config
    built, build = [], gan.METHOD.sampler

    def recording_sampler(config, *args):
        built.append(json.loads(json.dumps(config.to_dict())))
        return build(config, *args)

    monkeypatch.setattr(gan, "METHOD", dataclasses.replace(gan.METHOD, sampler=recording_sampler))
    rows = evaluate.evaluate_workdir(copy, ["fid"], dataclasses.replace(options, baseline=False))
    assert built == [stored[2], stored[3]]
    assert [r["step"] for r in rows] == [2, 3]
    for row in rows:  # Adam's b2 does not change sampling: the numbers of the original run
        assert row["value"] == _find(evaluated, "checkpoint", row["step"], "fid")["value"]

    # The experiments' sampler reads the checkpoint's config too (config.json passed as the run's).
    built.clear()
    images, _, step = sampling.sample_checkpoint(copy, sampling.load_config(copy), 2, 16, 0, 16)
    assert (step, built) == (2, [stored[2]])
    original, _, _ = sampling.sample_checkpoint(
        workdir, sampling.load_config(workdir), 2, 16, 0, 16
    )
    np.testing.assert_array_equal(images, original)


def test_checkpoint_deleted_before_it_is_read_is_skipped(
    run, evaluated, options, tmp_path, monkeypatch, caplog
):
    """The trainer's keep_last rotation removes checkpoint 2 between listing and reading: a
    warning, no row (not an error row), and the other checkpoint is scored."""
    workdir, _ = run
    copy = _copy_run(workdir, tmp_path / "rotated")
    restore = checkpoint.Checkpointer.restore_state_entry

    def rotated_meanwhile(self, step, key, sharding):
        if step == 2:
            shutil.rmtree(os.path.join(copy, "checkpoints", "2"))
        return restore(self, step, key, sharding)

    monkeypatch.setattr(checkpoint.Checkpointer, "restore_state_entry", rotated_meanwhile)
    rows = evaluate.evaluate_workdir(copy, ["fid"], dataclasses.replace(options, baseline=False))
    assert [(r["step"], r["value"]) for r in rows] == [
        (3, _find(evaluated, "checkpoint", 3, "fid")["value"])
    ]
    assert _rows(copy) == rows
    messages = [r.getMessage() for r in caplog.records]
    assert "Checkpoint 2 was deleted before it could be scored." in messages


def test_samplers_compile_once_per_network_config(monkeypatch):
    built = []

    def counting_sampler(config, channels, num_classes, mesh):
        built.append((config.model.g_width, config.optim.g_lr))
        return lambda meta: ("sampler", config.model.g_width, meta["lod"])

    monkeypatch.setattr(gan, "METHOD", dataclasses.replace(gan.METHOD, sampler=counting_sampler))
    samplers = sampling.Samplers(1, 10, mesh=None)
    run_config = wgan_gp.get_config("smoke")
    stored = run_config.to_dict()
    # Checkpoints 1, 2 store the run's config; 3 one resumed with another learning rate and
    # num_steps (safe mid-run: the same generator); 4 another width; 5 none (config.json).
    resumed = json.loads(json.dumps(stored))
    resumed["optim"]["g_lr"], resumed["num_steps"] = 1e-3, 99
    wider = json.loads(json.dumps(stored))
    wider["model"]["g_width"] *= 2
    metas = [{"config": c, "lod": i} for i, c in enumerate([stored, stored, resumed, wider], 1)]
    metas.append({"lod": 5})
    got = [samplers(sampling.checkpoint_config(m, run_config), m) for m in metas]
    width = run_config.model.g_width
    assert got == [
        ("sampler", width, 1),
        ("sampler", width, 2),
        ("sampler", width, 3),
        ("sampler", 2 * width, 4),
        ("sampler", width, 5),
    ]
    assert built == [(width, 2e-4), (2 * width, 2e-4)]  # two networks, two builds
    assert sampling.checkpoint_config({"lod": 4}, run_config) is run_config


@pytest.mark.slow
def test_cli_prints_a_user_error_without_traceback(run):
    workdir, _ = run
    result = subprocess.run(
        [sys.executable, "-m", "jaxgan.evaluate", f"--workdir={workdir}", "--metrics=fid,fidd"],
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"ConfigError: --metrics: unknown fidd; choose from {', '.join(catalog.names())} "
        "(python -m jaxgan.evaluate --list_metrics describes each)."
    ]
