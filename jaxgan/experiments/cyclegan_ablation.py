"""CycleGAN's loss ablation (Zhu et al. 2017, Table 4 and Fig. 7) on the emoji pair:

  python -m jaxgan.data.prepare emoji --out=data/emoji
  python -m jaxgan.experiments cyclegan_ablation --workdir=OUT [--pair=folder:data/emoji]
      [--train_steps=1000] [--train_seeds=0,1] [--ablation_resolution=32]

Five rows, each `jaxgan/configs/cyclegan.py` (default preset) trained on the pair for
`--train_steps` iterations (the last half decaying the lr, as the preset) once per training seed,
in OUT/<row>_s<seed>, with only the loss weights changed (`ROWS`):

  cycle alone            gan_weight 0: no adversarial loss, both cycles
  GAN alone              both adversarial terms, no cycle
  GAN + forward cycle    lambda_a only: G_B(G_A(A)) ~ A, the paper's F(G(x)) ~ x (X = A, G = G_A)
  GAN + backward cycle   lambda_b only: G_A(G_B(B)) ~ B, the paper's G(F(y)) ~ y
  CycleGAN               both adversarial terms, both cycles (the paper's Eq. 3)

The identity loss is off in every row (lambda_identity 0): the paper's ablation is of Eq. 3, and
here each identity term is weighed by a cycle weight, so it would come and go with the cycles.
`--ablation_resolution` (default 32: four times the iterations of 64² in the same time) sets
data.resolution. Each final checkpoint is scored by the evaluator's translation job
(`python -m jaxgan.evaluate --workdir=OUT/<row>_s<seed> --steps=latest`: FID and KID in the
pair's feature network, emoji_cnn, and paired L1 / SSIM against the true counterparts, both
directions), the same metrics as docs/translation.md's CycleGAN table; the identity (untranslated)
and real-vs-real rows come from the first run. Runs and evaluations resume: a killed experiment
re-run continues where it stopped.

Writes OUT/eval/cyclegan_ablation.json (every run's scores, training time, settings),
.md (mean and range over the training seeds per row) and .png (Fig. 7's view: the first test
pairs, each row's translations by its first seed, and the true counterparts).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global backend state

from jaxgan.configs import cyclegan as presets
from jaxgan.core import checkpoint, errors, parallel
from jaxgan.eval import results, runner, sampling, translation
from jaxgan.eval.options import Options
from jaxgan.experiments import tables
from jaxgan.training import loop

DIRECTIONS = {"AtoB": "Google → Twitter", "BtoA": "Twitter → Google"}  # the emoji pair's domains
FIGURE_PAIRS = 8  # test pairs the PNG shows


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of Table 4: its loss weights (`config.gan_weight`, `lambda_a`, `lambda_b`)."""

    label: str
    name: str  # its workdirs' stem
    gan_weight: float
    lambda_a: float  # forward cycle
    lambda_b: float  # backward cycle


CYCLE = 10.0  # the reference's lambda_A = lambda_B
ROWS = (
    Row("cycle alone", "cycle_alone", 0.0, CYCLE, CYCLE),
    Row("GAN alone", "gan_alone", 1.0, 0.0, 0.0),
    Row("GAN + forward cycle", "gan_forward", 1.0, CYCLE, 0.0),
    Row("GAN + backward cycle", "gan_backward", 1.0, 0.0, CYCLE),
    Row("CycleGAN (GAN + both cycles)", "cyclegan", 1.0, CYCLE, CYCLE),
)


def row_config(
    row: Row,
    pair: str,
    train_steps: int,
    seed: int,
    resolution: int = 32,
    preset: str = "",
    overrides: dict | None = None,
):
    """`jaxgan/configs/cyclegan.py:<preset>` on `pair` with `row`'s weights, no identity loss,
    `train_steps` iterations (the preset's share decaying) and one checkpoint at the end."""
    config = presets.get_config(preset)
    decay_share = config.decay_steps / config.num_steps if config.decay_steps else 0.0
    config.data.dataset, config.data.resolution = pair, resolution
    config.num_steps, config.decay_steps = train_steps, int(train_steps * decay_share)
    config.sample_every = config.checkpoint_every = train_steps
    config.gan_weight, config.lambda_a, config.lambda_b = row.gan_weight, row.lambda_a, row.lambda_b
    config.lambda_identity = 0.0
    config.seed = seed
    config.update_from_flattened_dict(overrides or {})
    return config


def final_scores(workdir: str, step: int) -> dict[str, dict[str, float]]:
    """direction -> metric -> value of checkpoint `step`'s newest rows in W/eval/metrics.jsonl."""
    scores: dict[str, dict[str, float]] = {}
    for r in results.MetricsLog(os.path.join(workdir, "eval", "metrics.jsonl")).rows:
        if r["kind"] == "checkpoint" and r["step"] == step and r.get("value") is not None:
            scores.setdefault(r["direction"], {})[r["metric"]] = r["value"]
    return scores


def baseline_scores(workdir: str) -> dict[str, dict[str, dict[str, float]]]:
    """kind ('identity', 'real_vs_real') -> direction -> metric -> value, from a scored run."""
    scores: dict[str, dict[str, dict[str, float]]] = {}
    for r in results.MetricsLog(os.path.join(workdir, "eval", "metrics.jsonl")).rows:
        if r["kind"] in ("identity", "real_vs_real") and r.get("value") is not None:
            by_direction = scores.setdefault(r["kind"], {})
            by_direction.setdefault(r["direction"], {})[r["metric"]] = r["value"]
    return scores


def spread(values: Sequence[float]) -> dict:
    """Mean, range and count over the training seeds."""
    return {"mean": statistics.fmean(values), "min": min(values), "max": max(values),
            "n": len(values)}  # fmt: skip


def translations(workdir: str, options: Options, n: int) -> dict[str, np.ndarray]:
    """The first n test pairs of a run ('A', 'B': uint8, pair order) and its latest checkpoint's
    translations of them ('AtoB': G_A(A), 'BtoA': G_B(B)), as the evaluator translates them."""
    job = runner.job_for(workdir, None, options, False)
    n = min(n, job.num_pairs or len(job.images["A"]))
    mesh = parallel.make_mesh()
    params, meta, _ = checkpoint.restore_params(workdir, job.params_entry, "latest", mesh)
    translate = job.translator(sampling.checkpoint_config(meta, job.config))
    out = {domain: job.images[domain][:n] for domain in "AB"}
    for direction, source, _ in translation.DIRECTIONS:
        batch = translation.device_batch(options.batch_size, n, job.mesh)
        out[direction] = translation.translate_images(
            translate, params, out[source], direction, batch, job.mesh
        )
    return out


def run_ablation(
    out: str,
    options: Options,
    pair: str = "folder:data/emoji",
    train_steps: int = 1000,
    train_seeds: Sequence[int] = (0, 1),
    resolution: int = 32,
    preset: str = "",
    overrides: dict | None = None,
) -> dict:
    """Trains and scores every row of `ROWS` once per training seed (module doc); writes
    OUT/eval/cyclegan_ablation.{json,md,png} and returns the table."""
    start = time.perf_counter()
    if not train_seeds:
        raise errors.ConfigError("--train_seeds is empty: give at least one seed (e.g. 0,1).")
    rows, figure_images, first_run = [], {}, None
    for row in ROWS:
        runs = []
        for seed in train_seeds:
            config = row_config(row, pair, train_steps, seed, resolution, preset, overrides)
            workdir = os.path.join(out, f"{row.name}_s{seed}")
            state = loop.train_and_evaluate(config, workdir)  # resumes, or is done
            step = int(state["step"])
            runner.evaluate_workdir(workdir, None, options, steps="latest")
            meta = checkpoint.Checkpointer(workdir, read_only=True).restore_meta(step)
            runs.append({"seed": seed, "workdir": os.path.abspath(workdir), "step": step,
                         "train_time_s": round(meta.get("elapsed_s", 0.0), 1),
                         "scores": final_scores(workdir, step)})  # fmt: skip
            first_run = first_run or workdir
        figure_images[row.name] = translations(runs[0]["workdir"], options, FIGURE_PAIRS)
        rows.append({**dataclasses.asdict(row), "runs": runs, "summary": _summary(runs)})
    metrics = sorted({m for r in rows for run in r["runs"] for s in run["scores"].values()
                      for m in s})  # fmt: skip
    table = {
        "experiment": "cyclegan_ablation",
        "pair": pair,
        "resolution": resolution,
        "train_steps": train_steps,
        "decay_steps": config.decay_steps,
        "lambda_identity": 0.0,
        "train_seeds": list(train_seeds),
        "metrics": metrics,
        "baselines": baseline_scores(first_run),
        "rows": rows,
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    return tables.write_table(table, out, lambda t: _figure(t, figure_images), markdown(table))


def _summary(runs: list[dict]) -> dict:
    """direction -> metric -> spread over the runs (seeds) that scored it."""
    summary: dict[str, dict[str, dict]] = {}
    for direction in DIRECTIONS:
        metrics = {m for run in runs for m in run["scores"].get(direction, {})}
        for metric in sorted(metrics):
            values = [run["scores"][direction][metric] for run in runs
                      if metric in run["scores"].get(direction, {})]  # fmt: skip
            summary.setdefault(direction, {})[metric] = spread(values)
    return summary


def _format(value: float) -> str:
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.4f}"


def _cell(s: dict | None) -> str:
    if s is None:
        return "—"
    if s["n"] == 1:
        return _format(s["mean"])
    return f"{_format(s['mean'])} ({_format(s['min'])}–{_format(s['max'])})"


def markdown(table: dict) -> str:
    """One line per row and direction: each metric's mean (range) over the training seeds."""
    metrics, seeds = table["metrics"], table["train_seeds"]
    lines = [
        f"CycleGAN loss ablation on {table['pair']} at {table['resolution']}², "
        f"{table['train_steps']:,} iterations (the last {table['decay_steps']:,} decaying), no "
        f"identity loss; training seeds {', '.join(map(str, seeds))}"
        + (" (mean, range in brackets)" if len(seeds) > 1 else "") + "; final checkpoints.",
        "",
        "| direction | row | GAN | λ_A (fwd) | λ_B (bwd) | "
        + " | ".join(metrics) + " | train time (s) |",
        "|---|---|---:|---:|---:|" + "---:|" * len(metrics) + "---:|",
    ]  # fmt: skip
    for direction, label in DIRECTIONS.items():
        base = table["baselines"]
        identity = base.get("identity", {}).get(direction, {})
        lines.append(f"| {label} | identity (untranslated) | | | | "
                     + " | ".join(_format(identity[m]) if m in identity else "" for m in metrics)
                     + " | |")  # fmt: skip
        for row in table["rows"]:
            summary = row["summary"].get(direction, {})
            time_s = statistics.fmean(run["train_time_s"] for run in row["runs"])
            lines.append(
                f"| {label} | {row['label']} | {row['gan_weight']:g} | {row['lambda_a']:g} | "
                f"{row['lambda_b']:g} | " + " | ".join(_cell(summary.get(m)) for m in metrics)
                + f" | {time_s:.0f} |"
            )  # fmt: skip
        floor = base.get("real_vs_real", {}).get(direction, {})
        lines.append(f"| {label} | real vs real (floor) | | | | "
                     + " | ".join(_format(floor[m]) if m in floor else "" for m in metrics)
                     + " | |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _figure(table: dict, images: dict[str, dict[str, np.ndarray]]):
    """Fig. 7's view: for each direction the source images, each row's translations (first seed)
    and the true counterparts, one labelled strip each."""
    strips, labels = [], []
    for direction, source, target in translation.DIRECTIONS:
        first = images[table["rows"][0]["name"]]
        strips.append(first[source])
        labels.append(f"{DIRECTIONS[direction].split(' → ')[0]} (input)")
        for row in table["rows"]:
            strips.append(images[row["name"]][direction])
            labels.append(row["label"])
        strips.append(first[target])
        labels.append(f"{DIRECTIONS[direction].split(' → ')[1]} (true counterpart)")
    n, h, w, _ = strips[0].shape
    pad = 2
    grid = np.full((len(strips) * (h + pad), n * (w + pad), 3), 255, np.uint8)
    for i, strip in enumerate(strips):
        for j, image in enumerate(strip):
            top, left = i * (h + pad), j * (w + pad)
            grid[top : top + h, left : left + w] = image  # grayscale broadcasts to RGB
    # Axes placed in inches: tight_layout cuts the long row labels of a tall, narrow figure.
    label_width, tile, title = 2.5, 0.55, 0.5
    width, height = label_width + tile * n + 0.1, tile * len(strips) + title + 0.1
    fig = Figure(figsize=(width, height), dpi=100)
    ax = fig.add_axes(
        (label_width / width, 0.1 / height, tile * n / width, tile * len(strips) / height)
    )
    ax.imshow(grid, interpolation="nearest")
    ax.set_yticks([i * (h + pad) + h / 2 for i in range(len(strips))], labels, fontsize="small")
    ax.set_xticks([])
    seeds = table["train_seeds"]
    ax.set_title(
        f"CycleGAN ablation, {table['train_steps']:,} iterations at {table['resolution']}² "
        f"(seed {seeds[0]})",
        fontsize="medium",
    )
    return fig
