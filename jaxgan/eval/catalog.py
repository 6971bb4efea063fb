"""The catalog of metrics: every registered one, in a fixed order, by name.

The metric modules register their metrics when imported (`eval/metrics.py`, `eval/protocols.py`);
this module imports them, so whoever asks the catalog sees every metric, and no metric module
imports it back (StyleGAN2-ADA's `metric_main.py` has the same shape).
"""

from __future__ import annotations

from collections.abc import Iterable

from jaxgan.core import errors
from jaxgan.eval import metrics, protocols, registry  # noqa: F401  (importing registers)
from jaxgan.eval.registry import Metric

_MODULES = ("jaxgan.eval.metrics", "jaxgan.eval.protocols")  # listed in this order, then others


def _load() -> dict[str, Metric]:
    """Every metric: the distribution metrics, then the protocols, then any other module's, each
    in registration order (whichever module was imported first)."""
    rank = lambda m: _MODULES.index(m) if m in _MODULES else len(_MODULES)  # noqa: E731
    ordered = sorted(registry.registered(), key=lambda m: rank(m.compute.__module__))
    return {m.name: m for m in ordered}


def names() -> tuple[str, ...]:
    return tuple(_load())


def get(name: str) -> Metric:
    return _load()[name]


def parse(names_given: Iterable[str]) -> list[Metric]:
    """--metrics: registered metrics in the given order, duplicates dropped."""
    wanted = [n.strip() for n in names_given if n.strip()]
    registered = _load()
    unknown = [n for n in wanted if n not in registered]
    if unknown or not wanted:
        raise errors.ConfigError(
            f"--metrics: unknown {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(registered)} (python -m jaxgan.evaluate --list_metrics describes each)."
        )
    return [registered[n] for n in dict.fromkeys(wanted)]


def describe() -> str:
    """One paragraph per metric: what it is, what it needs and its paper's count (--list_metrics)."""
    lines = []
    for metric in _load().values():
        needs = [
            w
            for w, on in (
                ("features", metric.features),
                ("labelled fakes", metric.labels),
                ("train+test splits", metric.splits),
                ("pairs (translation with ground truth)", metric.paired),
            )
            if on
        ]
        lines.append(f"{metric.name:10s} {metric.summary}")
        lines.append(
            f"{'':10s} needs: {', '.join(needs) or 'pixels only'}; fakes: {metric.fakes.source}"
            + (f"; options: {', '.join(metric.params)}" if metric.params else "")
        )
    return "\n".join(lines)
