"""What people look at: one plot per metric (`W/eval/<metric>.png`; a translation run's one per
metric and direction, `W/eval/<metric>_<direction>.png`) and a printed summary."""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import numpy as np

from jaxgan.core import store
from jaxgan.eval import catalog

# What makes two rows of one metric comparable: the same reference, network, weights, resize,
# counts, seed and metric parameters. A curve is drawn from rows with the newest row's settings.
SETTINGS = (
    "real",
    "feature_network",
    "feature_weights",
    "resize",
    "n_real",
    "n_fake",
    "seed",
    "params",
)
# A baseline is comparable with a curve where it was computed the same way (its counts are its own
# and are printed in its label).
BASELINE_SETTINGS = ("feature_network", "feature_weights", "resize", "seed", "params", "direction")
# Baseline kinds: real_vs_real (the floor), identity (a translation run's untranslated images: the
# ceiling training must beat).
BASELINE_KINDS = ("real_vs_real", "identity")


def settings(row: dict, fields: Sequence[str] = SETTINGS) -> tuple:
    return tuple(str(row.get(k)) for k in fields)


def _baseline(rows: list[dict], like: dict, kind: str = "real_vs_real") -> dict | None:
    """The newest `kind` baseline row of `like`'s metric (and direction) computed like it."""
    matches = [
        r
        for r in rows
        if r["kind"] == kind
        and r["metric"] == like["metric"]
        and settings(r, BASELINE_SETTINGS) == settings(like, BASELINE_SETTINGS)
    ]
    return matches[-1] if matches else None


def _baselines(rows: list[dict], like: dict) -> list[dict]:
    return [b for kind in BASELINE_KINDS if (b := _baseline(rows, like, kind)) is not None]


def _curves(rows: list[dict]) -> dict[tuple, list[dict]]:
    """Checkpoint rows by (metric, direction): a translation run has a curve per direction."""
    curves: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["kind"] == "checkpoint":
            curves.setdefault((r["metric"], r.get("direction")), []).append(r)
    return curves


def _count(n) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def baseline_label(row: dict) -> str:
    what = "identity" if row["kind"] == "identity" else "real vs real"
    return f"{what}: {row['real']} ({_count(row['n_real'])}) vs {row['fake']} ({_count(row['n_fake'])})"


def plot_metrics(rows: list[dict], directory: str) -> list[str]:
    """`<directory>/<metric>.png` (`<metric>_<direction>.png` for a translation run): each metric's
    values vs step, baselines as horizontal lines.

    One line per entry of `values` (SWD: one per level and the average; pr: precision and recall),
    a band of ±std where the metric has one, the real-vs-real baseline dashed (labelled with its own
    sample counts, which differ from the checkpoints'), a translation run's identity baseline
    dash-dotted, and the reals' own value (IS, MS-SSIM, accuracy) dotted. Only rows with the newest row's settings are drawn, so a changed
    --num_samples starts a fresh curve. Rows without a value (unreadable checkpoints) are not drawn.
    In a multi-process evaluator process 0 alone draws them.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    if jax.process_index() != 0:
        return []

    rows = [r for r in rows if r.get("value") is not None]
    paths = []
    for (metric, direction), series in _curves(rows).items():
        newest = series[-1]
        by_step = {r["step"]: r for r in series if settings(r) == settings(newest)}
        steps = sorted(by_step)
        fig = Figure(figsize=(6.4, 4.0), dpi=100)
        ax = fig.add_subplot()
        for i, name in enumerate(by_step[steps[-1]]["values"]):
            color = f"C{i}"
            ys = np.asarray([by_step[s]["values"].get(name, np.nan) for s in steps], float)
            ax.plot(steps, ys, marker="o", color=color, label=name)
            if i == 0 and all(by_step[s].get("std") is not None for s in steps):
                std = np.asarray([by_step[s]["std"] for s in steps])
                ax.fill_between(steps, ys - std, ys + std, color=color, alpha=0.2)
            reals = by_step[steps[-1]].get("real_value")
            if i == 0 and reals is not None:
                ax.axhline(reals, color=color, linestyle=":", label=f"reals ({newest['real']})")
            for baseline in _baselines(rows, newest):
                style = "-." if baseline["kind"] == "identity" else "--"
                if name in baseline["values"]:
                    # The first line names the sets and their counts; the rest only which line.
                    what = baseline_label(baseline) if i == 0 else baseline["kind"]
                    ax.axhline(baseline["values"][name], color=color, linestyle=style,
                               label=f"{name}: {what}")  # fmt: skip
        network = f", {newest['feature_network']}" if newest["feature_network"] else ""
        counts = f"{_count(newest['n_fake'])} fakes vs {_count(newest['n_real'])}"
        title = f"{metric} {direction}" if direction else metric
        ax.set_title(f"{title}{network}: {counts} {newest['real']}")
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.subplots_adjust(left=0.12, right=0.97, top=0.9, bottom=0.12)  # not tight_layout: slow
        path = os.path.join(
            directory, f"{metric}_{direction}.png" if direction else f"{metric}.png"
        )
        png = store.written_bytes(lambda f: fig.savefig(f, format="png"))
        store.write_atomic(path, png, suffix=".png")
        paths.append(path)
    return paths


def best_row(series: list[dict], better: str | None) -> dict | None:
    """The checkpoint row with the best value (`better`: 'lower' or 'higher'; None: no best)."""
    if better not in ("lower", "higher"):
        return None
    sign = 1 if better == "lower" else -1
    return min(series, key=lambda r: (sign * r["value"], r["step"]))


def print_summary(rows: list[dict], metrics: Sequence[str]) -> None:
    """The last checkpoint's numbers next to the baselines, one line per metric (and direction),
    and the best checkpoint where the metric has a better direction and it is not the last (papers
    after CycleGAN report the best). Rows without a value (unreadable checkpoints) are left out."""

    rows = [r for r in rows if r.get("value") is not None]
    curves = _curves(rows)
    for metric in metrics:
        for (name, direction), series in curves.items():
            if name != metric:
                continue
            last = max(reversed(series), key=lambda r: r["step"])  # the newest row of that step
            series = [r for r in series if settings(r) == settings(last)]
            label = f"{metric} {direction}" if direction else metric
            line = f"step {last['step']}: {label} = {last['value']:.4g} (n_fake={_count(last['n_fake'])})"
            if last.get("real_value") is not None:
                line += f" (reals: {last['real_value']:.4g})"
            best = best_row(series, catalog.get(metric).better)
            if best is not None and best["step"] != last["step"]:
                line += f"; best: {best['value']:.4g} at step {best['step']}"
            for baseline in _baselines(rows, last):
                line += f"; {baseline_label(baseline)}: {baseline['value']:.4g}"
            if last.get("warning"):
                line += f"  [{last['warning']}]"
            print(line, flush=True)
