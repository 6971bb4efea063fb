"""The evaluator on a translation run (`eval/translation.py`): each direction's translations of the
test images scored against the other domain's, the identity and real-vs-real baselines, the paired
metrics, the best checkpoint beside the last.

Reference values along an independent path: the test images read with PIL and resized bicubically
(the reference's test transform), the final state's generators applied on one device, then numpy
(L1), PGGAN's SSIM and `fid.frechet_distance` on the emoji_cnn features.
"""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from jaxgan.core import errors, run_files
from jaxgan.eval import catalog, features, fid, ms_ssim, report, runner, scoring
from jaxgan.eval.options import Options
from jaxgan.methods.cyclegan import build_models

# 2 test and 5 train images per domain: FID's covariances are singular (the formula is still
# what is compared).
pytestmark = pytest.mark.filterwarnings("ignore:features. N=[25] samples")
# The evaluator translates on 8 devices, the reference on one: a pixel may round to the next level.
LEVEL = 1 / 255


def _test_images(root, domain, size):
    files = sorted((root / f"test{domain}").iterdir())
    return np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BICUBIC))
                     for f in files])  # fmt: skip


def _translate(config, g_params, images):
    generator, _ = build_models(config, 3)
    x = images.astype(np.float32) / 127.5 - 1.0
    return run_files.to_uint8(np.asarray(generator.apply({"params": g_params}, x)))


@pytest.fixture(scope="module")
def evaluated(translation_run, tmp_path_factory):
    """The run's checkpoints (2 and 3) scored with every translation metric; (rows, workdir)."""
    source, _, _, _ = translation_run
    workdir = str(tmp_path_factory.mktemp("evaluated") / "run")
    shutil.copytree(source, workdir)
    options = Options(
        feature_network="emoji_cnn", cache_dir=str(tmp_path_factory.mktemp("cache")),
        progress=False,
    )  # fmt: skip
    metrics = ["fid", "kid", "paired_l1", "paired_ssim"]
    return runner.evaluate_workdir(workdir, metrics, options), workdir, options


def test_rows_score_each_directions_translations_against_the_other_domain(
    translation_run, evaluated
):
    _, root, config, state = translation_run
    rows, _, _ = evaluated
    size = config.data.resolution
    a, b = _test_images(root, "A", size), _test_images(root, "B", size)
    fakes = {"AtoB": _translate(config, state["g_params"]["G_A"], a),
             "BtoA": _translate(config, state["g_params"]["G_B"], b)}  # fmt: skip
    targets = {"AtoB": b, "BtoA": a}
    sources = {"AtoB": a, "BtoA": b}
    network = features.load("emoji_cnn", size, 3)
    by = {(r["kind"], r["step"], r["direction"], r["metric"]): r for r in rows}
    assert {k[1] for k in by if k[0] == "checkpoint"} == {2, 3}  # keep_last 2
    for direction in ("AtoB", "BtoA"):
        for kind, step, fake in (("checkpoint", 3, fakes[direction]),
                                 ("identity", None, sources[direction])):  # fmt: skip
            real = targets[direction]
            l1 = np.abs(fake / 255.0 - real / 255.0).mean()
            row = by[(kind, step, direction, "paired_l1")]
            assert row["value"] == pytest.approx(l1, abs=LEVEL)
            ssim, _ = ms_ssim.ssim_and_contrast(fake / 255.0, real / 255.0, max_val=1.0)
            row = by[(kind, step, direction, "paired_ssim")]
            assert row["value"] == pytest.approx(ssim.mean(), abs=0.02)
            f_real = network.extract(real)["features"].astype(np.float64)
            f_fake = network.extract(fake)["features"].astype(np.float64)
            expected = fid.frechet_distance(*fid.feature_statistics(f_real),
                                            *fid.feature_statistics(f_fake))  # fmt: skip
            row = by[(kind, step, direction, "fid")]
            assert row["value"] == pytest.approx(expected, rel=0.05, abs=1e-3)
            assert row["n_fake"] == len(fake) and row["n_real"] == len(real)
        assert by[("checkpoint", 3, direction, "kid")]["params"]["kid_subsets"] == 50  # NICE-GAN's
        # The floor: the target domain's train split against its test split.
        floor = by[("real_vs_real", None, direction, "fid")]
        assert floor["fake"].endswith("trainB" if direction == "AtoB" else "trainA")
        assert floor["n_fake"] == 5  # the whole train split
        assert ("real_vs_real", None, direction, "paired_l1") not in by
    # The identity rows do not depend on a checkpoint: A vs B is the same L1 both ways.
    assert by[("identity", None, "AtoB", "paired_l1")]["value"] == pytest.approx(
        by[("identity", None, "BtoA", "paired_l1")]["value"]
    )


def test_a_second_call_scores_nothing_and_plots_one_figure_per_metric_and_direction(
    evaluated, capsys
):
    _, workdir, options = evaluated
    again = runner.evaluate_workdir(workdir, ["fid", "kid", "paired_l1", "paired_ssim"], options)
    assert again == []
    names = sorted(os.listdir(os.path.join(workdir, "eval")))
    for metric in ("fid", "kid", "paired_l1", "paired_ssim"):
        assert f"{metric}_AtoB.png" in names and f"{metric}_BtoA.png" in names
    out = capsys.readouterr().out
    assert "paired_l1 AtoB" in out and "identity:" in out


def test_summary_gives_the_best_checkpoint_beside_the_last():
    def row(step, value, kind="checkpoint"):
        return {"kind": kind, "step": step, "metric": "paired_ssim", "direction": "AtoB",
                "value": value, "values": {"paired_ssim": value}, "n_fake": 5, "n_real": 5,
                "real": "testB", "fake": f"AtoB@{step}"}  # fmt: skip

    series = [row(1, 0.2), row(2, 0.5), row(3, 0.4)]
    assert report.best_row(series, "higher")["step"] == 2
    assert report.best_row(series, "lower")["step"] == 1
    assert report.best_row(series, None) is None


def test_default_metrics_and_errors(translation_run, tmp_path):
    source, _, _, _ = translation_run
    options = Options(feature_network="emoji_cnn", cache_dir=str(tmp_path), progress=False)
    job = runner.job_for(source, None, options, force=False)
    assert [m.name for m in job.metrics] == ["fid", "kid", "paired_l1", "paired_ssim"]
    assert job.num_pairs == 2 and job.options.kid_subsets == 50
    given = Options(kid_subsets=7, given=frozenset({"kid_subsets"}), feature_network="emoji_cnn")
    assert runner.job_for(source, ["kid"], given, force=False).options.kid_subsets == 7
    with pytest.raises(errors.ConfigError, match="labelled fakes or a dataset's splits"):
        runner.job_for(source, ["gan_train"], options, force=False)
    # A GAN run's fakes have no counterparts.
    with pytest.raises(errors.ConfigError, match="paired_l1 compare each fake with its true"):
        scoring.check_metric_inputs([catalog.get("paired_l1")], 10, {"paired_l1": 10}, False,
                                    options)  # fmt: skip


def test_paired_metrics_against_numpy():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    fake = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    from jaxgan.eval.imagesets import ImageSet

    real_set, fake_set = ImageSet.from_arrays("r", real), ImageSet.from_arrays("f", fake)
    l1 = catalog.get("paired_l1").compute(None, real_set, fake_set)
    assert l1.values["paired_l1"] == pytest.approx(np.abs(fake / 255 - real[:3] / 255).mean())
    same = catalog.get("paired_ssim").compute(None, real_set, ImageSet.from_arrays("r", real))
    assert same.values["paired_ssim"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="compare fake i with real i"):
        catalog.get("paired_l1").compute(None, fake_set, real_set)
    json.dumps(l1.values)  # rows are JSON
