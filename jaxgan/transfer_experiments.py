"""Transferring GANs' target-size experiment (Wang et al. 2018, Table 2 / Fig. 2), one command:

  python -m jaxgan.experiments transfer --workdir=OUT [--per_class=10,100,0] [--train_steps=1000]
      [--source=W] [--target=fashion_mnist] [--transfer_metrics=fid]

For each target size (images per class of the target's train split, `DATASET:n=K`; 0: all of it)
a GAN is trained from scratch and one from the source GAN (`init_from`, both networks), with equal
iterations, each in OUT/<size>_<scratch|transfer>; the source is `--source` or OUT/source,
trained first with `configs/transfer.py:source` when it is not there. Every checkpoint is scored
by the evaluator (its defaults: the papers' sample counts; on fashion_mnist the `fashion_cnn`
domain FID). Runs and evaluations resume: a killed experiment re-run continues where it stopped.

Writes OUT/eval/transfer_target_size.json (every curve), .md (the table: the final checkpoint's
numbers) and .png (each metric against iterations, transfer solid, scratch dashed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

INITS = ("scratch", "transfer")


def run_name(per_class: int, init: str) -> str:
    return f"{'all' if not per_class else f'n{per_class}'}_{init}"


def target_config(preset: str, target: str, per_class: int, train_steps: int, overrides: dict):
    """`configs/transfer.py:<preset>` on `target` (K per class, 0: all) for `train_steps`."""
    from configs import transfer as presets

    config = presets.get_config(preset)
    config.data.dataset = f"{target}:n={per_class}" if per_class else target
    config.num_steps = train_steps
    every = max(1, train_steps // 4)  # four points per curve
    config.sample_every = config.checkpoint_every = config.keep_every = every
    config.update_from_flattened_dict(overrides)
    return config


def _curves(workdir: str, metrics: Sequence[str]) -> dict[str, list[list[float]]]:
    """metric -> [[step, value], ...] of the newest settings in W/eval/metrics.jsonl."""
    from jaxgan.eval import report, results

    rows = results.MetricsLog(os.path.join(workdir, "eval", "metrics.jsonl")).rows
    curves = {}
    for metric in metrics:
        scored = [r for r in rows if r["kind"] == "checkpoint" and r["metric"] == metric]
        scored = [r for r in scored if r.get("value") is not None]
        newest = report._settings(scored[-1]) if scored else None
        by_step = {r["step"]: r["value"] for r in scored if report._settings(r) == newest}
        curves[metric] = [[step, by_step[step]] for step in sorted(by_step)]
    return curves


def target_size(
    out: str,
    per_class: Sequence[int],
    train_steps: int,
    options,
    source: str | None = None,
    target: str = "fashion_mnist",
    metrics: Sequence[str] = ("fid",),
    preset: str = "",
    overrides: dict | None = None,
) -> dict:
    """Trains and scores every (size, init) run; writes and returns the table (module doc)."""
    from configs import transfer as presets
    from jaxgan import data, experiments, loop
    from jaxgan.eval import runner

    start = time.perf_counter()
    overrides = overrides or {}
    if source is None:
        source = os.path.join(out, "source")
        loop.train_and_evaluate(presets.get_config("source"), source)  # resumes, or is done
    runs = []
    for k in per_class:
        for init in INITS:
            config = target_config(preset, target, k, train_steps, overrides)
            config.init_from = source if init == "transfer" else ""
            workdir = os.path.join(out, run_name(k, init))
            loop.train_and_evaluate(config, workdir)
            runner.evaluate_workdir(workdir, list(metrics), options)
            curves = _curves(workdir, metrics)
            n_images = len(data.open_source(config.data.dataset, "train", config.data.data_dir))
            runs.append({
                "per_class": k, "n_images": n_images, "init": init, "workdir": workdir,
                "dataset": config.data.dataset, "curves": curves,
                "final": {m: c[-1][1] if c else None for m, c in curves.items()},
            })  # fmt: skip
    table = {
        "experiment": "transfer_target_size",
        "source": os.path.abspath(source),
        "target": target,
        "train_steps": train_steps,
        "metrics": list(metrics),
        "runs": runs,
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    experiments.write_table(table, out, _plot, markdown(table))
    return table


def markdown(table: dict) -> str:
    """One row per target size: each metric's final value from scratch and from the source."""
    header = ["images per class", "images"] + [
        f"{m} {init}" for m in table["metrics"] for init in INITS
    ]
    lines = [
        f"Target {table['target']}, {table['train_steps']} iterations, source {table['source']}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    by_size: dict[int, dict[str, dict]] = {}
    for run in table["runs"]:
        by_size.setdefault(run["per_class"], {})[run["init"]] = run
    for k, runs in by_size.items():
        cells = [str(k or "all"), f"{next(iter(runs.values()))['n_images']:,}"]
        for m in table["metrics"]:
            for init in INITS:
                value = runs.get(init, {}).get("final", {}).get(m)
                cells.append("—" if value is None else f"{value:.4g}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(table: dict):
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    metric = table["metrics"][0]
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.add_subplot()
    sizes = list(dict.fromkeys(r["per_class"] for r in table["runs"]))
    for run in table["runs"]:
        curve = run["curves"][metric]
        color = f"C{sizes.index(run['per_class'])}"
        style = "-" if run["init"] == "transfer" else "--"
        label = f"{run['n_images']:,} images, {run['init']}"
        ax.plot([p[0] for p in curve], [p[1] for p in curve], style, marker="o", color=color,
                label=label)  # fmt: skip
    ax.set_title(
        f"{metric} on {table['target']}: from scratch vs from the source", fontsize="medium"
    )
    ax.set_xlabel("generator iterations")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.subplots_adjust(left=0.13, right=0.97, top=0.9, bottom=0.13)
    return fig
