"""README's translation figures: chosen test emoji of translation runs on the emoji pair, both
ways, beside the true counterparts (which the training never saw paired).

    python scripts/make_translation_figure.py --workdir=runs/cyclegan --data=data/emoji \\
        --out=docs/cyclegan_emoji.png [--names=1f600,1f638,...]
    python scripts/make_translation_figure.py --workdir=runs/cyclegan,runs/nicegan ...

Rows: Google (A), each run's A -> B (to compare with the next row), Twitter (B), each run's B -> A
(to compare with the first row).
Translations come from `python -m jaxgan.translate`'s `translate_folder` on the run's latest
checkpoint.
"""

import argparse
import os
import shutil
import sys
import tempfile

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jaxgan import translate  # noqa: E402
from jaxgan.core import run_files  # noqa: E402

# Faces, a cat, people with skin tones, an animal, food, an object, a symbol: the categories.
NAMES = "1f600,1f622,1f638,1f477-1f3fc,1f9cf-1f3fc,1fa9c,1f509,1f235"


def translated_row(workdir, direction, folder, names, tmp):
    source = os.path.join(tmp, direction, "in")
    os.makedirs(source)
    for name in names:
        shutil.copy(os.path.join(folder, f"{name}.png"), source)
    paths = translate.translate_folder(workdir, direction, source, os.path.join(tmp, direction,
                                       "out"), progress=False)  # fmt: skip
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="one run, or several separated by commas")
    parser.add_argument("--data", required=True, help="the prepared pair (trainA/ ... testB/)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--names", default=NAMES)
    args = parser.parse_args()
    names = sorted(args.names.split(","))  # translate_folder returns its outputs by file name
    read = lambda d: [np.asarray(Image.open(os.path.join(args.data, d, f"{n}.png")).convert("RGB"))
                      for n in names]  # noqa: E731  # fmt: skip
    a, b = read("testA"), read("testB")
    rows = {"AtoB": [a], "BtoA": [b]}
    for workdir in args.workdir.split(","):
        for direction, domain in (("AtoB", "testA"), ("BtoA", "testB")):
            with tempfile.TemporaryDirectory() as tmp:
                folder = os.path.join(args.data, domain)
                rows[direction].append(translated_row(workdir, direction, folder, names, tmp))
    rows = rows["AtoB"] + rows["BtoA"]
    images = np.stack([im for row in rows for im in row]).astype(np.float32) / 127.5 - 1.0
    grid = run_files.make_grid(images, columns=len(names))
    run_files.save_png(args.out, grid)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
