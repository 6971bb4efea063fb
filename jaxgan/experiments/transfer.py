"""Transferring GANs' experiments (Wang et al. 2018), one command per table:

  python -m jaxgan.experiments transfer --workdir=OUT --table=TABLE [--per_class=10,100,0]
      [--train_steps=1000] [--train_seeds=0,1,2] [--target=fashion_mnist] [--source=W]
      [--sources=mnist5k,fashion_mnist:class=0] [--freeze_blocks=1] [--transfer_metrics=fid]

Every row is a GAN trained on the target's `TARGET:n=K` subset (K images per class of its train
split; K=0: all of it) for the same number of iterations, once per training seed, in
OUT/<row name>[_s<seed>], and scored at every checkpoint against the target's *test* split by the
evaluator (its defaults: the papers' sample counts; on fashion_mnist the `fashion_cnn` domain
FID). K is the first of --per_class except in `size`. The tables:

  size         (Table 2 / Fig. 2) each K of --per_class: from scratch, and from the source (G and D)
  network      (Table 1) from scratch, G only, D only, both (`init_from_networks`)
  source       (Tables 4-5) from scratch, and from a GAN trained (`transfer:source`) on
               each dataset of --sources; beside each, the paper's selection measure: FID of the
               source GAN's samples against the target's test split, and of the real source images
  conditional  (Tables 6-7) an AC-GAN target (`transfer:conditional`: the fields
               jaxgan/configs/acgan.py sets) from scratch and from the unconditional source: FID,
               class-wise FID and GAN-test
  fewshot      (beyond the paper) plain transfer, + FreezeD (the critic's first --freeze_blocks
               blocks frozen), + DiffAugment, both; and scratch + DiffAugment

The source is `--source=W`, or OUT/source trained first with `transfer:source` (the
mnist5k digits); a --sources dataset other than that preset's trains into OUT/source_<dataset>.
Runs and evaluations resume: a killed experiment re-run continues where it stopped. Writes
OUT/eval/transfer_<table>_<sizes>_seeds<seeds>.json (e.g. transfer_size_n10-n100_seeds0: every
curve of every seed), .md (the table: the final checkpoint,
mean +- standard deviation over the training seeds) and .png (the first metric against
iterations, seed mean; transfer solid, from scratch dashed).
"""

from __future__ import annotations

import dataclasses
import os
import re
import statistics
import time
from collections.abc import Sequence

from jaxgan import data
from jaxgan.configs import transfer as presets
from jaxgan.core import run_files
from jaxgan.eval import imagesets, report, results, runner, sampling
from jaxgan.experiments import tables
from jaxgan.training import loop

TABLES = ("size", "network", "source", "conditional", "fewshot")
CONDITIONAL_METRICS = ("fid", "class_fid", "gan_test")  # Tables 6-7: FID per class and GAN-test
DIFFAUGMENT = "color,translation,cutout"  # the DiffAugment paper's policy for few-shot data


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of a table: how its target runs are made (each trained once per training seed)."""

    label: str  # as the table prints it
    name: str  # its workdirs' stem
    per_class: int
    networks: str = ""  # what starts from the source: '' (from scratch), 'g', 'd' or 'g,d'
    source: str = ""  # the source run's workdir ('' with networks '')
    overrides: tuple[tuple[str, object], ...] = ()


def size_tag(per_class: int) -> str:
    return f"n{per_class}" if per_class else "all"


def dataset_tag(dataset: str) -> str:
    """'fashion_mnist:class=0' -> 'fashion_mnist_class0': a dataset string as a file name."""
    return re.sub(r"[^A-Za-z0-9]+", "_", dataset.replace("=", "")).strip("_")


def rows_of(
    table: str, per_class: Sequence[int], source: str, sources: dict[str, str], freeze_blocks: int
) -> list[Row]:
    """The rows of `table` (module doc); `sources` maps each --sources dataset to its run."""
    k, tag = per_class[0], size_tag(per_class[0])

    def scratch(k=k):
        return Row("from scratch", f"{size_tag(k)}_scratch", k)

    def transfer(k=k, label="transfer (G and D)"):
        return Row(label, f"{size_tag(k)}_transfer", k, "g,d", source)

    if table == "size":
        return [row for k in per_class for row in (scratch(k), transfer(k))]
    if table == "network":
        return [
            scratch(), Row("G only", f"{tag}_g", k, "g", source),
            Row("D only", f"{tag}_d", k, "d", source), transfer(label="G and D"),
        ]  # fmt: skip
    if table == "source":
        rows = [scratch()]
        for dataset, run in sources.items():
            name = f"{tag}_transfer" if run == source else f"{tag}_from_{dataset_tag(dataset)}"
            rows.append(Row(f"from {dataset}", name, k, "g,d", run))
        return rows
    if table == "conditional":
        conditional = tuple(
            presets.conditional_fields().items()
        )  # the AC-GAN of jaxgan/configs/acgan.py
        return [
            Row("AC-GAN from scratch", f"{tag}_cond_scratch", k, overrides=conditional),
            Row("AC-GAN from the unconditional source", f"{tag}_cond_transfer", k, "g,d", source,
                conditional),
        ]  # fmt: skip
    if table == "fewshot":
        freeze = (("d_freeze_blocks", freeze_blocks),)
        augment = (("diffaugment", DIFFAUGMENT),)
        frozen = f"freezed{freeze_blocks}"
        return [
            scratch(),
            Row("from scratch + DiffAugment", f"{tag}_scratch_diffaug", k, overrides=augment),
            transfer(label="transfer"),
            Row(f"transfer + FreezeD ({freeze_blocks} blocks)", f"{tag}_transfer_{frozen}", k,
                "g,d", source, overrides=freeze),
            Row("transfer + DiffAugment", f"{tag}_transfer_diffaug", k, "g,d", source,
                overrides=augment),
            Row("transfer + FreezeD + DiffAugment", f"{tag}_transfer_{frozen}_diffaug", k, "g,d",
                source, overrides=freeze + augment),
        ]  # fmt: skip
    raise ValueError(f"Unknown transfer table {table!r}: use one of {', '.join(TABLES)}.")


def target_config(row: Row, preset: str, target: str, train_steps: int, seed: int, overrides: dict):
    """`jaxgan/configs/transfer.py:<preset>` on `target` (row.per_class per class) for `train_steps`."""

    config = presets.get_config(preset)
    config.data.dataset = f"{target}:n={row.per_class}" if row.per_class else target
    config.num_steps = train_steps
    every = max(1, train_steps // 4)  # four points per curve
    config.sample_every = config.checkpoint_every = config.keep_every = every
    config.seed = seed
    config.init_from = row.source if row.networks else ""
    config.init_from_networks = row.networks or config.init_from_networks
    config.update_from_flattened_dict(dict(row.overrides))
    config.update_from_flattened_dict(overrides)
    return config


def _curves(workdir: str, metrics: Sequence[str]) -> dict[str, list[list[float]]]:
    """metric -> [[step, value], ...] of the newest settings in W/eval/metrics.jsonl."""

    rows = results.MetricsLog(os.path.join(workdir, "eval", "metrics.jsonl")).rows
    curves = {}
    for metric in metrics:
        scored = [r for r in rows if r["kind"] == "checkpoint" and r["metric"] == metric]
        scored = [r for r in scored if r.get("value") is not None]
        newest = report.settings(scored[-1]) if scored else None
        by_step = {r["step"]: r["value"] for r in scored if report.settings(r) == newest}
        curves[metric] = [[step, by_step[step]] for step in sorted(by_step)]
    return curves


def _spread(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values) if values else None,
        "sd": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
    }


def train_source(workdir: str, preset: str, dataset: str | None, overrides: dict) -> str:
    """`jaxgan/configs/transfer.py:<preset>` (on `dataset`, if given) trained in `workdir`, or resumed."""

    config = presets.get_config(preset)
    config.data.dataset = dataset or config.data.dataset
    config.update_from_flattened_dict(overrides)
    loop.train_and_evaluate(config, workdir)  # resumes, or is done
    return workdir


def source_fids(out: str, source: str, source_dataset: str, target: str, options) -> dict:
    """The paper's source-selection measure (Table 5): FID of 10,000 samples (`--num_samples`) of the
    source GAN's newest checkpoint, and of the real source train images, against the target's test
    split."""
    import numpy as np
    from absl import logging

    config = sampling.load_config(source)
    n = options.num_samples or 10_000
    images, _, step = sampling.sample_checkpoint(source, config, "latest", n, options.seed)
    path = os.path.join(out, "eval", "source_samples", f"{dataset_tag(source_dataset)}.npz")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    run_files.atomic_write(path, lambda tmp: np.savez(tmp, images=images), suffix=".npz")
    reference = split_spec(target, "test")
    fid = lambda fake: runner.evaluate_sets(reference, fake, ["fid"], options)[0]["value"]
    logging.info(
        "Source %s: FID of its GAN's samples and real images vs %s.", source_dataset, reference
    )
    return {
        "source_gan_fid": fid(path),
        "source_real_fid": fid(split_spec(source_dataset, "train")),
        "source_step": step,
    }


def split_spec(dataset: str, split: str) -> str:
    """'fashion_mnist:class=0', 'train' -> 'fashion_mnist:train:class=0': the evaluator's spec of one
    split of an embedded dataset (tfds strings name their split themselves)."""

    kind, _, rest = dataset.partition(":")
    if kind not in imagesets.EMBEDDED_DATASETS:
        return dataset
    return f"{kind}:{split}" + (f":{rest}" if rest else "")


def run_table(
    out: str,
    table: str,
    per_class: Sequence[int],
    train_steps: int,
    options,
    source: str | None = None,
    target: str = "fashion_mnist",
    metrics: Sequence[str] | None = None,
    train_seeds: Sequence[int] = (0,),
    sources: Sequence[str] = (),
    freeze_blocks: int = 1,
    preset: str = "",
    source_preset: str = "source",
    overrides: dict | None = None,
) -> dict:
    """Trains and scores every row of `table` (module doc); writes and returns the table."""

    start = time.perf_counter()
    overrides = overrides or {}
    metrics = list(metrics or (CONDITIONAL_METRICS if table == "conditional" else ["fid"]))
    options = dataclasses.replace(options, real_split="test")  # the paper: the target's test set
    default_source = presets.get_config(source_preset).data.dataset
    source = source or train_source(os.path.join(out, "source"), source_preset, None, overrides)
    chosen = {
        dataset: source if dataset == default_source else train_source(
            os.path.join(out, f"source_{dataset_tag(dataset)}"), source_preset, dataset, overrides
        )
        for dataset in ((sources or [default_source]) if table == "source" else [])
    }  # fmt: skip
    rows = []
    for row in rows_of(table, per_class, source, chosen, freeze_blocks):
        runs = []
        for seed in train_seeds:
            config = target_config(row, preset, target, train_steps, seed, overrides)
            workdir = os.path.join(out, row.name + (f"_s{seed}" if seed else ""))
            loop.train_and_evaluate(config, workdir)
            runner.evaluate_workdir(workdir, metrics, options)
            curves = _curves(workdir, metrics)
            final = {m: c[-1][1] if c else None for m, c in curves.items()}
            runs.append({"seed": seed, "workdir": workdir, "curves": curves, "final": final})
        n_images = len(data.open_source(config.data.dataset, "train", config.data.data_dir))
        summary = {m: _spread([r["final"][m] for r in runs if r["final"][m] is not None])
                   for m in metrics}  # fmt: skip
        entry = {**dataclasses.asdict(row), "n_images": n_images, "runs": runs, "final": summary}
        if table == "source" and row.networks:
            dataset = next(d for d, run in chosen.items() if run == row.source)
            entry["source_dataset"] = dataset
            entry["selection"] = source_fids(out, row.source, dataset, target, options)
        rows.append(entry)
    sizes = "-".join(size_tag(k) for k in (per_class if table == "size" else per_class[:1]))
    result = {
        # One file per table, sizes and seeds: a table re-run with other seeds is another file.
        "experiment": f"transfer_{table}_{sizes}_seeds{'-'.join(map(str, train_seeds))}",
        "table": table,
        "source": os.path.abspath(source),
        "target": target,
        "reference": f"{target}:test",
        "train_steps": train_steps,
        "train_seeds": list(train_seeds),
        "metrics": metrics,
        "rows": rows,
        "wall_time_s": round(time.perf_counter() - start, 1),
    }
    tables.write_table(result, out, _plot, markdown(result))
    return result


def _cell(spread: dict) -> str:
    if spread["mean"] is None:
        return "—"
    return f"{spread['mean']:.4g}" + (f" ± {spread['sd']:.2g}" if spread["sd"] is not None else "")


def markdown(table: dict) -> str:
    """One line per row: its final checkpoint's metrics, mean ± sd over the training seeds."""
    seeds = table["train_seeds"]
    header = ["run", "target images"] + [f"{m} (final)" for m in table["metrics"]]
    if table["table"] == "source":
        header += ["FID source GAN → target", "FID real source → target"]
    lines = [
        f"Target {table['target']}, {table['train_steps']} iterations, scored against "
        f"{table['reference']}; training seeds {', '.join(map(str, seeds))}"
        + (" (mean ± sd)" if len(seeds) > 1 else "") + f"; source {table['source']}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]  # fmt: skip
    for row in table["rows"]:
        cells = [row["label"], f"{row['n_images']:,}"]
        cells += [_cell(row["final"][m]) for m in table["metrics"]]
        if table["table"] == "source":
            selection = row.get("selection", {})
            cells += [f"{selection[k]:.4g}" if k in selection else "—"
                      for k in ("source_gan_fid", "source_real_fid")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot(table: dict):
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    metric = table["metrics"][0]
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.add_subplot()
    for i, row in enumerate(table["rows"]):
        by_step: dict[int, list[float]] = {}
        for run in row["runs"]:
            for step, value in run["curves"][metric]:
                by_step.setdefault(step, []).append(value)
        steps = sorted(by_step)
        style = "-" if row["networks"] else "--"
        label = f"{row['label']}, {row['n_images']:,} images"
        ax.plot(steps, [statistics.fmean(by_step[s]) for s in steps], style, marker="o",
                color=f"C{i}", label=label)  # fmt: skip
    ax.set_title(
        f"Transferring GANs, {table['table']}: {metric} on {table['reference']}", fontsize="medium"
    )
    ax.set_xlabel("generator iterations")
    ax.set_ylabel(metric + (" (mean over training seeds)" if len(table["train_seeds"]) > 1 else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.subplots_adjust(left=0.13, right=0.97, top=0.9, bottom=0.13)
    return fig
