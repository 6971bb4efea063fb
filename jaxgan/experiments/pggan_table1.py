"""PGGAN's Table 1 (Karras et al. 2018, §6.1) at CPU scale: every row trained and scored alike.

  python -m jaxgan.experiments pggan_table1 --workdir=O [--rows=a,b,c,d,e_star,e,f,g,h]
      [--train_seeds=0,1] [--eval_seeds=0,1,2] [--kimg=24] [--width_scale=0.125]

Each row is `jaxgan/configs/pggan.py:table1-<row>` (the paper's letters; `e_star` is its (e*),
minibatch discrimination) moved from CelebA 128² to mnist5k at 32×32 and shrunk by one factor per
quantity, the same factor for every row, so that the rows differ only as the paper's rows do:

  widths   fmap_base, fmap_max and the latent size × `width_scale` (1/8: rows a-g get 64, 64, 32,
           16 feature maps at 4, 8, 16, 32 and a latent of 64, or 16 for the Gulrajani et al. rows
           a-c; row h, the non-reduced network, 64 everywhere);
  images   every kimg of the schedule (phase lengths, total) × `kimg` / 10,000: rows a-g see `kimg`
           thousand real images (counted as Theano counts them: every critic step's minibatch),
           row h ("longer training") twice as many;
  EMA      `ema_warmup` on for every row: decay_t = min(decay, (1 + t)/(10 + t)), so that the
           generator that is scored is not mostly its initialisation after a few thousand steps;
  data     mnist5k, no mirroring (digits are not symmetric).

Everything else — loss, n_critic, minibatch, learning rates, Adam β2, normalisations, minibatch
stddev or discrimination, growing — is the row's preset. Each run trains into O/<row>_s<seed>
(resumes if killed) and its final checkpoint is scored by the evaluator (`python -m
jaxgan.evaluate --workdir=O/<row>_s<seed> --metrics=swd,ms_ssim --steps=latest --seed=S` for each
S of --eval_seeds: new latents, patches, projections and pairs per S): SWD ×10³ per Laplacian level
(32, 16) and their average against the 4,000 training digits, and the mean MS-SSIM of 10,000
random fake pairs (the paper's count; its real-pair value is the baseline). The other evaluator
flags (--num_samples, --ms_ssim_pairs, --swd_preset, ...) apply as in `jaxgan.evaluate`.

Writes O/eval/pggan_table1.json (every run's scores, its training time and the settings), .md
(per row: mean and [min, max] over training × evaluation seeds; the paper's comparison with the
row it builds on, called only where the ranges do not overlap) and .png (SWD and MS-SSIM per row
with their ranges).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Sequence

from matplotlib.figure import Figure  # no pyplot: no global backend state

from jaxgan.configs import pggan
from jaxgan.core import checkpoint, errors
from jaxgan.eval import results, runner
from jaxgan.eval.options import Options
from jaxgan.experiments import tables
from jaxgan.training import loop

METRICS = ("swd", "ms_ssim")
ROWS = pggan.TABLE1_ROWS  # the paper's order: a, b, c, d, e_star, e, f, g, h
PAPER_KIMG = 10000.0  # Table 1: every row (a)-(g) stops at 10M real images shown
# The row each row adds its contribution to, as the paper's §6.1 reads its table: (e*) and (e)
# are two alternatives on top of (d).
BUILDS_ON = {"b": "a", "c": "b", "d": "c", "e_star": "d", "e": "d", "f": "e", "g": "f", "h": "g"}
LABELS = {row: f"({row.replace('_star', '*')})" for row in ROWS}
PAPER_NAMES = {
    "a": "Gulrajani et al. (2017)",
    "b": "+ Progressive growing",
    "c": "+ Small minibatch",
    "d": "+ Revised training parameters",
    "e_star": "+ Minibatch discrimination",
    "e": "Minibatch stddev",
    "f": "+ Equalized learning rate",
    "g": "+ Pixelwise normalization",
    "h": "Converged",
}


def row_config(row: str, kimg: float, width_scale: float, seed: int):
    """`pggan:table1-<row>` on mnist5k at 32×32, rescaled as the module docstring says."""
    c = pggan.get_config(f"table1-{row}")
    c.data.dataset, c.data.resolution, c.data.flip = "mnist5k", 32, False
    m = c.model
    m.fmap_base = int(m.fmap_base * width_scale)
    m.fmap_max = int(m.fmap_max * width_scale)
    m.z_dim = int(m.z_dim * width_scale)
    s, factor = c.schedule, kimg / PAPER_KIMG
    s.training_kimg, s.transition_kimg = s.training_kimg * factor, s.transition_kimg * factor
    s.total_kimg = s.total_kimg * factor
    c.ema_warmup = True
    c.seed = seed
    c.log_every = 50
    c.sample_every = c.checkpoint_every = 1 << 30  # the loop saves the final checkpoint
    return c


def _score(workdir: str, options: Options, eval_seed: int) -> dict:
    """{'step', 'swd': {level: value}, 'ms_ssim'}: the evaluator's rows of the final checkpoint."""
    # No real-vs-real baseline rows: MS-SSIM's real pairs come with its row; SWD's is not needed.
    options = dataclasses.replace(options, seed=eval_seed, baseline=False)
    runner.evaluate_workdir(workdir, list(METRICS), options, steps="latest")
    step = max(checkpoint.Checkpointer(workdir, read_only=True).all_steps())
    rows = results.MetricsLog(os.path.join(workdir, "eval", "metrics.jsonl")).rows
    newest = {}
    for r in rows:  # the newest row of each metric for this checkpoint and evaluation seed
        if r["kind"] == "checkpoint" and r["step"] == step and r["seed"] == eval_seed:
            if r["metric"] in METRICS and r.get("value") is not None:
                newest[r["metric"]] = r
    missing = [m for m in METRICS if m not in newest]
    if missing:
        raise errors.UserError(f"{workdir}: the evaluator wrote no {missing} row for step {step}.")
    return {
        "eval_seed": eval_seed,
        "step": step,
        "swd": newest["swd"]["values"],
        "ms_ssim": newest["ms_ssim"]["value"],
        "ms_ssim_real": newest["ms_ssim"]["real_value"],
    }


def _spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values)}


def _summary(runs: list[dict]) -> dict:
    """Per metric (each SWD level, its average, MS-SSIM): mean, min, max over every score."""
    scores = [s for run in runs for s in run["scores"]]
    summary = {k: _spread([s["swd"][k] for s in scores]) for k in scores[0]["swd"]}
    summary["ms_ssim"] = _spread([s["ms_ssim"] for s in scores])
    return summary


def run_table(
    out: str,
    rows: Sequence[str],
    options: Options,
    train_seeds: Sequence[int] = (0,),
    eval_seeds: Sequence[int] = (0, 1, 2),
    kimg: float = 24.0,
    width_scale: float = 0.125,
) -> dict:
    """Trains and scores each row (module doc); writes and returns the table."""
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise errors.UserError(
            f"--rows: unknown Table 1 row(s) {', '.join(unknown)}; use some of "
            f"{','.join(ROWS)} (e_star is the paper's (e*))."
        )
    start = time.perf_counter()
    entries = []
    for row in [r for r in ROWS if r in rows]:  # the paper's order
        runs = []
        for seed in train_seeds:
            config = row_config(row, kimg, width_scale, seed)
            workdir = os.path.join(out, f"{row}_s{seed}")
            loop.train_and_evaluate(config, workdir)
            ckpt = checkpoint.Checkpointer(workdir, read_only=True)
            meta = ckpt.restore_meta(max(ckpt.all_steps()))
            ckpt.close()
            scores = [_score(workdir, options, s) for s in eval_seeds]
            runs.append({
                "train_seed": seed, "workdir": os.path.abspath(workdir), "steps": scores[0]["step"],
                "kimg": meta.get("cur_nimg", 0) / 1000, "train_s": meta.get("elapsed_s"),
                "scores": scores,
            })  # fmt: skip
        entries.append({
            "row": row, "label": LABELS[row], "paper": PAPER_NAMES[row],
            "builds_on": BUILDS_ON.get(row), "config": config.to_dict(), "runs": runs,
            "summary": _summary(runs),
        })  # fmt: skip
    table = {
        "experiment": "pggan_table1",
        "dataset": "mnist5k",
        "resolution": 32,
        "kimg": kimg,
        "width_scale": width_scale,
        "train_seeds": list(train_seeds),
        "eval_seeds": list(eval_seeds),
        "metrics": list(METRICS),
        "rows": entries,
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    return tables.write_table(table, out, _plot, markdown(table))


def _cell(spread: dict, digits: int) -> str:
    return f"{spread['mean']:.{digits}f} [{spread['min']:.{digits}f}, {spread['max']:.{digits}f}]"


def comparison(row: dict, base: dict | None, key: str = "SWDx1e3_avg") -> str:
    """'lower' / 'higher' than the row it builds on where their [min, max] ranges do not
    overlap, else '≈' it (the ranges overlap)."""
    if base is None:
        return "—"
    a, b = row["summary"][key], base["summary"][key]
    if a["max"] < b["min"]:
        return f"lower than {base['label']}"
    if a["min"] > b["max"]:
        return f"higher than {base['label']}"
    return f"≈ {base['label']} (ranges overlap)"


def markdown(table: dict) -> str:
    """One line per row: SWD per level and average, MS-SSIM, mean [min, max] over every score."""
    rows = table["rows"]
    levels = [k for k in rows[0]["summary"] if k.startswith("SWD") and not k.endswith("avg")]
    by_row = {r["row"]: r for r in rows}
    header = ["row", "paper"] + [k.replace("SWDx1e3_", "SWD×10³ ") for k in levels]
    header += ["SWD×10³ avg", "SWD avg vs the row it builds on", "MS-SSIM", "steps", "train s"]
    n = len(table["train_seeds"]) * len(table["eval_seeds"])
    lines = [
        f"mnist5k 32×32, {table['kimg']:g} kimg per row ((h): {2 * table['kimg']:g}), widths × "
        f"{table['width_scale']:g}; training seeds {', '.join(map(str, table['train_seeds']))} × "
        f"evaluation seeds {', '.join(map(str, table['eval_seeds']))}: mean [min, max] of {n} "
        f"scores. SWD lower is better.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for r in rows:
        s = r["summary"]
        base = by_row.get(r["builds_on"])
        cells = [r["label"], r["paper"]] + [_cell(s[k], 2) for k in levels]
        cells += [f"**{_cell(s['SWDx1e3_avg'], 2)}**", comparison(r, base), _cell(s["ms_ssim"], 3)]
        cells += [
            "/".join(str(run["steps"]) for run in r["runs"]),
            "/".join(f"{run['train_s']:.0f}" for run in r["runs"] if run["train_s"] is not None),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    real = rows[0]["runs"][0]["scores"][0]["ms_ssim_real"]
    lines += ["", f"MS-SSIM of real pairs (the training digits): {real:.3f}."]
    return "\n".join(lines) + "\n"


def _plot(table: dict):
    rows = table["rows"]
    fig = Figure(figsize=(8.0, 4.0), dpi=100)
    swd_ax, ssim_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    x = list(range(len(rows)))
    keys = [k for k in rows[0]["summary"] if k.startswith("SWD")]
    for i, key in enumerate(keys):
        spreads = [r["summary"][key] for r in rows]
        _range_plot(swd_ax, [v + 0.1 * (i - 1) for v in x], spreads, key.replace("SWDx1e3_", ""))
    _range_plot(ssim_ax, x, [r["summary"]["ms_ssim"] for r in rows], "fakes")
    real = rows[0]["runs"][0]["scores"][0]["ms_ssim_real"]
    ssim_ax.axhline(real, color="gray", linestyle="--", label="real pairs")
    for ax, title in ((swd_ax, "SWD ×10³ per level (lower is better)"), (ssim_ax, "MS-SSIM")):
        ax.set_xticks(x, [r["label"] for r in rows])
        ax.set_title(title, fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(
        f"PGGAN Table 1 on mnist5k 32², {table['kimg']:g} kimg per row: mean and [min, max]",
        fontsize="medium",
    )
    fig.subplots_adjust(left=0.07, right=0.98, top=0.85, bottom=0.1, wspace=0.25)
    return fig


def _range_plot(ax, x, spreads: list[dict], label: str) -> None:
    mean = [s["mean"] for s in spreads]
    error = [
        [m - s["min"] for m, s in zip(mean, spreads)],
        [s["max"] - m for m, s in zip(mean, spreads)],
    ]
    ax.errorbar(x, mean, yerr=error, fmt="o", capsize=3, label=label)
