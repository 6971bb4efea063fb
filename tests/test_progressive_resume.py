"""Resuming a progressive run mid-fade, and the no-growing run under a wall-time budget."""

import functools
import json
import os

import jax
import numpy as np
import pytest

from jaxgan.configs import pggan
from jaxgan.core import checkpoint
from jaxgan.training import loop


def _config(**overrides):
    config = pggan.get_config("smoke")
    config.update_from_flattened_dict(overrides)
    return config


def _rows(workdir):
    return [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]


def _assert_bit_equal(a, b):
    """Same tree, same dtypes, same bits: what a deterministic rerun must give."""
    jax.tree.map(functools.partial(np.testing.assert_array_equal, strict=True), a, b)


@pytest.mark.slow
def test_resume_mid_fade_continues_with_the_same_lod_and_parameters(tmp_path):
    """6 steps in one go == 4 steps (stopping mid-fade at lod 5/3), resume, 2 more steps.

    Step 5 continues the fade (lod 4/3) with the restored Adam moments; step 6 ends it (lod 1),
    which must reset Adam exactly as the uninterrupted run does. Same devices, same compiled
    steps, a checkpoint that stores every bit: state and logged numbers are equal, bit for bit.
    """
    straight = loop.train_and_evaluate(
        _config(**{"schedule.total_kimg": 0.048}), str(tmp_path / "a")
    )
    loop.train_and_evaluate(_config(**{"schedule.total_kimg": 0.032}), str(tmp_path / "b"))
    meta = checkpoint.Checkpointer(str(tmp_path / "b"), read_only=True).restore_meta(4)
    assert meta["lod"] == pytest.approx(5 / 3) and meta["cur_nimg"] == 32
    resumed = loop.train_and_evaluate(
        _config(**{"schedule.total_kimg": 0.048}), str(tmp_path / "b")
    )
    assert int(resumed["step"]) == 6
    _assert_bit_equal(resumed, straight)
    rows_a, rows_b = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4, 5, 6]
    # lod is Python float arithmetic on image counts: a few float64 ulps from the exact fractions.
    np.testing.assert_allclose([r["lod"] for r in rows_b], [2, 2, 2, 5 / 3, 4 / 3, 1], atol=1e-9)
    timing = ("img_per_s", "elapsed_s")
    assert [{k: v for k, v in r.items() if k not in timing} for r in rows_b] == [
        {k: v for k, v in r.items() if k not in timing} for r in rows_a
    ]
    assert int(resumed["g_opt"].count) == 1  # reset before step 6, as in the straight run


@pytest.mark.slow
def test_no_growing_run_stops_at_the_time_budget(tmp_path):
    """--config.progressive=False trains 16x16 from step 1; max_minutes ends it with a checkpoint."""
    config = _config(progressive=False, max_minutes=0.001)
    config.schedule.total_kimg = 100.0
    loop.train_and_evaluate(config, str(tmp_path))
    rows = _rows(tmp_path)
    assert rows and all(r["lod"] == 0.0 and r["resolution"] == 16 for r in rows)
    ckpt = checkpoint.Checkpointer(str(tmp_path), read_only=True)
    last = ckpt.all_steps()[-1]
    meta = ckpt.restore_meta(last)
    assert meta["cur_nimg"] == 8 * last < 100_000
    # The same clock: the last row is logged before the sample grid and the checkpoint, so the
    # checkpoint's elapsed time is the row's plus the first sampler's compilation (~1 s idle, more
    # on a loaded CI machine): ordered, and seconds apart, not a unit or an offset apart.
    assert meta["elapsed_s"] >= 0.06
    assert 0.0 <= meta["elapsed_s"] - rows[-1]["elapsed_s"] < 10.0
    assert os.listdir(tmp_path / "resolutions") == ["0016x0016.png"]
