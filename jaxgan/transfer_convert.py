"""Convert a released Transferring GANs model (TF checkpoint) into a jaxgan run for `init_from`.

    python -m jaxgan.transfer_convert \
        --tf_checkpoint=transfer_model/unconditional/bedroom/wgan-gp.model --workdir=runs/bedroom
    python -m jaxgan.main --config=wgan_gp:resnet64 --workdir=runs/mine \
        --config.init_from=runs/bedroom --config.data.dataset=folder:data/my_images64

The release (yaxingwang/Transferring-GANs, README "Download pretrain models") holds
`transfer_model/{conditional,unconditional}/{imagenet,places,celebA,bedroom}/wgan-gp.model`: igul222's
gan_64x64.py GoodGenerator / GoodDiscriminator (DIM=64, z 128-D, LayerNorm critic), saved by TF1's
`tf.train.Saver`; the conditional ones (ACGAN=True) have per-class BatchNorm [10, C] in G and the
`Discriminator.ACGANOutput` head. Each reference variable maps to one parameter of our
`wgan_gp:resnet64` (jaxgan/models/resnet.py Generator64 / Critic64) by the table
`mapping()` builds; the generator's EMA starts equal to G. Layouts are the same (tflib conv filters
are [kh, kw, in, out] = our HWIO, cross-correlation, SAME; its UpsampleConv is nearest ×2 then a
conv, not a transposed conv, so no flip) except where the reference flattens or reshapes NCHW
activations: G's input Linear (its 4·4·8D outputs are (channel, row, col)) and D's Output /
ACGANOutput Linear (inputs (channel, row, col)) are permuted to our (row, col, channel).

Also in the checkpoint and deliberately not converted: the fused BatchNorms' `moving_mean` /
`moving_variance` (tflib's Batchnorm with is_training=None never reads them: it always normalises
with batch statistics, as ours does) and any Adam slots / beta powers (transfer_gan.py restores
only parameters; the optimiser starts fresh). Any other variable left unmapped, and any parameter
of ours left unfilled, is an error naming it. Width, latent size and number of classes are read
from the shapes; the written workdir holds `config.json` (the resnet64 preset at that width,
conditional when the checkpoint is), a step-0 checkpoint in the structure the run loop writes, and
`converted_from.txt` (the table, with shapes). The TF files are read without TensorFlow
(jaxgan/core/tf_checkpoint.py).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence

import jax
import numpy as np

from jaxgan.configs import wgan_gp
from jaxgan.core import errors, parallel, tf_checkpoint
from jaxgan.methods import gan
from jaxgan.training import transfer

RELEASE_README = "https://github.com/yaxingwang/Transferring-GANs#instructions"
RELEASE_LINKS = (
    "https://drive.google.com/file/d/1e7Pw-m-DgAiB_aQnNUUwBRVFc2izRiRw/view?usp=sharing",
    "https://share.weiyun.com/5mBsISh",
)
RELEASE_LAYOUT = (
    "transfer_model/{conditional,unconditional}/{imagenet,places,celebA,bedroom}/wgan-gp.model"
)

# Reference variables that hold no parameter of the network (see the module docstring).
IGNORED = re.compile(
    r".*\.moving_(mean|variance)"  # fused Batchnorm's running stats: never read
    r"|.*/Adam(_\d+)?"  # Adam's slots
    r"|beta[12]_power(_\d+)?"  # Adam's bias-correction powers
)
ENTRIES = {"Generator": "g_params", "Discriminator": "d_params"}


# ----------------------------------------------------------------------------------------------
# Layout changes: reference array -> ours.
# ----------------------------------------------------------------------------------------------


def same(x: np.ndarray) -> np.ndarray:
    return x


def nchw_columns_to_nhwc(w: np.ndarray, size: int = 4) -> np.ndarray:
    """G.Input.W [z, C·4·4] whose columns are (channel, row, col) -> [z, 4·4·C] as (row, col, ch)."""
    z = w.shape[0]
    return w.reshape(z, -1, size, size).transpose(0, 2, 3, 1).reshape(z, -1)


def nchw_vector_to_nhwc(b: np.ndarray, size: int = 4) -> np.ndarray:
    """G.Input.b [C·4·4] (channel, row, col) -> [4·4·C] (row, col, channel)."""
    return b.reshape(-1, size, size).transpose(1, 2, 0).reshape(-1)


def nchw_rows_to_nhwc(w: np.ndarray, size: int = 4) -> np.ndarray:
    """D.Output.W [C·4·4, n] whose rows are (channel, row, col) -> [4·4·C, n] as (row, col, ch)."""
    n = w.shape[1]
    return w.reshape(-1, size, size, n).transpose(1, 2, 0, 3).reshape(-1, n)


LAYOUTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "same": same,
    "NCHW columns -> NHWC": nchw_columns_to_nhwc,
    "NCHW -> NHWC": nchw_vector_to_nhwc,
    "NCHW rows -> NHWC": nchw_rows_to_nhwc,
}


# ----------------------------------------------------------------------------------------------
# The name table.
# ----------------------------------------------------------------------------------------------


def _linear(ref: str, ours: str, w_layout: str = "same", b_layout: str = "same"):
    # tflib Linear / Conv2D create their variables inside tf.name_scope(name): '<name>/<name>.W'.
    return [
        (f"{ref}/{ref}.W", f"{ours}/kernel", w_layout),
        (f"{ref}/{ref}.b", f"{ours}/bias", b_layout),
    ]


def _conv(ref: str, ours: str, bias: bool = True):
    rows = [(f"{ref}/{ref}.Filters", f"{ours}/kernel", "same")]
    return rows + ([(f"{ref}/{ref}.Biases", f"{ours}/bias", "same")] if bias else [])


def _norm(ref: str, ours: str):
    # Batchnorm, cond_batchnorm and Layernorm have no name scope: '<name>.offset'.
    return [(f"{ref}.offset", f"{ours}/offset", "same"), (f"{ref}.scale", f"{ours}/scale", "same")]


def _residual_blocks(net: str):
    """ResidualBlock Res1-Res4 of GoodGenerator ('up') or GoodDiscriminator ('down'): conv_1 has
    no bias in gan_64x64.py; 'BN' names the Normalize (BatchNorm in G, LayerNorm in D)."""
    rows = []
    for i in range(1, 5):
        ref, ours = f"{net}.Res{i}", f"Res{i}"
        rows += _conv(f"{ref}.Shortcut", f"{ours}/Shortcut")
        rows += _norm(f"{ref}.BN1", f"{ours}/Norm1")
        rows += _conv(f"{ref}.Conv1", f"{ours}/Conv1", bias=False)
        rows += _norm(f"{ref}.BN2", f"{ours}/Norm2")
        rows += _conv(f"{ref}.Conv2", f"{ours}/Conv2")
    return rows


def mapping(conditional: bool) -> list[tuple[str, str, str]]:
    """(reference variable, our '<entry>/<param path>', layout) for every parameter, in the order
    the reference's GoodGenerator and GoodDiscriminator use them."""
    rows = _linear("Generator.Input", "Input", "NCHW columns -> NHWC", "NCHW -> NHWC")
    rows += _residual_blocks("Generator")
    rows += _norm("Generator.OutputN", "OutputNorm") + _conv("Generator.Output", "Output")
    rows += _conv("Discriminator.Input", "Input")
    rows += _residual_blocks("Discriminator")
    rows += _linear("Discriminator.Output", "Output", "NCHW rows -> NHWC")
    if conditional:  # ACGAN=True: the critic's class head on the same flattened features
        rows += _linear("Discriminator.ACGANOutput", "ACGANOutput", "NCHW rows -> NHWC")
    return [(ref, f"{ENTRIES[ref.split('.')[0]]}/{ours}", layout) for ref, ours, layout in rows]


# ----------------------------------------------------------------------------------------------
# Reading the source and describing it.
# ----------------------------------------------------------------------------------------------


def missing_message(what: str) -> str:
    links = " or ".join(RELEASE_LINKS)
    return (
        f"{what}\nThe Transferring GANs models are one archive linked from {RELEASE_README} "
        f"(Google Drive / Tencent qcloud: {links}). Unpacked, it holds {RELEASE_LAYOUT}.* ; pass "
        f"one of those prefixes, e.g. --tf_checkpoint=transfer_model/unconditional/bedroom/"
        f"wgan-gp.model (a directory holding one checkpoint works too)."
    )


def describe(shapes: dict[str, tuple]) -> dict:
    """Width, latent size and classes of a GoodGenerator/GoodDiscriminator checkpoint's shapes."""
    required = [
        "Generator.Input/Generator.Input.W",
        "Generator.Output/Generator.Output.Filters",
        "Generator.Res1.BN1.offset",
    ]
    absent = [n for n in required if n not in shapes]
    if absent:
        raise errors.ConfigError(
            f"not a gan_64x64 GoodGenerator/GoodDiscriminator checkpoint: it lacks {absent} "
            f"(it has e.g. {sorted(shapes)[:5]})."
        )
    width = shapes["Generator.Output/Generator.Output.Filters"][2]
    bn = shapes["Generator.Res1.BN1.offset"]
    return {
        "width": int(width),
        "z_dim": int(shapes["Generator.Input/Generator.Input.W"][0]),
        "num_classes": int(bn[0]) if len(bn) == 2 else 0,
    }


def make_config(source: dict):
    """wgan_gp:resnet64 at the source's width and latent size; AC-GAN when conditional
    (transfer_gan.py ACGAN=True: Cond BNorm, class-loss weights 1 for D and G)."""

    config = wgan_gp.get_config("resnet64")
    config.model.g_width = config.model.d_width = source["width"]
    config.model.z_dim = source["z_dim"]
    if source["num_classes"]:
        config.model.conditional_generator = config.model.ac_head = True
        config.model.conditioning = "batchnorm"
        config.ac_weight_d = config.ac_weight_g = 1.0
    return config


def convert_params(tensors: dict[str, np.ndarray], abstract: dict) -> tuple[dict, list]:
    """{entry: {path: array}} for g_params/d_params from the reference tensors, and table rows.

    abstract: {'g_params': tree, 'd_params': tree} of our shapes. Raises ConfigError naming every
    reference variable left unmapped, every parameter of ours left unfilled, and shape mismatches
    (both shapes).
    """
    ours = {
        f"{entry}/{path}": leaf
        for entry in ("g_params", "d_params")
        for path, leaf in transfer.flat_params(abstract[entry]).items()
    }
    conditional = "Discriminator.ACGANOutput/Discriminator.ACGANOutput.W" in tensors
    table = mapping(conditional)
    mapped = {ref for ref, _, _ in table}
    problems = [
        f"  reference variable {n} {tensors[n].shape}: no parameter of ours takes it"
        for n in sorted(tensors)
        if n not in mapped and not IGNORED.fullmatch(n)
    ]
    filled, rows = {}, []
    for ref, path, layout in table:
        if ref not in tensors:
            problems.append(f"  reference variable {ref}: not in the checkpoint (for {path})")
            continue
        if path not in ours:
            problems.append(f"  {ref} {tensors[ref].shape}: we have no parameter {path}")
            continue
        value = LAYOUTS[layout](np.asarray(tensors[ref], np.float32))
        want = tuple(ours[path].shape)
        if value.shape != want:
            problems.append(
                f"  {ref} {tensors[ref].shape} -> {path}: {value.shape} after '{layout}', ours is {want}"
            )
            continue
        filled[path] = value
        rows.append((ref, tensors[ref].shape, path, want, layout))
    unfilled = sorted(set(ours) - {path for _, path, _ in table})
    problems += [f"  {p} {tuple(ours[p].shape)}: no reference variable fills it" for p in unfilled]
    if problems:
        raise errors.ConfigError(
            "The TF checkpoint does not map one to one onto wgan_gp:resnet64:\n"
            + "\n".join(problems)
        )
    trees = {}
    for entry in ("g_params", "d_params"):
        leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract[entry])
        trees[entry] = jax.tree_util.tree_unflatten(
            treedef, [filled[f"{entry}/{transfer.param_path(p)}"] for p, _ in leaves]
        )
    return trees, rows


def state_factory(config, num_classes: int, mesh) -> Callable[[], dict]:
    """`create()` -> the initial train state of `config` (RGB, `num_classes`), as
    `gan.Trainer.init_state` builds it, without opening the config's dataset."""
    generator, critic = gan.build_models(config, 3, num_classes)
    g_tx = gan.make_optimizer(config, config.optim.g_lr, 1)
    d_tx = gan.make_optimizer(config, config.optim.d_lr, config.n_critic)
    image_shape = (config.data.resolution, config.data.resolution, 3)
    return lambda: gan.create_state(config, generator, critic, g_tx, d_tx, image_shape, mesh)


def format_table(rows: list, prefix: str, ignored: list[str]) -> str:
    lines = [
        f"converted {prefix}: {len(rows)} variables; ema_params = g_params; "
        f"{len(ignored)} not converted (BatchNorm running stats, optimiser state)",
        f"{'reference variable':66s} {'shape':>18s}  {'ours':36s} {'shape':>18s}  layout",
    ]
    for ref, ref_shape, path, shape, layout in rows:
        lines.append(
            f"{ref:66s} {str(tuple(ref_shape)):>18s}  {path:36s} {str(tuple(shape)):>18s}  {layout}"
        )
    lines += [f"not converted: {name}" for name in ignored]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# The conversion.
# ----------------------------------------------------------------------------------------------


def convert(
    tf_path: str,
    workdir: str,
    conditional: bool | None = None,
    num_classes: int | None = None,
) -> str:
    """Writes the jaxgan run `workdir` from the TF checkpoint `tf_path` (a prefix, its `.index`, or
    a directory); returns the prefix read.

    `conditional` / `num_classes`, when given, must agree with the checkpoint (read from its shapes).
    """
    # --- The source: names and shapes first, so a wrong file fails before anything heavy -------
    try:
        prefix = tf_checkpoint.resolve_prefix(tf_path)
        listed = tf_checkpoint.list_checkpoint(prefix)
        shapes = {name: shape for name, (_, shape) in listed.items()}
        source = describe(shapes)
        if conditional is not None and conditional != bool(source["num_classes"]):
            raise errors.ConfigError(
                f"--conditional={conditional}, but {prefix} is "
                f"{'conditional' if source['num_classes'] else 'unconditional'} (its "
                f"Generator.Res1.BN1.offset is {shapes['Generator.Res1.BN1.offset']})."
            )
        if num_classes is not None and num_classes != source["num_classes"]:
            raise errors.ConfigError(
                f"--num_classes={num_classes}, but {prefix} has {source['num_classes']} classes "
                f"(Generator.Res1.BN1.offset {shapes['Generator.Res1.BN1.offset']})."
            )
        ignored = sorted(n for n in listed if IGNORED.fullmatch(n))
        tensors = tf_checkpoint.read_checkpoint(prefix, [n for n in listed if n not in ignored])
    except tf_checkpoint.CheckpointFilesMissing as e:
        raise errors.DataError(missing_message(str(e))) from None
    except tf_checkpoint.CorruptCheckpoint as e:
        raise errors.DataError(f"{e}\n(Download it again: {RELEASE_README}.)") from None

    transfer.check_new_workdir(workdir)

    # --- Our state, as the run loop creates it, with the parameters replaced -------------------
    config, k = make_config(source), source["num_classes"]
    mesh = parallel.make_mesh(1)
    create = state_factory(config, k, mesh)
    params, rows = convert_params(tensors, jax.eval_shape(create))
    state = create()
    state["g_params"] = params["g_params"]
    state["ema_params"] = params["g_params"]  # the reference keeps no EMA: it starts at G
    state["d_params"] = params["d_params"]

    # --- The run directory --------------------------------------------------------------------
    meta = {"converted_from": os.path.abspath(prefix), "num_classes": k}
    text = format_table(rows, prefix, ignored)
    transfer.write_converted_run(workdir, config, state, mesh, meta, "converted_from.txt", text)
    return prefix


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jaxgan.transfer_convert", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--tf_checkpoint",
        required=True,
        help="a released model's prefix, e.g. transfer_model/unconditional/bedroom/wgan-gp.model "
        "(or its .index file, or the directory holding it)",
    )
    parser.add_argument("--workdir", required=True, help="the jaxgan run to write (new)")
    parser.add_argument(
        "--conditional",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="check that the model is (--conditional) or is not (--no-conditional) conditional; "
        "default: read from its shapes",
    )
    parser.add_argument(
        "--num_classes", type=int, default=None, help="check the number of classes (release: 10)"
    )
    args = parser.parse_args(argv)
    try:
        prefix = convert(args.tf_checkpoint, args.workdir, args.conditional, args.num_classes)
    except errors.UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"wrote {args.workdir} from {prefix}; start a run from it with --config.init_from={args.workdir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
