"""What every experiment leaves: W/eval/<experiment>.json (the table and how it was made), its
plot .png, and optionally a Markdown table for people, each written atomically."""

from __future__ import annotations

import json
import os
import time

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no global backend state

from jaxgan.core import run_files, store


def write_table(table: dict, workdir: str, plot, markdown: str | None = None) -> dict:
    """W/eval/<experiment>.json, its plot `.png` (and `.md`, the table for people), each written
    atomically; returns the table. `plot(table)` returns a Figure or uint8 pixels [H, W, C]."""
    stem = os.path.join(workdir, "eval", table["experiment"])
    table["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run_files.write_text(f"{stem}.json", json.dumps(table, indent=1))
    if markdown is not None:
        run_files.write_text(f"{stem}.md", markdown)
    picture = plot(table)
    if isinstance(picture, np.ndarray):  # uint8 pixels (a grid of images), written exactly
        run_files.save_png(f"{stem}.png", picture)
    else:  # a matplotlib Figure
        png = store.written_bytes(lambda f: picture.savefig(f, format="png"))
        store.write_atomic(f"{stem}.png", png, suffix=".png")
    return table


def figure(table: dict, title: str):
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.add_subplot()
    c = table["classifier"]
    ax.set_title(f"{title}: {table['dataset']}, step {table['checkpoint']}", fontsize="medium")
    ax.set_ylabel(f"accuracy on {table['test_set']} ({c['recipe']}, {c['steps']} steps)")
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.13, right=0.97, top=0.9, bottom=0.13)
    return fig, ax
