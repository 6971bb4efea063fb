"""The evaluator's settings: one dataclass, the CLI flags of the same names (`jaxgan.evaluate`).

Defaults follow the papers each metric is named after (the sample counts are the metric's own, in
`eval/registry.py`); a number computed with other settings says so in its row.
"""

from __future__ import annotations

import dataclasses
import os

MAX_DEFAULT_REAL = 50_000  # the reference set: the whole split, as TTUR's statistics, at most this
RESIZE_MODES = ("legacy", "clean")


@dataclasses.dataclass
class Options:
    """Everything but the inputs. `num_samples=0` gives every metric its paper's count of fakes."""

    num_samples: int = 0
    num_real: int = 0
    real_split: str = "train"
    baseline_split: str = "test"
    baseline: bool = True
    feature_network: str = "auto"
    inception_weights: str | None = None
    resize: str = "legacy"
    seed: int = 0
    batch_size: int = 200
    feature_batch_size: int = 0
    cache_dir: str | None = None
    swd_preset: str = "pggan"
    ms_ssim_pairs: int = 10_000
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    is_splits: int = 10
    pr_k: int = 3
    resolution: int = 0
    classifier_recipe: str = "auto"
    classifier_steps: int = 0
    classifier_seed: int = 0
    iw_steps: int = 2000
    iw_width: int = 32
    iw_batch_size: int = 64
    modes_images: int = 25_600
    modes_evals: int = 10
    progress: bool = True
    # The fields the user set (`jaxgan.evaluate`'s flags given): a job may replace the defaults of
    # the others with its protocol's (a translation run's KID subsets are NICE-GAN's 50).
    given: frozenset[str] = frozenset()


def default_cache_dir() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "jaxgan", "eval")
