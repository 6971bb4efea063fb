"""`python -m jaxgan.experiments pggan_table1`: the table's numbers are the evaluator's."""

import dataclasses

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


@pytest.mark.slow  # trains two tiny runs
def test_table_numbers_equal_the_evaluators_on_the_same_checkpoints(tmp_path):
    options = Options(num_samples=200, num_real=200, ms_ssim_pairs=50, progress=False)
    table = pggan_table1.run_table(
        str(tmp_path), ["d", "e_star"], options, train_seeds=[0], eval_seeds=[0, 1],
        kimg=0.08, width_scale=1 / 32,
    )  # fmt: skip
    assert [r["row"] for r in table["rows"]] == ["d", "e_star"]
    assert table["rows"][1]["config"]["model"]["mbdisc_kernels"] == 100
    # Each row's run evaluated again with one of its two seeds, row d with the first and e* with
    # the second: every row and seed is checked, with half the evaluations of all four.
    for row, scored in zip(table["rows"], [0, 1]):
        run = row["runs"][0]
        for score in run["scores"][scored : scored + 1]:
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
        assert row["summary"]["SWDx1e3_avg"]["min"] == min(values)
    assert (tmp_path / "eval" / "pggan_table1.md").read_text().count("| (") == 2
