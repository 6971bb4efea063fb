"""`python -m jaxgan.experiments pggan_table1`: the table's numbers are the evaluator's."""

import dataclasses
import statistics

import pytest

from jaxgan.eval import runner
from jaxgan.eval.options import Options
from jaxgan.experiments import pggan_table1


def _row(label, low, high):
    return {"label": label, "summary": {"SWDx1e3_avg": {"min": low, "max": high}}}


@pytest.mark.parametrize(
    "row, said",
    [
        (_row("(b)", 1.0, 2.0), "lower than (a)"),
        (_row("(b)", 5.5, 6.0), "higher than (a)"),
        (_row("(b)", 2.0, 3.5), "≈ (a) (ranges overlap)"),
        (_row("(b)", 5.0, 6.0), "≈ (a) (ranges overlap)"),  # touching ranges overlap
    ],
)
def test_a_row_is_called_lower_or_higher_only_outside_the_spread(row, said):
    assert pggan_table1.comparison(row, _row("(a)", 3.0, 5.0)) == said
    assert pggan_table1.comparison(row, None) == "—"


@pytest.mark.slow  # trains a tiny run
def test_table_numbers_equal_the_evaluators_on_the_same_checkpoints(tmp_path):
    options = Options(num_samples=200, num_real=200, ms_ssim_pairs=50, progress=False)
    table = pggan_table1.run_table(
        str(tmp_path), ["e_star"], options, train_seeds=[0], eval_seeds=[0, 1],
        kimg=0.08, width_scale=1 / 32,
    )  # fmt: skip
    (row,) = table["rows"]
    assert row["row"] == "e_star" and row["config"]["model"]["mbdisc_kernels"] == 100
    run = row["runs"][0]
    for score in run["scores"]:  # the run evaluated again with each evaluation seed
        again = runner.evaluate_workdir(
            run["workdir"], ["swd", "ms_ssim"],
            dataclasses.replace(options, seed=score["eval_seed"], baseline=False),
            steps="latest", force=True,
        )  # fmt: skip
        by_metric = {r["metric"]: r for r in again}
        assert by_metric["swd"]["step"] == score["step"]
        assert by_metric["swd"]["values"] == score["swd"]
        assert by_metric["ms_ssim"]["value"] == score["ms_ssim"]
    values = [s["swd"]["SWDx1e3_avg"] for s in run["scores"]]
    spread = {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}
    assert row["summary"]["SWDx1e3_avg"] == spread
    assert (tmp_path / "eval" / "pggan_table1.md").read_text().count("| (") == 1

    # With the row (e*) builds on, (d), its SWD far above: (e*)'s line says it is lower.
    far_above = {k: v + 100 for k, v in row["summary"]["SWDx1e3_avg"].items()}
    d = {**row, "row": "d", "label": "(d)", "builds_on": "c"}
    d["summary"] = {**row["summary"], "SWDx1e3_avg": far_above}
    lines = pggan_table1.markdown({**table, "rows": [d, row]}).splitlines()
    by_label = {line.split(" | ")[0]: line for line in lines if line.startswith("| (")}
    assert list(by_label) == ["| (d)", "| (e*)"]
    assert "| lower than (d) |" in by_label["| (e*)"] and "| — |" in by_label["| (d)"]
