"""`python -m jaxgan.experiments cyclegan_ablation` (jaxgan/experiments/cyclegan_ablation.py): the
five rows' loss weights (CycleGAN's Table 4), and one row trained and scored on a toy pair."""

import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from jaxgan.eval.options import Options
from jaxgan.experiments import cyclegan_ablation as ablation


def test_the_five_rows_set_exactly_their_loss_weights():
    configs = {
        row.label: ablation.row_config(row, "folder:/data/pair", 400, seed=1)
        for row in ablation.ROWS
    }
    weights = {
        label: (c.gan_weight, c.lambda_a, c.lambda_b, c.lambda_identity)
        for label, c in configs.items()
    }
    assert weights == {
        "cycle alone": (0.0, 10.0, 10.0, 0.0),
        "GAN alone": (1.0, 0.0, 0.0, 0.0),
        "GAN + forward cycle": (1.0, 10.0, 0.0, 0.0),  # lambda_a: G_B(G_A(A)) ~ A
        "GAN + backward cycle": (1.0, 0.0, 10.0, 0.0),
        "CycleGAN (GAN + both cycles)": (1.0, 10.0, 10.0, 0.0),
    }
    for c in configs.values():  # everything else is the default preset's, at the budget given
        assert (c.method, c.data.dataset, c.data.resolution, c.seed) == (
            "cyclegan", "folder:/data/pair", 32, 1
        )  # fmt: skip
        assert (c.num_steps, c.decay_steps, c.checkpoint_every) == (400, 200, 400)
        assert (c.model.g_width, c.model.num_blocks, c.gan_mode) == (32, 6, "lsgan")


def test_markdown_gives_each_row_its_mean_and_range_over_the_seeds():
    runs = [
        {"train_time_s": t, "scores": {"AtoB": {"fid": f}, "BtoA": {"fid": 2 * f}}}
        for t, f in ((10.0, 100.0), (20.0, 130.0))
    ]
    rows = [
        {**vars(row), "runs": runs, "summary": ablation._summary(runs)} for row in ablation.ROWS
    ]
    table = {"pair": "folder:p", "resolution": 32, "train_steps": 4, "decay_steps": 2,
             "train_seeds": [0, 1], "metrics": ["fid"],
             "baselines": {"identity": {"AtoB": {"fid": 400.0}}}, "rows": rows}  # fmt: skip
    lines = ablation.markdown(table).splitlines()
    assert "| Google → Twitter | cycle alone | 0 | 10 | 10 | 115.0 (100.0–130.0) | 15 |" in lines
    assert "| Twitter → Google | GAN alone | 1 | 0 | 0 | 230.0 (200.0–260.0) | 15 |" in lines
    assert "| Google → Twitter | identity (untranslated) | | | | 400.0 | |" in lines


@pytest.mark.slow
def test_one_row_trains_scores_and_writes_the_table(tmp_path, monkeypatch):
    """The full row (`cyclegan:smoke` networks, 2 iterations, one seed) on a toy pair through the
    evaluator's translation job; the other rows are left out to keep the test short."""
    from conftest import write_two_domain_folder

    root = write_two_domain_folder(tmp_path / "pair", size=16, train=4, test=3)
    monkeypatch.setattr(ablation, "ROWS", ablation.ROWS[-1:])
    # A toy folder has no prepare.json naming it emoji: ask for the emoji pair's network.
    options = Options(
        cache_dir=str(tmp_path / "cache"), progress=False, feature_network="emoji_cnn"
    )
    table = ablation.run_ablation(
        str(tmp_path / "out"), options, f"folder:{root}", train_steps=2, train_seeds=[0],
        resolution=16, preset="smoke", overrides={"num_devices": 1, "tensorboard": False},
    )  # fmt: skip
    [row] = table["rows"]
    [run] = row["runs"]
    assert (run["step"], row["gan_weight"], row["lambda_a"], row["lambda_b"]) == (2, 1, 10, 10)
    # Every score is the evaluator's own row for the final checkpoint.
    logged = [
        json.loads(line) for line in open(pathlib.Path(run["workdir"]) / "eval" / "metrics.jsonl")
    ]
    for direction in ("AtoB", "BtoA"):
        for metric in ("fid", "kid", "paired_l1", "paired_ssim"):
            [want] = [r["value"] for r in logged if r["kind"] == "checkpoint" and r["step"] == 2
                      and r["direction"] == direction and r["metric"] == metric]  # fmt: skip
            assert run["scores"][direction][metric] == want
            assert row["summary"][direction][metric]["mean"] == want
    assert table["baselines"]["identity"]["AtoB"]["paired_l1"] > 0
    stored = json.loads((tmp_path / "out" / "eval" / "cyclegan_ablation.json").read_text())
    assert stored["rows"][0]["runs"][0]["scores"] == run["scores"]
    assert (
        "CycleGAN (GAN + both cycles)" in (tmp_path / "out/eval/cyclegan_ablation.md").read_text()
    )
    png = np.asarray(Image.open(tmp_path / "out" / "eval" / "cyclegan_ablation.png"))
    assert png.ndim == 3 and png.shape[0] > 100
