"""`python -m jaxgan.experiments` (diversity curve, data augmentation) on a conditional `:smoke`
run: the JSON tables against classifiers trained here on the same images through
`classifier_metrics.gan_train`, the PNGs, and the CLI. Classifiers train for STEPS steps (the
recipe's 1,250 would take minutes per classifier); the numbers are exact equalities, not ranges.
"""

import json
import os
import pathlib

import numpy as np
import pytest

from jaxgan import data
from jaxgan.configs import wgan_gp
from jaxgan.core import run_files
from jaxgan.eval import classifier_metrics as cm
from jaxgan.eval import classifier_training, imagesets, sampling
from jaxgan.eval.options import Options
from jaxgan.experiments import how_good

STEPS = 20


@pytest.fixture(scope="module")
def run(make_smoke_run):
    """A 3-step conditional `:smoke` run (AC-GAN)"""
    return make_smoke_run("run", conditional_generator=True, ac_head=True)


@pytest.fixture(scope="module")
def options(tmp_path_factory):
    return Options(
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        classifier_steps=STEPS,
        batch_size=100,
        progress=False,
    )


def _accuracy(images, labels, splits):
    recipe = classifier_training.RECIPES["mnist5k"]
    test = splits.test
    return cm.gan_train(images, labels, test.images, test.labels, recipe, steps=STEPS)["accuracy"]


@pytest.mark.slow
def test_diversity_table_and_plot(run, options):
    workdir, config = run
    table = how_good.diversity(workdir, [100], options)
    assert [r["n"] for r in table["rows"]] == [100]
    assert table["checkpoint"] == 3 and table["classifier"]["steps"] == STEPS
    assert (table["test_set"], table["n_test"]) == ("mnist5k:test", 1000)
    fakes, labels, _ = sampling.sample_checkpoint(workdir, config, 3, 100, 0, 100)
    splits = imagesets.real_splits("mnist5k", None, 32, 1, options)
    first = table["rows"][0]
    # 100 class-balanced fakes, and a class-balanced 100 of the train split.
    assert first["gan_train"] == _accuracy(fakes, labels, splits)
    index = cm.balanced_subset(splits.train.labels, 100, 0)
    np.testing.assert_array_equal(np.bincount(splits.train.labels[index]), [10] * 10)
    assert first["real"] == _accuracy(
        splits.train.images[index], splits.train.labels[index], splits
    )
    stored = json.loads((pathlib.Path(workdir) / "eval" / "diversity.json").read_text())
    assert stored["rows"] == table["rows"] and stored["experiment"] == "diversity"
    assert os.path.getsize(os.path.join(workdir, "eval", "diversity.png")) > 5000


@pytest.fixture(scope="module")
def subset_run(tmp_path_factory, smoke_config):
    """The conditional `:smoke` GAN trained on 10 digits of each class (`mnist5k:n=10`)."""
    from jaxgan.training import loop

    workdir = str(tmp_path_factory.mktemp("subset_run"))
    overrides = {"model.conditional_generator": True, "model.ac_head": True}
    config = smoke_config(**overrides, **{"data.dataset": "mnist5k:n=10"})
    loop.train_and_evaluate(config, workdir)
    return workdir, config


@pytest.mark.slow
def test_augmentation_uses_the_gan_trained_on_each_subset(run, subset_run, options, tmp_path):
    workdir, config = run
    subset_dir, subset_config = subset_run
    table = how_good.augmentation(workdir, [subset_dir], 100, options)
    small, full = table["rows"]
    assert (small["n_real"], full["n_real"], table["n_generated"]) == (100, 4000, 100)
    assert small["real_fraction"] == 0.025 and full["real_fraction"] == 1.0
    assert small["gan"]["workdir"] == os.path.abspath(subset_dir)
    assert (small["gan"]["dataset"], small["gan"]["trained_on"]) == (
        "mnist5k:n=10",
        "mnist5k:train:n=10",
    )
    # The subset's reals are the images its GAN trained on; its fakes are that GAN's.
    source = data.open_source("mnist5k:n=10", "train")
    fakes, labels, _ = sampling.sample_checkpoint(subset_dir, subset_config, 3, 100, 0, 100)
    splits = imagesets.real_splits("mnist5k", None, 32, 1, options)
    order = np.random.RandomState(0).permutation(len(source))
    images, real_labels = source.images[order], source.labels[order]
    assert small["real"] == _accuracy(images, real_labels, splits)
    assert small["real_plus_generated"] == _accuracy(
        np.concatenate([images, fakes]), np.concatenate([real_labels, labels]), splits
    )
    assert small["generated_only"] == _accuracy(fakes, labels, splits)
    stored = json.loads((pathlib.Path(workdir) / "eval" / "augmentation.json").read_text())
    assert stored["rows"] == table["rows"]
    assert os.path.getsize(os.path.join(workdir, "eval", "augmentation.png")) > 5000
    other = tmp_path / "other"  # a GAN of another dataset cannot augment this one
    config_json = json.loads((pathlib.Path(subset_dir) / "config.json").read_text())
    config_json["data"]["dataset"] = "stacked_mnist5k:n=10"
    run_files.write_json(str(other / "config.json"), config_json)
    with pytest.raises(ValueError, match="subsets of"):
        how_good.augmentation(workdir, [str(other)], 100, options)


@pytest.mark.slow
def test_cli_and_unconditional_runs(run, options, tmp_path, capsys, run_experiments_cli):
    """The command line, parsed in this process (absl flags; a subprocess would recompile)."""
    workdir, _ = run
    argv = ["diversity", f"--workdir={workdir}", "--sizes=50", "--classifier_steps=2"]
    run_experiments_cli([*argv, f"--cache_dir={options.cache_dir}", "--checkpoint=2"])
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-2])
    assert [r["n"] for r in rows] == [50]
    stored = json.loads((pathlib.Path(workdir) / "eval" / "diversity.json").read_text())
    assert stored["checkpoint"] == 2 and stored["classifier"]["steps"] == 2
    unconditional = tmp_path / "unconditional"
    run_files.write_json(
        os.path.join(str(unconditional), "config.json"), wgan_gp.get_config("smoke").to_dict()
    )
    with pytest.raises(ValueError, match="config.model.conditional_generator=True"):
        how_good.diversity(str(unconditional), [10], options)
