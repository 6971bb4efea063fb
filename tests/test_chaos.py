"""The pure helpers of the fault-injection benchmark (`python -m jaxgan.chaos`); the benchmark
itself trains twice and kills a run N times, too slow for a unit test."""

import math

import numpy as np

from jaxgan import chaos


def test_read_metrics_skips_a_torn_last_line_and_says_which(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(
        b'{"step": 1, "g_loss": 0.5}\n\n{"step": 2, "g_loss": 0.25}\n{"step": 3, "g_lo'
    )
    rows, bad = chaos.read_metrics(str(path))
    assert rows == [{"step": 1, "g_loss": 0.5}, {"step": 2, "g_loss": 0.25}]
    assert bad == [4]
    assert chaos.read_metrics(str(tmp_path / "missing.jsonl")) == ([], [])


def test_compare_metrics_ignores_wall_clock_keys_only():
    straight = [{"step": 1, "d_loss": 2.0, "img_per_s": 300.0, "elapsed_s": 1.0}]
    same_but_slower = [{"step": 1, "d_loss": 2.0, "img_per_s": 90.0, "elapsed_s": 4.0}]
    assert chaos.compare_metrics(straight, same_but_slower) == []
    other_loss = [{"step": 1, "d_loss": 2.0000001, "img_per_s": 300.0, "elapsed_s": 1.0}]
    assert chaos.compare_metrics(straight, other_loss) == [
        "metrics step 1 d_loss: straight 2.0, killed 2.0000001"
    ]


def test_compare_metrics_names_lost_and_repeated_steps():
    straight = [{"step": s} for s in (1, 2, 3)]
    killed = [{"step": s} for s in (1, 2, 2)]
    assert chaos.compare_metrics(straight, killed)[:2] == [
        "metrics steps differ: killed run lacks [3], adds [], repeats [2]",
        "metrics step 3 step: straight 3, killed None",
    ]


def test_max_abs_diff_over_all_leaves_and_tree_mismatch():
    a = {"g": {"w": np.array([1.0, 2.0], np.float32)}, "step": np.int32(7)}
    b = {"g": {"w": np.array([1.0, 2.5], np.float32)}, "step": np.int32(7)}
    assert chaos.max_abs_diff(a, a) == 0.0
    assert chaos.max_abs_diff(a, b) == 0.5
    # uint32 keys: a difference, not a wrap-around to 2**32 - 1
    assert chaos.max_abs_diff({"rng": np.uint32([0])}, {"rng": np.uint32([3])}) == 3.0
    assert chaos.max_abs_diff(a, {"g": a["g"]}) == math.inf  # a missing leaf
    assert chaos.max_abs_diff(a, {**a, "step": np.int32([7, 7])}) == math.inf  # another shape


def test_compare_samples_by_name_then_bytes(tmp_path):
    straight, killed = tmp_path / "a", tmp_path / "b"
    for folder in (straight, killed):
        folder.mkdir()
        (folder / "00000003.png").write_bytes(b"png3")
    (killed / "tmpab12.png").write_bytes(b"half")  # a write cut by a kill: not a sample
    assert chaos.compare_samples(str(straight), str(killed)) == []
    (killed / "00000003.png").write_bytes(b"png3'")
    (straight / "00000006.png").write_bytes(b"png6")
    assert chaos.compare_samples(str(straight), str(killed)) == [
        "sample files differ: ['00000006.png']"
    ]
    (killed / "00000006.png").write_bytes(b"png6")
    assert chaos.compare_samples(str(straight), str(killed)) == [
        "1 of 2 sample PNGs differ, from 00000003.png"
    ]


def test_temporary_names_and_moments():
    assert chaos.is_temporary("checkpoint", "12.orbax-checkpoint-tmp-1717171717")
    assert not chaos.is_temporary("checkpoint", "12")
    assert chaos.is_temporary("png", "tmpk3j_x9.png")
    assert not chaos.is_temporary("png", "00000012.png")
    assert chaos.describe_moment("random", set(), set()) == "random"
    assert chaos.describe_moment("png", set(), set()) == "random (no png write seen)"
    assert chaos.describe_moment("png", {"tmp1.png"}, {"tmp1.png"}) == "png write (cut)"
    assert chaos.describe_moment("png", {"tmp1.png"}, set()) == "png write (ended just before)"


def test_resumed_step_from_the_log():
    log = "I1130 train.py:439] Resumed from step 22 (352 images seen).\ntrain: 55%"
    assert chaos.resumed_step(log) == 22
    assert chaos.resumed_step("train:   0%| 0/40") == 0
