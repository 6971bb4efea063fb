"""README's CycleGAN figure: chosen test emoji of a translation run on the emoji pair, both ways,
beside the true counterparts (which the training never saw paired).

    python scripts/make_translation_figure.py --workdir=runs/cyclegan --data=data/emoji \\
        --out=docs/cyclegan_emoji.png [--names=1f600,1f638,...]

Rows: Google (A), G_A(A) (to compare with the next row), Twitter (B), G_B(B) (to compare with the
first row).
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
from jaxgan import logging as run_logging  # noqa: E402
from jaxgan import translate  # noqa: E402

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
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--data", required=True, help="the prepared pair (trainA/ ... testB/)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--names", default=NAMES)
    args = parser.parse_args()
    names = sorted(args.names.split(","))  # translate_folder returns its outputs by file name
    read = lambda d: [np.asarray(Image.open(os.path.join(args.data, d, f"{n}.png")).convert("RGB"))
                      for n in names]  # noqa: E731  # fmt: skip
    a, b = read("testA"), read("testB")
    with tempfile.TemporaryDirectory() as tmp:
        a_to_b = translated_row(args.workdir, "AtoB", os.path.join(args.data, "testA"), names, tmp)
        b_to_a = translated_row(args.workdir, "BtoA", os.path.join(args.data, "testB"), names, tmp)
    rows = [a, a_to_b, b, b_to_a]
    images = np.stack([im for row in rows for im in row]).astype(np.float32) / 127.5 - 1.0
    grid = run_logging.make_grid(images, columns=len(names))
    run_logging.save_png(args.out, grid)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
