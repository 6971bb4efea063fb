"""The metric registry: each metric declares what it needs and how many fakes its paper scores.

A metric is one function, registered where it is written (`eval/metrics.py` for the distribution
metrics, `eval/protocols.py` for the ones that train or apply a classifier or critic):

    @registry.register("fid", summary="...", features=True, fakes=registry.fixed(50_000, "TTUR"))
    def fid(scorer, real, fake) -> registry.Result: ...

`scorer` (`eval/scoring.Scorer`) gives the feature network's outputs of a set, the options, the real
splits and the cache; `real`, `fake` are `imagesets.ImageSet`s, `fake` already cut to the metric's
count. The evaluator reads the declarations to check inputs before any work, to decide how many
fakes to generate (the largest count asked for: every metric scores a prefix of the same latents),
to skip the real-vs-real row where it has no meaning, and to build a row's identity (`params`).
Adding a metric is one registered function and its test. `eval/catalog.py` lists them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

DEFAULT_FAKES = 10_000  # metrics whose paper fixes no count: as many as the reals, at most this


@dataclasses.dataclass(frozen=True)
class Result:
    """What a metric returns. values: every number, the headline first; std: of the headline, where
    the metric has one; real_value: the same quantity of the reals (IS, MS-SSIM, accuracies)."""

    values: dict[str, float]
    std: float | None = None
    real_value: float | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How many fakes the metric's paper scores, as a function of the reference set's size and the
    options (modes: images × evaluations), and whose protocol that is."""

    count: Callable[[int, Any], int]
    source: str


def fixed(n: int, source: str) -> Protocol:
    return Protocol(lambda n_real, options: n, source)


def like_reals(source: str, cap: int | None = None) -> Protocol:
    """As many fakes as the reference set has (at most `cap`)."""
    return Protocol(lambda n_real, options: min(n_real, cap or n_real), source)


NO_PAPER_COUNT = like_reals(
    f"no count in its paper: as many as the reals, <= {DEFAULT_FAKES:,}", DEFAULT_FAKES
)


@dataclasses.dataclass(frozen=True)
class Metric:
    """A registered metric.

    features: scores the feature network's outputs (so the row names network, weights, resize).
    labels: compares fakes with the labels they were generated for (a conditional generator).
    splits: needs the dataset's whole train and test splits (`imagesets.RealSplits`).
    baseline: has a real-vs-real row (train vs test split); False where that would train and test
      on one split (the reals' number is then the row's `real_value`).
    paired: compares fake i with real i, its true counterpart (a translation of a dataset with
      ground truth, the sets ordered by pair: `eval/translation.py`).
    better: 'lower' or 'higher' where one direction is better (the summary's best checkpoint).
    fakes: the paper's count of fakes. min_fakes(options): fewer cannot be scored at all.
    params: the `Options` fields its value depends on, stored in every row and part of its identity.
    check(n_real, n_fake, channels, options): why these inputs cannot be scored (None: they can),
      asked before any sampling; the evaluator adds the generic `min_fakes` check after it.
    """

    name: str
    compute: Callable[..., Result]
    summary: str
    fakes: Protocol = NO_PAPER_COUNT
    features: bool = False
    labels: bool = False
    splits: bool = False
    baseline: bool = True
    paired: bool = False
    better: str | None = None
    params: tuple[str, ...] = ()
    min_fakes: Callable[[Any], int] = lambda options: 2
    check: Callable[[int, int, int | None, Any], str | None] = lambda *inputs: None

    def params_of(self, options) -> dict[str, Any]:
        return {name: getattr(options, name) for name in self.params}


_REGISTRY: dict[str, Metric] = {}


def register(name: str, **declaration) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    def add(compute: Callable[..., Result]) -> Callable[..., Result]:
        if name in _REGISTRY:
            raise ValueError(f"metric {name!r} is registered twice")
        _REGISTRY[name] = Metric(name, compute, **declaration)
        return compute

    return add


def unregister(name: str) -> None:
    """Removes a metric (a test's own); the catalog lists the rest."""
    del _REGISTRY[name]


def registered() -> list[Metric]:
    """Every registered metric, in registration order."""
    return list(_REGISTRY.values())
