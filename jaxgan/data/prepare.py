"""Prepared datasets, written once.

  python -m jaxgan.data.prepare DATASET --resolution=R --out=DIR [--channels=C]
  python -m jaxgan.data.prepare emoji --out=DIR [--google=TGZ --twitter=TGZ] [--size=64]

DATASET (any dataset string: folder:PATH, tfds:NAME, fashion_mnist, ...): every image fitted to
R x R once, as PGGAN's and StyleGAN2-ADA's dataset tools do, into uint8 .npy arrays that training
reads memory-mapped as `prepared:DIR` (`prepare_dataset`): no decoding or resizing per step.

emoji: an offline, real, *paired* translation dataset. The same emoji drawn in two
artistic styles, Google's Noto (Apache-2.0) as domain A and Twitter's Twemoji (CC-BY 4.0) as
domain B, from the npm tarballs `emoji-datasource-google@16.0.0` and
`emoji-datasource-twitter@16.0.0` (`package/img/<style>/64/<codepoint>.png`, 64×64 RGBA).
Without --google / --twitter the tarballs are fetched with `npm pack` into --cache_dir.

DIR gets the CycleGAN layout read by `two_domain.open_domains('folder:DIR')`:
  trainA/ testA/   Google style      every image alpha-composited on white (RGB PNG), at --size
  trainB/ testB/   Twitter style     (Lanczos from 64 when smaller)
  categories.json  {file name: category}: `package/emoji.json`'s `category` of the emoji, a
                   skin-tone variant taking its own or else its parent's (EMOJI_CATEGORIES, the
                   labels `emoji_cnn` is trained on: style x category)
  prepare.json     sources (versions, sha256), split rule, counts, category counts, licences
Only codepoints drawn in both styles are kept, under the same file name in A and B: training reads
the domains unpaired, evaluation pairs them by name (`two_domain.pairs`). The split is by
codepoint and deterministic (`emoji_split`): sha256 of the name with skin-tone modifiers and
variation selectors removed, so an emoji and its skin-tone variants fall in the same split (no
recoloured copy of a test image in train; gender variants of a ZWJ sequence are grouped apart)
and a name keeps its split in any package version.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

import numpy as np
from absl import app, flags
from PIL import Image

from jaxgan import data
from jaxgan.core import errors
from jaxgan.data import pipeline, sources

EMOJI_VERSION = "16.0.0"
EMOJI_STYLES = {"A": "google", "B": "twitter"}  # domain -> emoji-datasource-<style>
EMOJI_SIZE = 64  # the only size of the packages' individual images
EMOJI_TEST_PERCENT = 20
# Fitzpatrick modifiers U+1F3FB..U+1F3FF and the emoji variation selector U+FE0F.
EMOJI_VARIANT_PARTS = {"1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff", "fe0f"}
EMOJI_LICENCES = {
    "google": "Noto Emoji images, Apache License 2.0 (github.com/googlefonts/noto-emoji)",
    "twitter": "Twemoji graphics, CC-BY 4.0, (c) Twitter, Inc and other contributors "
    "(github.com/jdecked/twemoji, LICENSE-GRAPHICS)",
}
DEFAULT_CACHE_DIR = os.path.join("~", ".cache", "jaxgan", "npm")
# emoji.json's categories (16.0.0), sorted: a category's index here is its label (emoji_cnn's).
EMOJI_CATEGORIES = (
    "Activities",
    "Animals & Nature",
    "Component",
    "Flags",
    "Food & Drink",
    "Objects",
    "People & Body",
    "Smileys & Emotion",
    "Symbols",
    "Travel & Places",
)


def emoji_group(name: str) -> str:
    """'1f44b-1f3fd.png' -> '1f44b': the codepoints without skin tones and variation selectors."""
    parts = os.path.splitext(name)[0].lower().split("-")
    return "-".join(p for p in parts if p not in EMOJI_VARIANT_PARTS) or "-".join(parts)


def emoji_split(name: str) -> str:
    """'train' or 'test' (EMOJI_TEST_PERCENT % of the groups), a pure function of the name."""
    digest = hashlib.sha256(emoji_group(name).encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % 100 < EMOJI_TEST_PERCENT else "train"


def read_emoji_pngs(tarball: str, style: str) -> dict[str, bytes]:
    """{file name: PNG bytes} of `package/img/<style>/64/*.png` in an emoji-datasource tarball."""
    prefix = f"package/img/{style}/{EMOJI_SIZE}/"
    try:
        with tarfile.open(tarball) as tar:
            found = {
                member.name[len(prefix) :]: tar.extractfile(member).read()
                for member in tar
                if member.isfile()
                and member.name.startswith(prefix)
                and member.name.endswith(".png")
                and "/" not in member.name[len(prefix) :]
            }
    except (OSError, tarfile.TarError) as e:
        raise errors.DataError(
            f"--{style}={tarball}: cannot read it as a tarball ({e}). Pass the file "
            f"`npm pack emoji-datasource-{style}@{EMOJI_VERSION}` writes, or leave out --{style} to "
            f"fetch it with npm."
        ) from e
    if not found:
        raise errors.DataError(
            f"--{style}={tarball} has no {prefix}*.png: it is not the emoji-datasource-{style} "
            f"package. Pass the file `npm pack emoji-datasource-{style}@{EMOJI_VERSION}` writes."
        )
    return found


def read_emoji_categories(tarball: str, style: str) -> dict[str, str]:
    """{file name: category} from `package/emoji.json` of an emoji-datasource tarball: each emoji's
    `image` -> its `category`, each of its `skin_variations` -> its own `category`, else the
    parent's (16.0.0's variations carry none)."""
    try:
        with tarfile.open(tarball) as tar:
            entries = json.load(tar.extractfile("package/emoji.json"))
    except (KeyError, OSError, tarfile.TarError, ValueError) as e:
        raise errors.DataError(
            f"--{style}={tarball}: cannot read package/emoji.json from it ({e}). Pass the file "
            f"`npm pack emoji-datasource-{style}@{EMOJI_VERSION}` writes."
        ) from e
    categories = {}
    for entry in entries:
        categories[entry["image"]] = entry["category"]
        for variation in (entry.get("skin_variations") or {}).values():
            categories[variation["image"]] = variation.get("category", entry["category"])
    return categories


def npm_pack(package: str, version: str, cache_dir: str) -> str:
    """Path of `<package>-<version>.tgz` in cache_dir, fetched with `npm pack` if not there yet."""
    cache_dir = os.path.expanduser(cache_dir)
    path = os.path.join(cache_dir, f"{package}-{version}.tgz")
    if os.path.isfile(path):
        return path
    style = package.rsplit("-", 1)[-1]
    by_hand = (
        f"On a machine with npm, run `npm pack {package}@{version}` and pass the tarball it "
        f"writes with --{style}=PATH."
    )
    npm = shutil.which("npm")
    if npm is None:
        raise errors.DataError(
            f"Fetching {package}@{version} needs npm, which is not on PATH. Install it (Debian: "
            f"sudo apt-get install npm), or: {by_hand}"
        )
    os.makedirs(cache_dir, exist_ok=True)
    print(f"npm pack {package}@{version} -> {cache_dir}", file=sys.stderr, flush=True)
    result = subprocess.run(
        [npm, "pack", f"{package}@{version}", "--pack-destination", cache_dir],
        capture_output=True,
        text=True,
    )
    if result.returncode or not os.path.isfile(path):
        raise errors.DataError(
            f"`npm pack {package}@{version}` failed (exit {result.returncode}) and left no {path}: "
            f"{result.stderr.strip()[-800:]}\nCheck the registry is reachable, or: {by_hand}"
        )
    return path


def _emoji_image(png: bytes, size: int) -> Image.Image:
    with Image.open(io.BytesIO(png)) as image:
        rgba = np.asarray(image.convert("RGBA"))  # palette PNGs carry alpha as tRNS
    return Image.fromarray(pipeline.fit_image(rgba, size, 3))  # composited on white


def prepare_emoji(
    out: str,
    google: str | None = None,
    twitter: str | None = None,
    size: int = EMOJI_SIZE,
    cache_dir: str = DEFAULT_CACHE_DIR,
) -> dict:
    """Writes DIR/{trainA,trainB,testA,testB} (module docstring); returns prepare.json's dict."""
    if not 1 <= size <= EMOJI_SIZE:
        raise errors.ConfigError(
            f"--size={size}: the emoji images are {EMOJI_SIZE}×{EMOJI_SIZE}; pick a size from 1 to "
            f"{EMOJI_SIZE} (larger would only upsample)."
        )
    folders = {f"{split}{d}": os.path.join(out, f"{split}{d}") for split in ("train", "test")
               for d in EMOJI_STYLES}  # fmt: skip
    for path in folders.values():
        if os.path.isdir(path) and os.listdir(path):
            raise errors.DataError(
                f"--out={out}: {path} already holds {len(os.listdir(path))} files. Choose a new "
                f"--out, or delete {out} to prepare it again."
            )
    given = {"google": google, "twitter": twitter}
    tarballs = {
        style: given[style] or npm_pack(f"emoji-datasource-{style}", EMOJI_VERSION, cache_dir)
        for style in EMOJI_STYLES.values()
    }
    pngs = {d: read_emoji_pngs(tarballs[style], style) for d, style in EMOJI_STYLES.items()}
    names = sorted(pngs["A"].keys() & pngs["B"].keys())
    categories = _emoji_categories(tarballs, names)
    for path in folders.values():
        os.makedirs(path, exist_ok=True)
    counts = {name: 0 for name in folders}
    for name in names:
        split = emoji_split(name)
        for d in EMOJI_STYLES:
            _emoji_image(pngs[d][name], size).save(os.path.join(folders[f"{split}{d}"], name))
            counts[f"{split}{d}"] += 1
    manifest = {
        "dataset": "emoji",
        "domains": {
            d: f"emoji-datasource-{style}@{EMOJI_VERSION}" for d, style in EMOJI_STYLES.items()
        },
        "tarballs": {
            style: {"file": os.path.basename(path), "sha256": _sha256(path)}
            for style, path in tarballs.items()
        },
        "size": size,
        "background": "white (alpha composited)",
        "split": f"test if int(sha256(emoji_group(name))[:8 bytes]) % 100 < {EMOJI_TEST_PERCENT}",
        "counts": counts,
        "only_in": {EMOJI_STYLES[d]: len(pngs[d].keys() - set(names)) for d in EMOJI_STYLES},
        "categories": {
            "file": "categories.json",
            "source": "package/emoji.json `category`; a skin variation's own, else its parent's",
            "counts": {c: sum(v == c for v in categories.values()) for c in EMOJI_CATEGORIES},
        },
        "pairing": "the same file name in A and B is the same emoji",
        "licences": EMOJI_LICENCES,
    }
    with open(os.path.join(out, "categories.json"), "w") as f:
        json.dump(categories, f, indent=0, sort_keys=True)
    with open(os.path.join(out, "prepare.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def _emoji_categories(tarballs: dict[str, str], names: list[str]) -> dict[str, str]:
    """{name: category} of the kept names, from both packages' emoji.json (which must agree)."""
    found = {style: read_emoji_categories(path, style) for style, path in tarballs.items()}
    categories = {}
    for name in names:
        seen = {found[style][name] for style in found if name in found[style]}
        if len(seen) != 1 or not seen <= set(EMOJI_CATEGORIES):
            raise errors.DataError(
                f"{name}: package/emoji.json gives it the categories {sorted(seen) or 'none'} in "
                f"{' and '.join(f'--{s}={p}' for s, p in tarballs.items())}; expected one of "
                f"EMOJI_CATEGORIES ({', '.join(EMOJI_CATEGORIES)}). Pass the tarballs of "
                f"emoji-datasource-*@{EMOJI_VERSION}."
            )
        categories[name] = seen.pop()
    return categories


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


DATASETS = {"emoji": prepare_emoji}
FLAGS = flags.FLAGS


def prepare_dataset(
    dataset: str, out: str, resolution: int, channels: int = 0, chunk: int = 1000
) -> dict:
    """Writes `dataset` (any dataset string) at `resolution` as a prepared dataset, read back by
    `prepared:OUT`: OUT/<split>/images.npy (uint8 [N, R, R, C], each image `fit_image`-ed as
    training would fit it), OUT/<split>/labels.npy (int32 [N]) and OUT/prepared.json. Splits train
    and test (a folder: train only), in source order. Written into a temporary folder renamed at
    the end: a killed run leaves no half-prepared OUT. Returns the manifest."""
    import concurrent.futures

    if os.path.exists(out):
        raise errors.ConfigError(f"--out={out} exists; prepare into a new folder.")
    kind = data.parse(dataset)[0]
    splits = ("train",) if kind == "folder" else ("train", "test")
    tmp = f"{out}.tmp-{os.getpid()}"
    manifest = {"dataset": dataset, "resolution": resolution, "splits": {}}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for split in splits:
            source = data.open_source(dataset, split, None, channels or None)
            channels = channels or source.channels
            os.makedirs(os.path.join(tmp, split))
            images = np.lib.format.open_memmap(
                os.path.join(tmp, split, sources.PREPARED_IMAGES), "w+", np.uint8,
                (len(source), resolution, resolution, channels),
            )  # fmt: skip
            labels = np.empty(len(source), np.int32)
            for start in range(0, len(source), chunk):
                index = np.arange(start, min(start + chunk, len(source)))
                batch, labels[index] = sources.fetch(source, index, pool)
                images[index] = list(
                    pool.map(lambda im: data.fit_image(im, resolution, channels), batch)
                )
            images.flush()
            del images
            np.save(os.path.join(tmp, split, sources.PREPARED_LABELS), labels)
            manifest["splits"][split] = len(source)
            manifest["num_classes"] = source.num_classes
    manifest["channels"] = channels
    with open(os.path.join(tmp, sources.PREPARED_MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(tmp, out)
    return manifest


def main(argv):
    if len(argv) != 2:
        raise app.UsageError(
            f"Name one dataset to prepare: python -m jaxgan.data.prepare "
            f"{{{','.join(DATASETS)}}} --out=DIR, or python -m jaxgan.data.prepare DATASET "
            f"--resolution=R --out=DIR (got {' '.join(argv[1:]) or 'none'})."
        )
    try:
        if argv[1] in DATASETS:
            manifest = DATASETS[argv[1]](
                FLAGS.out, FLAGS.google, FLAGS.twitter, FLAGS.size, FLAGS.cache_dir
            )
            summary = {**manifest["counts"], "only_in": manifest["only_in"]}
        else:
            if not FLAGS.resolution:
                raise errors.ConfigError(
                    f"Preparing {argv[1]} needs --resolution=R (the training resolution)."
                )
            summary = prepare_dataset(argv[1], FLAGS.out, FLAGS.resolution, FLAGS.channels)
    except errors.UserError as e:  # bad input: the message says what to do
        sys.exit(f"{type(e).__name__}: {e}")
    print(json.dumps({"out": FLAGS.out, **summary}))


def define_flags() -> None:
    """Registered only when run as a program: importing this module defines no global flags."""
    flags.DEFINE_string(
        "out", None, "Folder to write (DATASET: prepared.json, train/, test/; emoji: trainA/ ...)."
    )
    flags.DEFINE_string(
        "google", None, "emoji: emoji-datasource-google tarball (default: npm pack)."
    )
    flags.DEFINE_string(
        "twitter", None, "emoji: emoji-datasource-twitter tarball (default: npm pack)."
    )
    flags.DEFINE_integer("size", EMOJI_SIZE, f"Image size (at most {EMOJI_SIZE}).")
    flags.DEFINE_string("cache_dir", DEFAULT_CACHE_DIR, "Where `npm pack` puts the tarballs.")
    flags.DEFINE_integer("resolution", 0, "DATASET: the training resolution to write at.")
    flags.DEFINE_integer("channels", 0, "DATASET: channels to write (0: the source's).")
    flags.mark_flag_as_required("out")


def run():
    """The `jaxgan-prepare` console script."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
