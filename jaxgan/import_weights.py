"""Import a reference project's released weights into a jaxgan run: CycleGAN, NICE-GAN, PGGAN.

    python -m jaxgan.import_weights --from=cyclegan --workdir=runs/h2z \\
        --g_a=checkpoints/horse2zebra/latest_net_G_A.pth --g_b=.../latest_net_G_B.pth \\
        [--d_a=.../latest_net_D_A.pth --d_b=.../latest_net_D_B.pth] [--config=cyclegan:horse2zebra]
    python -m jaxgan.import_weights --from=cyclegan --g_a=horse2zebra.pth --workdir=runs/h2z_pretrained
    python -m jaxgan.import_weights --from=nicegan --workdir=runs/cat2dog \\
        --checkpoint=cat2dog_params_0100000.pt --config=nicegan:cat2dog
    python -m jaxgan.import_weights --from=pggan --workdir=runs/celebahq \\
        --pickle=karras2018iclr-celebahq-1024x1024.pkl --config=pggan:celebahq
    python -m jaxgan.translate --workdir=runs/h2z --direction=AtoB --input=photos/ --output=out/

What each reads (no torch, TensorFlow or Theano: the files are unpickled by restricted unpicklers
that build arrays and plain containers only, `jaxgan.eval.inception.read_torch_state_dict` for
torch files and `jaxgan.core.restricted_pickle` for PGGAN's):
  cyclegan  junyanz/pytorch-CycleGAN-and-pix2pix `save_networks`' files, one state_dict per network
            (`latest_net_G_A.pth`, or `<epoch>_net_G_A.pth`); a pretrained model of its
            `download_cyclegan_model.sh` (`horse2zebra.pth`) is one generator, A -> B, so pass it
            as --g_a (and a B -> A one, e.g. `zebra2horse.pth`, as --g_b). ResnetGenerator with
            instance norm and no dropout (CycleGAN's `--no_dropout`), NLayerDiscriminator.
  nicegan   alpc91/NICE-GAN-pytorch `NICE.save`'s `<dataset>_params_<iteration>.pt` (or
            `_params_latest.pt`): the state_dicts 'gen2B', 'gen2A', 'disA', 'disB' (the optimizers'
            states are not read: a run continued from it starts Adam afresh).
  pggan     tkarras/progressive_growing_of_gans `karras2018iclr-*.pkl` / `network-snapshot-*.pkl`,
            through `jaxgan.models.progan_release` (G, D, and Gs as the EMA generator).

The run written to --workdir (new) is what the run loop writes: `config.json` through the run
contract, one Orbax checkpoint (step 0; NICE-GAN's at its saved iteration) holding the whole train
state with the imported networks in place of the fresh ones, and `imported_from.txt` (which file
filled which network, at which sizes). The config is `--from`'s (cyclegan, nicegan, pggan; or the
`--config=NAME:PRESET` given, with `--config.field=value` overrides such as the data set the
evaluator scores against) with the model sizes read from the weights' shapes: those fields are
set from the file whatever the config said. `jaxgan.translate`, `jaxgan.evaluate` and
`jaxgan.generate` read it as a trained run; `jaxgan.main` continues training it.

Every tensor must fill one parameter and every parameter be filled (a network left out on the
command line stays as initialised; CycleGAN's discriminators are optional), with the same shape;
anything else is one error naming the file, what is wrong and what to pass instead. Tensors with
no parameter and no effect on the outputs are skipped: stale InstanceNorm running statistics of
pre-0.4 torch files (the reference deletes them on load, `__patch_instance_norm_state_dict`) and
thop's `total_ops` / `total_params` counters.

A CycleGAN run imported with one generator translates one way only: its checkpoint lists the
directions it has (`translation.trained_directions`), `jaxgan.translate` refuses the other and
the evaluator scores the one it has.

NICE-GAN's spectral norms: the reference translates in eval mode with the stored u and v
(σ = uᵀWv); jaxgan's translator runs one power iteration from the stored u. For a trained
checkpoint the two agree to the power iteration's convergence; `imported_from.txt` gives the
largest relative difference of σ over the layers.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
import zipfile
from collections.abc import Callable, Iterator, Mapping

import jax
import numpy as np
from absl import app, flags

from jaxgan import configs
from jaxgan.core import errors, npz_weights, parallel, run_files
from jaxgan.eval import inception
from jaxgan.methods import cyclegan, nicegan, progressive
from jaxgan.models import cyclegan as cyclegan_networks
from jaxgan.models import nicegan as nicegan_networks
from jaxgan.models import progan_release
from jaxgan.training import transfer

FLAGS = flags.FLAGS

SOURCES = ("cyclegan", "nicegan", "pggan")
NOTES = "imported_from.txt"

# Tensors with no parameter and no effect on the outputs (module docstring).
SKIPPED_KEYS = re.compile(
    r"(^|\.)(running_mean|running_var|num_batches_tracked|total_ops|total_params)$"
)

CYCLEGAN_FILES = {"G_A": "--g_a", "G_B": "--g_b", "D_A": "--d_a", "D_B": "--d_b"}
CYCLEGAN_DIRECTIONS = {"G_A": "AtoB", "G_B": "BtoA"}  # G_A maps A -> B, as the reference names it
CYCLEGAN_HINT = (
    "Give the files the CycleGAN code saves (checkpoints/NAME/latest_net_G_A.pth and _G_B, "
    "optionally _D_A, _D_B), or a pretrained generator of its scripts/download_cyclegan_model.sh "
    "(e.g. horse2zebra.pth) as --g_a."
)
NICE_NETWORKS = ("gen2B", "gen2A", "disA", "disB")  # NICE.save's keys
NICE_HINT = (
    "Give the file NICE-GAN's NICE.save writes: results/DATASET/model/DATASET_params_NNNNNNN.pt "
    "or results/DATASET_params_latest.pt (a dict of gen2B, gen2A, disA, disB, D_optimizer, "
    "G_optimizer, start_iter)."
)


# ----------------------------------------------------------------------------------------------
# Reading torch files and checking every tensor is used.
# ----------------------------------------------------------------------------------------------


def read_torch_file(path: str, flag: str, hint: str) -> Mapping:
    """The object a `torch.save` file holds (nested dicts of numpy arrays), or a DataError."""
    if not os.path.isfile(path):
        raise errors.DataError(f"{flag}={path}: no such file. {hint}")
    try:
        return inception.read_torch_state_dict(path)
    except (
        OSError,
        ValueError,
        KeyError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
    ) as e:
        raise errors.DataError(
            f"{flag}={path} is not a torch.save file that can be read safely "
            f"({type(e).__name__}: {e}). {hint}"
        ) from None


def looks_like(tree: Mapping) -> str:
    """What a torch file seems to hold, for an error message."""
    keys = set(tree)
    clues = [
        ({"gen2B", "disA"}, "a NICE-GAN checkpoint (gen2B, gen2A, disA, disB): import it with "
         "--from=nicegan --checkpoint=FILE"),
        ({"genA2B", "disGA"}, "a U-GAT-IT checkpoint (genA2B, disGA, ...), which jaxgan has no "
         "networks for"),
        ({"model.model.0.weight"}, "a pix2pix U-Net generator (--netG unet_*), not a "
         "ResnetGenerator"),
        ({"model.2.running_mean", "model.2.weight"}, "a generator with batch norm (--norm "
         "batch); jaxgan's CycleGAN generator has instance norm without affine parameters"),
        ({"model.10.conv_block.6.weight"}, "a ResnetGenerator with dropout (trained without "
         "--no_dropout); jaxgan's CycleGAN generator has none"),
        ({"model.1.weight_orig"}, "a NICE-GAN discriminator's state_dict"),
        ({"UpBlock0.1.weight"}, "a NICE-GAN generator's state_dict"),
        ({"model.1.weight", "model.4.weight"}, "a CycleGAN ResnetGenerator's state_dict "
         "(latest_net_G_*.pth)"),
        ({"model.0.weight", "model.2.weight"}, "a CycleGAN NLayerDiscriminator's state_dict "
         "(latest_net_D_*.pth)"),
    ]  # fmt: skip
    for needed, what in clues:
        if needed <= keys:
            return f"it looks like {what}"
    return f"it holds {len(keys)} entries, e.g. {sorted(map(str, keys))[:5]}"


def state_dict_at(tree: Mapping, source: str, hint: str) -> Mapping[str, np.ndarray]:
    """`tree` when it is a state_dict (names to arrays), else a DataError naming `source`."""
    if not tree or not all(isinstance(v, np.ndarray) for v in tree.values()):
        raise errors.DataError(
            f"{source} is not one network's state_dict (names to tensors): {looks_like(tree)}. "
            f"{hint}"
        )
    return tree


class _ReadKeys(Mapping):
    """A state_dict that records which keys a converter read."""

    def __init__(self, state_dict: Mapping[str, np.ndarray]):
        self.state_dict, self.read = state_dict, set()

    def __getitem__(self, key: str) -> np.ndarray:
        value = self.state_dict[key]
        self.read.add(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self.state_dict)

    def __len__(self) -> int:
        return len(self.state_dict)


def convert_all(convert: Callable, state_dict: Mapping, source: str, network: str, hint: str):
    """`convert(state_dict)`, checked both ways: a key it needs and the file lacks, or a tensor of
    the file it leaves unread (but `SKIPPED_KEYS`), is a DataError naming `source`."""
    keys = _ReadKeys(state_dict)
    try:
        converted = convert(keys)
    except KeyError as e:
        raise errors.DataError(
            f"{source} is not {network}: it has no {e.args[0]!r} ({looks_like(state_dict)}). {hint}"
        ) from None
    unread = sorted(k for k in state_dict if k not in keys.read and not SKIPPED_KEYS.search(k))
    if unread:
        raise errors.DataError(
            f"{source} is not {network}: {len(unread)} of its tensors fill no parameter of "
            f"jaxgan's network ({', '.join(unread[:6])}{', ...' if len(unread) > 6 else ''}; "
            f"{looks_like(state_dict)}). {hint}"
        )
    return converted


def as_float32(tree):
    return jax.tree.map(lambda x: np.asarray(x, np.float32), tree)


def check_shapes(converted: Mapping, abstract: Mapping, source: str, network: str) -> None:
    """The converted tree has exactly the paths and shapes of our network's `abstract` one."""
    flat = npz_weights.flatten(converted)
    expected = {k: tuple(v.shape) for k, v in npz_weights.flatten(abstract).items()}
    missing, unexpected, wrong = npz_weights.mismatches(flat, expected)
    if missing or unexpected or wrong:
        shapes = {k: (tuple(flat[k].shape), expected[k]) for k in wrong}
        raise errors.DataError(
            f"{source} does not fit jaxgan's {network} of the sizes read from it: missing "
            f"{missing or 'none'}, unexpected {unexpected or 'none'}, shapes (file, ours) "
            f"{shapes or 'none'}."
        )


def base_config(config, source: str):
    """`--config` when given (it must be `source`'s method), else `source`'s default config."""
    name = {"cyclegan": "cyclegan", "nicegan": "nicegan", "pggan": "pggan"}[source]
    if config is None:
        return configs.get(name)
    method = {"cyclegan": "cyclegan", "nicegan": "nicegan", "pggan": "progressive"}[source]
    if config.get("method") != method:
        raise errors.ConfigError(
            f"--config is a {config.get('method')!r} config; --from={source} imports into a "
            f"{method!r} run: pass --config={name}[:PRESET] (e.g. jaxgan/configs/{name}.py's "
            f"presets) or leave --config out."
        )
    return config


def next_steps(workdir: str, translate: bool) -> str:
    if translate:
        return (
            f"translate with python -m jaxgan.translate --workdir={workdir} --direction=AtoB "
            f"--input=DIR --output=DIR; score with python -m jaxgan.evaluate --workdir={workdir}"
        )
    return (
        f"sample with python -m jaxgan.generate --workdir={workdir}; score with "
        f"python -m jaxgan.evaluate --workdir={workdir}"
    )


# ----------------------------------------------------------------------------------------------
# CycleGAN.
# ----------------------------------------------------------------------------------------------


def import_cyclegan(
    workdir: str,
    g_a: str | None = None,
    g_b: str | None = None,
    d_a: str | None = None,
    d_b: str | None = None,
    config=None,
) -> str:
    """Writes the CycleGAN run `workdir` from the reference's state_dict files; returns a summary.

    At least one generator: G_A (A -> B) and/or G_B (B -> A). The sizes (width, blocks, layers,
    channels) are read from the tensors; networks not given stay as initialised.
    """
    paths = {n: p for n, p in zip(CYCLEGAN_FILES, (g_a, g_b, d_a, d_b)) if p}
    if "G_A" not in paths and "G_B" not in paths:
        raise errors.ConfigError(
            f"--from=cyclegan needs a generator: --g_a (A -> B) and/or --g_b (B -> A). "
            f"{CYCLEGAN_HINT}"
        )
    transfer.check_new_workdir(workdir)
    params = {}
    for name, path in paths.items():
        source = f"{CYCLEGAN_FILES[name]}={path}"
        generator = name.startswith("G")
        network = (
            "a CycleGAN ResnetGenerator's state_dict (instance norm, no dropout)"
            if generator
            else "a CycleGAN NLayerDiscriminator's state_dict (instance norm)"
        )
        state_dict = state_dict_at(read_torch_file(path, CYCLEGAN_FILES[name], CYCLEGAN_HINT),
                                   source, CYCLEGAN_HINT)  # fmt: skip
        convert = (
            cyclegan_networks.generator_params_from_torch
            if generator
            else cyclegan_networks.discriminator_params_from_torch
        )
        params[name] = as_float32(convert_all(convert, state_dict, source, network, CYCLEGAN_HINT))

    sizes = {name: cyclegan_sizes(name, tree) for name, tree in params.items()}
    for kind in "GD":
        found = {f"{CYCLEGAN_FILES[n]}={paths[n]}": s for n, s in sizes.items() if n[0] == kind}
        if len({tuple(sorted(s.items())) for s in found.values()}) > 1:
            raise errors.DataError(
                f"The {'generators' if kind == 'G' else 'discriminators'} given are of different "
                f"sizes ({found}); a run's two must be the same network: give files of one "
                f"training run."
            )
    config = base_config(config, "cyclegan")
    for name, s in sizes.items():
        if name.startswith("G"):
            if s["in_channels"] != s["channels"]:
                raise errors.DataError(
                    f"{CYCLEGAN_FILES[name]}={paths[name]} maps {s['in_channels']}-channel images "
                    f"to {s['channels']}-channel ones; jaxgan's translation runs have one channel "
                    f"count for both domains."
                )
            config.model.g_width, config.model.num_blocks = s["width"], s["num_blocks"]
            config.data.channels = s["channels"]
        else:
            config.model.d_width, config.model.d_layers = s["width"], s["num_layers"]

    mesh = parallel.make_mesh(1)
    model = cyclegan.build(config, mesh)
    abstract = jax.eval_shape(model.init_state)
    state = model.init_state()
    for name, tree in params.items():
        entry = "g_params" if name.startswith("G") else "d_params"
        check_shapes(tree, abstract[entry][name], f"{CYCLEGAN_FILES[name]}={paths[name]}", name)
        state[entry][name] = tree

    directions = [d for n, d in CYCLEGAN_DIRECTIONS.items() if n in params]
    imported_from = ", ".join(f"{CYCLEGAN_FILES[n]}={os.path.abspath(p)}" for n, p in paths.items())
    lines = [
        f"{name} <- {os.path.abspath(paths[name])}: "
        + ", ".join(f"{k} {v}" for k, v in sizes[name].items())
        for name in params
    ]
    lines += [f"{name}: not given, as initialised" for name in CYCLEGAN_FILES if name not in params]
    lines.append(f"translates: {', '.join(directions)}")
    meta = {"imported_from": imported_from, "directions": directions}
    notes = "imported CycleGAN networks (junyanz state_dicts)\n" + "\n".join(lines) + "\n"
    transfer.write_converted_run(workdir, config, state, mesh, meta, NOTES, notes)
    one_way = (
        f" Only {directions[0]} is translatable (one generator given)."
        if len(directions) == 1
        else ""
    )
    return (
        f"wrote {workdir} from {imported_from} (G width {config.model.g_width}, "
        f"{config.model.num_blocks} blocks).{one_way} Then {next_steps(workdir, True)}."
    )


def cyclegan_sizes(name: str, params: Mapping) -> dict[str, int]:
    """The config sizes of one converted CycleGAN network (HWIO kernels)."""
    if name.startswith("G"):
        return {
            "width": int(params["Input"]["kernel"].shape[-1]),
            "num_blocks": sum(k.startswith("Block") for k in params),
            "in_channels": int(params["Input"]["kernel"].shape[2]),
            "channels": int(params["Output"]["kernel"].shape[-1]),
        }
    return {
        "width": int(params["Conv0"]["kernel"].shape[-1]),
        "num_layers": len(params) - 2,
    }


# ----------------------------------------------------------------------------------------------
# NICE-GAN.
# ----------------------------------------------------------------------------------------------


def spectral_sigma_gap(state_dict: Mapping[str, np.ndarray]) -> float | None:
    """The largest |σ_reference / σ_jaxgan - 1| over a NICE discriminator's spectral norms: the
    reference's eval mode divides by uᵀWv with the stored u and v, jaxgan's translator by the σ of
    one power iteration from the stored u. None when the file has no v (older torch)."""
    gaps = []
    for key in [k for k in state_dict if k.endswith("weight_orig")]:
        prefix = key[: -len("weight_orig")]
        u = np.asarray(state_dict[prefix + "weight_u"], np.float64)
        if prefix + "weight_v" not in state_dict:
            return None
        v = np.asarray(state_dict[prefix + "weight_v"], np.float64)
        w = np.asarray(state_dict[key], np.float64).reshape(u.shape[0], -1)
        reference = u @ w @ v
        v_next = w.T @ u
        ours = np.linalg.norm(w @ (v_next / np.linalg.norm(v_next)))
        gaps.append(abs(reference / ours - 1))
    return max(gaps) if gaps else None


def import_nicegan(workdir: str, checkpoint: str, config=None) -> str:
    """Writes the NICE-GAN run `workdir` from a `NICE.save` file; returns a summary. The sizes
    (ch, n_res, n_dis, light, and for the full generator img_size) are read from the tensors; the
    checkpoint's step is the file's `start_iter`."""
    transfer.check_new_workdir(workdir)
    saved = read_torch_file(checkpoint, "--checkpoint", NICE_HINT)
    missing = [n for n in NICE_NETWORKS if not isinstance(saved.get(n), Mapping)]
    if missing:
        raise errors.DataError(
            f"--checkpoint={checkpoint} is not a NICE-GAN checkpoint: it has no {missing} "
            f"state_dict(s) ({looks_like(saved)}). {NICE_HINT}"
        )
    g_params, d_variables, gaps = {}, {}, {}
    for name in NICE_NETWORKS:
        source = f"--checkpoint={checkpoint} [{name!r}]"
        state_dict = state_dict_at(saved[name], source, NICE_HINT)
        if name.startswith("gen"):
            g_params[name] = as_float32(convert_all(
                nicegan_networks.generator_params_from_torch, state_dict, source,
                "a NICE-GAN ResnetGenerator's state_dict", NICE_HINT,
            ))  # fmt: skip
        else:

            def convert(sd, name=name):
                gaps[name] = spectral_sigma_gap(sd)  # reads each weight_v
                return nicegan_networks.discriminator_variables_from_torch(sd)

            d_variables[name] = as_float32(convert_all(
                convert, state_dict, source, "a NICE-GAN Discriminator's state_dict", NICE_HINT
            ))  # fmt: skip

    sizes = nicegan_sizes(g_params["gen2B"], d_variables["disA"]["params"], checkpoint)
    config = base_config(config, "nicegan")
    m = config.model
    m.width, m.num_blocks, m.num_layers, m.light = (
        sizes["width"], sizes["num_blocks"], sizes["num_layers"], sizes["light"],
    )  # fmt: skip
    config.data.channels = sizes["channels"]
    if not sizes["light"]:  # the full generator's first linear layer fixes the image size
        config.data.resolution = sizes["img_size"]
    least = 3 * 2 ** (m.num_layers - 2)  # nicegan.check_resolution's bound
    if config.data.resolution % 4 or config.data.resolution < least:
        raise errors.ConfigError(
            f"--checkpoint={checkpoint} has discriminators with n_dis {m.num_layers}, whose global "
            f"branch needs images of at least {least}x{least}, and the config's data.resolution "
            f"is {config.data.resolution}: pass the resolution it was trained at, e.g. "
            f"--config=nicegan:cat2dog (256, the reference's img_size) or --config=nicegan "
            f"--config.data.resolution=256."
        )

    mesh = parallel.make_mesh(1)
    model = nicegan.build(config, mesh)
    abstract = jax.eval_shape(model.init_state)
    state = model.init_state()
    for name, tree in g_params.items():
        check_shapes(
            tree, abstract["g_params"][name], f"--checkpoint={checkpoint} [{name!r}]", name
        )
        state["g_params"][name] = tree
    for name, variables in d_variables.items():
        for entry, collection in (("d_params", "params"), (nicegan.SPECTRAL, nicegan.SPECTRAL)):
            tree = variables[collection]
            check_shapes(tree, abstract[entry][name], f"--checkpoint={checkpoint} [{name!r}]", name)
            state[entry][name] = tree

    step = int(saved.get("start_iter", 0))
    known = [g for g in gaps.values() if g is not None]
    gap = f"{max(known):.1e}" if known else "unknown (the file has no weight_v)"
    notes = (
        f"imported NICE-GAN networks (NICE.save) <- {os.path.abspath(checkpoint)}, iteration "
        f"{step}\n"
        + "".join(f"{k} {v}\n" for k, v in sizes.items())
        + f"gen2A, gen2B, disA, disB (params and spectral-norm u): imported\n"
        f"spectral norm: largest |sigma_reference / sigma_jaxgan - 1| over the layers: {gap}\n"
        f"not imported: D_optimizer, G_optimizer (a continued run starts Adam afresh)\n"
    )
    meta = {"imported_from": os.path.abspath(checkpoint), "reference_iteration": step}
    transfer.write_converted_run(workdir, config, state, mesh, meta, NOTES, notes, step=step)
    return (
        f"wrote {workdir} (checkpoint {step}) from {checkpoint} (ch {m.width}, "
        f"{m.num_blocks} blocks, n_dis {m.num_layers}, {'light' if m.light else 'full'}; spectral "
        f"norm σ within {gap} of the reference's). Then {next_steps(workdir, True)}."
    )


def nicegan_sizes(generator: Mapping, discriminator: Mapping, checkpoint: str) -> dict:
    """ch, n_res, n_dis, light, channels (and img_size for the full generator) of converted
    NICE-GAN networks (HWIO kernels, [in, out] dense kernels)."""
    conv0 = discriminator["encoder"]["Conv0"]["kernel"]
    width = int(conv0.shape[-1])
    fc_inputs = int(generator["FC0"]["kernel"].shape[0])
    sizes = {
        "width": width,
        "num_blocks": sum(k.startswith("Block") for k in generator),
        "num_layers": 6 + sum(k.startswith("Dis0_0_") for k in discriminator["classifier"]),
        "light": fc_inputs == 4 * width,
        "channels": int(conv0.shape[2]),
    }
    if not sizes["light"]:  # FC0 reads the flattened [4·ch, img_size / 4, img_size / 4] map
        side = int(round(np.sqrt(fc_inputs / (4 * width))))
        if side * side * 4 * width != fc_inputs:
            raise errors.DataError(
                f"--checkpoint={checkpoint}: gen2B's FC.0 takes {fc_inputs} inputs, neither the "
                f"light generator's {4 * width} nor 4·ch·(img_size/4)² for any img_size."
            )
        sizes["img_size"] = 4 * side
    out_channels = int(generator["Output"]["kernel"].shape[-1])
    if out_channels != sizes["channels"]:
        raise errors.DataError(
            f"--checkpoint={checkpoint}: the generators write {out_channels}-channel images and "
            f"the discriminators read {sizes['channels']}-channel ones; jaxgan's translation runs "
            f"have one channel count."
        )
    return sizes


# ----------------------------------------------------------------------------------------------
# PGGAN.
# ----------------------------------------------------------------------------------------------


def import_pggan(workdir: str, pickle_path: str, config=None) -> str:
    """Writes the progressive run `workdir` from a released PGGAN pickle; returns a summary. The
    networks are at their final resolution (lod 0) and the run's schedule is complete."""
    if not os.path.isfile(pickle_path):
        raise errors.DataError(
            f"--pickle={pickle_path}: no such file. Give a network pickle of "
            f"{progan_release.RELEASE}."
        )
    transfer.check_new_workdir(workdir)
    overrides, g_params, d_params, ema_params = progan_release.released_pickle_to_run_parts(
        pickle_path
    )
    config = base_config(config, "pggan")
    config.update_from_flattened_dict(overrides)
    mesh = parallel.make_mesh(1)
    channels, resolution = config.data.channels, config.data.resolution
    generator, critic = progressive.build_models(config, channels, 0, mesh)
    tx = progressive.make_optimizer(config)
    shape = (resolution, resolution, channels)

    def create():
        return progressive.create_state(config, generator, critic, tx, shape, mesh)

    abstract = jax.eval_shape(create)
    state = create()
    source = f"--pickle={pickle_path}"
    for entry, tree in (("g_params", g_params), ("d_params", d_params), ("ema_params", ema_params)):
        check_shapes(tree, abstract[entry], source, entry)
        state[entry] = tree
    total_nimg = int(round(config.schedule.total_kimg * 1000))
    meta = {
        "imported_from": os.path.abspath(pickle_path),
        "lod": 0.0,  # the final resolution, faded in
        "cur_nimg": total_nimg,  # the schedule is complete: jaxgan.main has nothing left to do
    }
    notes = (
        f"imported PGGAN networks (G, D, Gs -> ema_params) <- {os.path.abspath(pickle_path)}\n"
        + "".join(f"{k} {v}\n" for k, v in sorted(overrides.items()))
    )
    transfer.write_converted_run(workdir, config, state, mesh, meta, NOTES, notes)
    return (
        f"wrote {workdir} from {pickle_path} ({resolution}x{resolution}, {channels} channels, "
        f"latent {config.model.z_dim}). Then {next_steps(workdir, False)} (its config's data set "
        f"is {config.data.dataset}; set it with --config.data.dataset)."
    )


# ----------------------------------------------------------------------------------------------
# The command line.
# ----------------------------------------------------------------------------------------------


def import_weights(source: str, workdir: str, files: Mapping[str, str | None], config=None) -> str:
    """`--from=source`: the importer of that project with its `files` ({flag name: path});
    returns the summary printed. A file flag of another source is an error."""
    wanted = {
        "cyclegan": ("g_a", "g_b", "d_a", "d_b"),
        "nicegan": ("checkpoint",),
        "pggan": ("pickle",),
    }
    if source not in wanted:
        raise errors.ConfigError(f"--from={source!r}: expected one of {', '.join(SOURCES)}.")
    given = {k: v for k, v in files.items() if v}
    foreign = sorted(set(given) - set(wanted[source]))
    if foreign:
        raise errors.ConfigError(
            f"--from={source} reads {', '.join('--' + f for f in wanted[source])}; "
            f"{', '.join('--' + f for f in foreign)} belong(s) to another --from."
        )
    if source == "cyclegan":
        return import_cyclegan(workdir, **{k: given.get(k) for k in wanted[source]}, config=config)
    if source == "nicegan":
        if "checkpoint" not in given:
            raise errors.ConfigError(f"--from=nicegan needs --checkpoint. {NICE_HINT}")
        return import_nicegan(workdir, given["checkpoint"], config)
    if "pickle" not in given:
        raise errors.ConfigError(
            f"--from=pggan needs --pickle (e.g. karras2018iclr-celebahq-1024x1024.pkl of "
            f"{progan_release.RELEASE})."
        )
    return import_pggan(workdir, given["pickle"], config)


FILE_FLAGS = {
    "g_a": "CycleGAN: G_A (A -> B), e.g. latest_net_G_A.pth or a pretrained horse2zebra.pth.",
    "g_b": "CycleGAN: G_B (B -> A), e.g. latest_net_G_B.pth.",
    "d_a": "CycleGAN (optional): D_A, latest_net_D_A.pth.",
    "d_b": "CycleGAN (optional): D_B, latest_net_D_B.pth.",
    "checkpoint": "NICE-GAN: NICE.save's DATASET_params_NNNNNNN.pt (or _params_latest.pt).",
    "pickle": "PGGAN: a released network pickle, e.g. karras2018iclr-celebahq-1024x1024.pkl.",
}


def main(argv):
    del argv
    run_files.quiet_library_logs()
    files = {name: FLAGS[name].value for name in FILE_FLAGS}
    try:
        message = import_weights(FLAGS["from"].value, FLAGS.workdir, files, FLAGS.config)
    except errors.UserError as e:  # bad input: the message says what to do
        sys.exit(f"{type(e).__name__}: {e}")
    print(message)


def define_flags() -> None:
    """Registered only when run as a program: importing this module defines no global flags."""
    configs.define_config_flag(
        "Optional: the run's config, NAME[:PRESET] of --from's method (default: --from's "
        "config); the model sizes are set from the weights."
    )
    flags.DEFINE_enum("from", None, SOURCES, "Whose released weights: " + ", ".join(SOURCES))
    flags.DEFINE_string("workdir", None, "The jaxgan run to write (a new directory).")
    for name, help_string in FILE_FLAGS.items():
        flags.DEFINE_string(name, None, help_string)
    flags.mark_flags_as_required(["from", "workdir"])


def run():
    """The `jaxgan-import` console script."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
