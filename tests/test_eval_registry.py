"""The evaluator's seams, without a run: a metric added by registering one function, the papers'
sample counts and the warning where a row departs from them, row identity, the real-set cache
(versioned keys, a corrupt file recomputed) and the baseline a plot draws."""

import dataclasses

import numpy as np
import pytest

from jaxgan.eval import cache, catalog, imagesets, registry, report, results, scoring
from jaxgan.eval.options import Options


@pytest.fixture
def mean_gap_metric():
    """An example of adding a metric: this registered function is all it takes."""

    @registry.register("mean_gap", summary="|mean pixel of fakes - of reals|.", params=("seed",))
    def mean_gap(scorer, real, fake) -> registry.Result:
        gap = abs(fake.images.mean() - real.images.mean())
        return registry.Result({"mean_gap": float(gap)}, details={"n": fake.size})

    yield catalog.get("mean_gap")
    registry.unregister("mean_gap")


def _sets(n_real=300, n_fake=500):
    rng = np.random.RandomState(0)
    real = rng.randint(0, 256, (n_real, 8, 8, 1)).astype(np.uint8)
    fake = rng.randint(0, 128, (n_fake, 8, 8, 1)).astype(np.uint8)
    return imagesets.ImageSet.from_arrays("real", real), imagesets.ImageSet.from_arrays(
        "fake", fake
    )


def test_a_registered_function_is_a_metric(mean_gap_metric, tmp_path):
    real, fake = _sets()
    scorer = scoring.Scorer(None, Options(cache_dir=str(tmp_path)), 8, 1)
    assert "mean_gap" in catalog.names() and "mean_gap" in catalog.describe()
    (row,) = scorer.rows(real, fake, catalog.parse(["mean_gap"]), {"kind": "sets", "step": None})
    # No count in its paper: as many fakes as the reals (300 of the 500), a prefix of the set.
    expected = abs(fake.images[:300].mean() - real.images.mean())
    assert row["value"] == pytest.approx(expected, rel=1e-12) and row["n_fake"] == 300
    assert row["params"] == {"seed": 0} and row["details"] == {"n": 300}
    assert row["feature_network"] is None and "warning" not in row


def test_paper_counts_and_the_warning_where_a_row_departs(mean_gap_metric, tmp_path):
    metrics = catalog.parse(["fid", "is", "kid", "swd", "pr", "gan_train", "modes", "fid5k_x10"])
    counts = scoring.fake_counts(metrics, 4000, Options())
    assert counts == {"fid": 50_000, "is": 50_000, "kid": 4000, "swd": 4000, "pr": 4000,
                      "gan_train": 4000, "modes": 256_000, "fid5k_x10": 50_000}  # fmt: skip
    assert scoring.fake_counts(metrics, 60_000, Options())["swd"] == 16_384  # PGGAN's
    assert scoring.fake_counts(metrics, 60_000, Options())["kid"] == registry.DEFAULT_FAKES
    assert set(scoring.fake_counts(metrics, 4000, Options(num_samples=123)).values()) == {123}
    real, fake = _sets(n_fake=300)
    scorer = scoring.Scorer(None, Options(cache_dir=str(tmp_path)), 8, 1)
    identity = {"kind": "sets", "step": None}
    (row,) = scorer.rows(real, fake, [mean_gap_metric], identity)
    assert row["protocol"]["fakes"] == 300 and "warning" not in row
    (row,) = scorer.rows(real, fake.head(200), [mean_gap_metric], identity)
    assert (
        row["n_fake"] == 200 and "200 fakes where its paper's protocol scores 300" in row["warning"]
    )


def test_prefix_sets_share_their_parents_images_and_labels():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    full = imagesets.ImageSet.from_arrays("f", images, np.arange(10) % 3)
    head = full.head(4)
    assert (head.size, head.parent) == (4, full) and full.head(10) is full
    np.testing.assert_array_equal(head.images, images[:4])
    np.testing.assert_array_equal(head.labels, [0, 1, 2, 0])


def test_rows_made_differently_have_different_identities(tmp_path):
    kid = catalog.get("kid")
    a = results.identity(
        "checkpoint", 2, kid, "r", 10, "f", 10, ("mnist_cnn", "sha256:a", "none", 1), Options()
    )  # noqa: E501
    log = results.MetricsLog(str(tmp_path / "metrics.jsonl"))
    log.write({**a, "value": 1.0})
    assert log.has(a)
    network = ("mnist_cnn", "sha256:a", "none", 1)
    other_params = results.identity(
        "checkpoint", 2, kid, "r", 10, "f", 10, network, Options(kid_subsets=7)
    )
    other_weights = {**a, "feature_weights": "sha256:b"}
    other_resize = {**a, "resize": "pil_bicubic_299"}
    other_code = {**a, "feature_code": 2}
    assert other_params["params"] == {"kid_subsets": 7, "kid_subset_size": 1000}
    for other in (other_params, other_weights, other_resize, other_code):
        assert not log.has(other)


def test_cache_keys_are_versioned_and_a_corrupt_file_is_recomputed(tmp_path, caplog):
    store = cache.Cache(str(tmp_path))
    key = {"set": "mnist5k:train", "what": "mnist_cnn", "code": 1}
    calls = []

    def compute():
        calls.append(1)
        return {"features": np.arange(6.0).reshape(3, 2)}

    first = store.get_or_compute(key, compute)
    again = store.get_or_compute(key, compute)
    np.testing.assert_array_equal(first["features"], again["features"])
    assert len(calls) == 1
    assert store.path(key) != store.path({**key, "code": 2})  # new feature code: a new file
    with open(store.path(key), "wb") as f:
        f.write(b"PK\x03\x04 not a zip")  # a truncated copy
    recomputed = store.get_or_compute(key, compute)
    np.testing.assert_array_equal(recomputed["features"], first["features"])
    assert len(calls) == 2 and any("unreadable" in r.getMessage() for r in caplog.records)
    assert len(store.get_or_compute(key, compute)) == 1 and len(calls) == 2  # rewritten whole


def _row(kind, value, **fields):
    base = dict(dict.fromkeys(results.IDENTITY_FIELDS), kind=kind, metric="fid", value=value,
                values={"fid": value}, std=None, real="mnist5k:train", feature_network="mnist_cnn",
                feature_weights="sha256:a", resize="none", seed=0, params={}, n_real=4000)  # fmt: skip
    return {**base, **fields}


def test_plots_draw_the_baseline_computed_the_same_way_labelled_with_its_counts(tmp_path, capsys):
    rows = [
        _row("real_vs_real", 1.7, step=None, fake="mnist5k:test", n_fake=1000),
        _row("real_vs_real", 9.9, step=None, fake="mnist5k:test", n_fake=1000, feature_weights="sha256:z"),
        _row("checkpoint", 30.0, step=2, fake="ema_params@2", n_fake=50_000),
    ]  # fmt: skip
    assert report._baseline(rows, rows[2])["value"] == 1.7  # not the one of other weights
    assert (
        report.baseline_label(rows[0])
        == "real vs real: mnist5k:train (4,000) vs mnist5k:test (1,000)"
    )
    report.print_summary(rows, ["fid"])
    assert capsys.readouterr().out.strip() == (
        "step 2: fid = 30 (n_fake=50,000); real vs real: mnist5k:train (4,000) vs mnist5k:test (1,000): 1.7"
    )
    assert report.plot_metrics(rows, str(tmp_path)) == [str(tmp_path / "fid.png")]


def test_check_metric_inputs_names_the_count_to_pass():
    modes = catalog.parse(["modes"])
    options = dataclasses.replace(Options(), modes_images=100, modes_evals=3)
    with pytest.raises(ValueError, match="at least 300 fakes"):
        scoring.check_metric_inputs(modes, 1000, {"modes": 299}, False, options, 3)
    scoring.check_metric_inputs(modes, 1000, {"modes": 300}, False, options, 3)
    with pytest.raises(ValueError, match="3 channels of stacked-MNIST.*1 channel"):
        scoring.check_metric_inputs(modes, 1000, {"modes": 300}, False, options, 1)
    fid5k = catalog.parse(["fid5k_x10"])
    with pytest.raises(ValueError, match="n_real=49999, n_fake=50000.*--num_real=50000"):
        scoring.check_metric_inputs(fid5k, 49_999, {"fid5k_x10": 50_000}, False, Options())
    scoring.check_metric_inputs(fid5k, 50_000, {"fid5k_x10": 50_000}, False, Options())
    fid = catalog.parse(["fid"])  # the generic check: the registered minimum
    with pytest.raises(ValueError, match="fid needs at least 2 fakes.*--num_samples=0"):
        scoring.check_metric_inputs(fid, 10, {"fid": 1}, False, Options())
