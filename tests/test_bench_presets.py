"""`python -m jaxgan.bench --presets`: the papers' presets at their real size.

Each reference parameter count is checked twice: the preset's networks, built under
`jax.eval_shape` (shapes only: PGGAN's two 23M-parameter networks cost no memory), against
`bench.REFERENCE_PARAMS`, and that table against a count derived here, layer by layer, from the
reference code's architecture (the file named in each function). Then the command's own path, on
`:smoke` presets: one row per preset whose counts are those of the initialised state, and the fit
check refusing a step when the memory it may take is set too low.
"""

import json

import jax
import numpy as np
import pytest
from absl import app

from jaxgan import bench, configs
from jaxgan.core import errors, parallel
from jaxgan.training import benchmark


def conv(kernel, cin, cout, bias=True):
    return kernel * kernel * cin * cout + (cout if bias else 0)


def linear(nin, nout, bias=True):
    return nin * nout + (nout if bias else 0)


def gan_cifar_resnet(dim=128, acgan=False):
    """improved_wgan_training gan_cifar_resnet.py: its trainable variables."""
    norm = 2 * 10 * dim if acgan else 2 * dim  # cond_batchnorm: per-class offset and scale
    up_block = conv(1, dim, dim) + norm + conv(3, dim, dim) + norm + conv(3, dim, dim)
    g = linear(128, 16 * dim) + 3 * up_block + 2 * dim + conv(3, dim, 3)  # OutputN: plain BN
    d = (
        conv(1, 3, dim) + conv(3, 3, dim) + conv(3, dim, dim)  # OptimizedResBlockDisc1
        + conv(1, dim, dim) + 2 * conv(3, dim, dim)  # Discriminator.2, down: a 1x1 shortcut
        + 2 * 2 * conv(3, dim, dim)  # .3 and .4: identity shortcuts
        + linear(dim, 1) + (linear(dim, 10) if acgan else 0)
    )  # fmt: skip
    return g, d


def gan_64x64(dim=64):
    """improved_wgan_training gan_64x64.py GoodGenerator / GoodDiscriminator (LayerNorm critic)."""

    def g_block(cin, cout):  # BN1 (cin), Conv1 without bias, BN2 (cout), Conv2
        return conv(1, cin, cout) + 2 * cin + conv(3, cin, cout, bias=False) + 2 * cout + conv(3, cout, cout)  # fmt: skip

    def d_block(cin, cout):  # LN1, Conv1 cin -> cin without bias, LN2, ConvMeanPool
        return conv(1, cin, cout) + 2 * cin + conv(3, cin, cin, bias=False) + 2 * cin + conv(3, cin, cout)  # fmt: skip

    widths = [8 * dim, 8 * dim, 4 * dim, 2 * dim, dim]
    g = linear(128, 16 * 8 * dim) + sum(g_block(a, b) for a, b in zip(widths, widths[1:]))
    g += 2 * dim + conv(3, dim, 3)
    widths = [dim, 2 * dim, 4 * dim, 8 * dim, 8 * dim]
    d = conv(3, 3, dim) + sum(d_block(a, b) for a, b in zip(widths, widths[1:]))
    d += linear(16 * 8 * dim, 1)
    return g, d


def sngan_projection(ch_g=256, ch_d=128, classes=10, dim_z=128):
    """sngan_projection gen_models/resnet_32.py and dis_models/snresnet_32.py (sn_cifar10.yml)."""
    g_block = 2 * conv(3, ch_g, ch_g) + 2 * (2 * classes * ch_g) + conv(1, ch_g, ch_g)
    g = linear(dim_z, 16 * ch_g) + 3 * g_block + 2 * ch_g + conv(3, ch_g, 3)
    d = (
        conv(3, 3, ch_d) + conv(3, ch_d, ch_d) + conv(1, 3, ch_d)  # OptimizedBlock
        + 2 * conv(3, ch_d, ch_d) + conv(1, ch_d, ch_d)  # block2, down
        + 2 * 2 * conv(3, ch_d, ch_d)  # block3, block4
        + linear(ch_d, 1, bias=False) + classes * ch_d  # l5, the projection's embedding
    )  # fmt: skip
    return g, d


def progressive_growing(fmap_base, fmap_max, latent, resolution, channels=3):
    """progressive_growing_of_gans networks.py G_paper / D_paper (mbstd adds one channel)."""
    top = int(np.log2(resolution))

    def nf(stage):
        return min(fmap_base // 2**stage, fmap_max)

    g = linear(latent, nf(1) * 16, bias=False) + nf(1) + conv(3, nf(1), nf(1))
    g += sum(
        conv(3, nf(r - 2), nf(r - 1)) + conv(3, nf(r - 1), nf(r - 1)) for r in range(3, top + 1)
    )
    g += sum(conv(1, nf(r - 1), channels) for r in range(2, top + 1))  # ToRGB_lod*
    d = sum(conv(1, channels, nf(r - 1)) for r in range(2, top + 1))  # FromRGB_lod*
    d += sum(
        conv(3, nf(r - 1), nf(r - 1)) + conv(3, nf(r - 1), nf(r - 2)) for r in range(3, top + 1)
    )
    d += conv(3, nf(1) + 1, nf(1)) + linear(nf(1) * 16, nf(0)) + linear(nf(0), 1)
    return g, d


def pytorch_dcgan(nz=100, ngf=64, ndf=64):
    """pytorch/examples dcgan/main.py: bias-free convolutions, BatchNorm weight and bias."""
    g_widths = [nz, 8 * ngf, 4 * ngf, 2 * ngf, ngf]
    g = sum(conv(4, a, b, bias=False) + 2 * b for a, b in zip(g_widths, g_widths[1:]))
    g += conv(4, ngf, 3, bias=False)
    d_widths = [ndf, 2 * ndf, 4 * ndf, 8 * ndf]
    d = conv(4, 3, ndf, bias=False) + conv(4, 8 * ndf, 1, bias=False)
    d += sum(conv(4, a, b, bias=False) + 2 * b for a, b in zip(d_widths, d_widths[1:]))
    return g, d


def cyclegan_resnet9_patchgan(ngf=64, ndf=64):
    """pytorch-CycleGAN-and-pix2pix networks.py: ResnetGenerator (9 blocks) and NLayerDiscriminator
    (3 layers), instance norm without affine parameters, so every convolution has a bias."""
    g = conv(7, 3, ngf) + conv(3, ngf, 2 * ngf) + conv(3, 2 * ngf, 4 * ngf)
    g += 9 * 2 * conv(3, 4 * ngf, 4 * ngf)
    g += conv(3, 4 * ngf, 2 * ngf) + conv(3, 2 * ngf, ngf) + conv(7, ngf, 3)
    d = conv(4, 3, ndf) + conv(4, ndf, 2 * ndf) + conv(4, 2 * ndf, 4 * ndf)
    d += conv(4, 4 * ndf, 8 * ndf) + conv(4, 8 * ndf, 1)
    return g, d


def nice_gan(ch=64, blocks=6, layers=7):
    """NICE-GAN-pytorch networks.py ResnetGenerator(light) and Discriminator(n_layers 7)."""
    iln = lambda c: 4 * c  # noqa: E731 - rho (2 per channel), gamma, beta
    g = conv(3, 2 * ch, 4 * ch) + iln(4 * ch)  # UpBlock0
    g += 4 * linear(4 * ch, 4 * ch, bias=False)  # FC (light: two layers), gamma, beta
    g += blocks * 2 * (conv(3, 4 * ch, 4 * ch, bias=False) + 2 * 4 * ch)  # AdaILN rho
    for c in (4 * ch, 2 * ch):  # UpBlock2: conv, ILN, 1x1 to 4x channels (pixel shuffle), ILN
        g += conv(3, c, c // 2, bias=False) + iln(c // 2) + conv(1, c // 2, 2 * c) + iln(c // 2)
    g += conv(7, ch, 3, bias=False)
    d = conv(4, 3, ch) + conv(4, ch, 2 * ch)  # the encoder
    d += linear(4 * ch, 1, bias=False) + conv(1, 4 * ch, 2 * ch) + 1  # CAM: fc, conv1x1, lamda
    d += sum(conv(4, ch * 2 ** (i - 1), ch * 2**i) for i in range(2, layers - 4))  # Dis0_0
    mult = 2 ** (layers - 5)
    d += conv(4, ch * mult, 2 * ch * mult) + conv(4, 2 * ch * mult, 1, bias=False)  # local head
    d += sum(conv(4, ch * 2 ** (i - 1), ch * 2**i) for i in range(layers - 4, layers - 2))
    mult = 2 ** (layers - 3)
    d += conv(4, ch * mult, 2 * ch * mult) + conv(4, 2 * ch * mult, 1, bias=False)  # global head
    return g, d


def both_domains(counts):
    return tuple(2 * count for count in counts)


DERIVED = {
    "wgan_gp:cifar10": gan_cifar_resnet(),
    "acgan:cifar10": gan_cifar_resnet(acgan=True),
    "wgan_gp:resnet64": gan_64x64(),
    "transfer:paper": gan_64x64(),
    "sngan:cifar10": sngan_projection(),
    "pggan:cifar10": progressive_growing(4096, 128, 128, 32),
    "pggan:celebahq": progressive_growing(8192, 512, 512, 1024),
    "dcgan:celeba64": pytorch_dcgan(),
    "cyclegan:horse2zebra": both_domains(cyclegan_resnet9_patchgan()),
    "nicegan:horse2zebra": both_domains(nice_gan()),
}


def test_every_reference_count_is_derived_from_the_reference_architecture():
    assert set(bench.REFERENCE_PARAMS) == set(DERIVED)
    for spec, (g, d) in DERIVED.items():
        reference = bench.REFERENCE_PARAMS[spec]
        assert (reference.g_params, reference.d_params) == (g, d), spec
    # The numbers the papers and reference code print, to their precision.
    assert (
        round(DERIVED["pggan:celebahq"][0] / 1e5)
        == round(DERIVED["pggan:celebahq"][1] / 1e5)
        == 231
    )
    assert round(DERIVED["cyclegan:horse2zebra"][0] / 2e3) == 11_378  # 11.378 M per generator
    assert round(DERIVED["cyclegan:horse2zebra"][1] / 2e3) == 2_765  # 2.765 M per critic


@pytest.mark.parametrize("spec", sorted(bench.REFERENCE_PARAMS))
def test_each_paper_preset_has_the_reference_parameter_count(spec):
    """The preset's step built as shapes (nothing allocated): G and D as the reference has them."""
    config = bench.load_preset(spec)
    mesh = parallel.make_mesh(1)
    counts = benchmark.abstract_step(lambda: bench.build_step(config, mesh)).param_counts
    assert bench.params_check(spec, counts).startswith("= ")
    reference = bench.REFERENCE_PARAMS[spec]
    assert counts == {"g_params": reference.g_params, "d_params": reference.d_params}


def test_a_count_off_the_reference_is_reported_with_the_difference():
    counts = {"g_params": 1_204_484, "d_params": 1_053_825}
    assert bench.params_check("wgan_gp:cifar10", counts) == (
        "PARAMETER MISMATCH: G 1,204,484 vs 1,204,483 (+1) in "
        + bench.REFERENCE_PARAMS["wgan_gp:cifar10"].source
    )
    assert bench.params_check("wgan_gp:smoke", counts) == "(no reference count)"


def test_preset_lists_and_schedules():
    assert bench.preset_specs("paper") == list(bench.PAPER_PRESETS)
    assert bench.preset_specs("wgan_gp:smoke, cyclegan:smoke") == [
        "wgan_gp:smoke",
        "cyclegan:smoke",
    ]
    with pytest.raises(app.UsageError, match="'wgan_gp' is not NAME:PRESET"):
        bench.preset_specs("wgan_gp")
    with pytest.raises(app.UsageError, match="wgan_gp:nope"):
        bench.load_preset("wgan_gp:nope")
    # What the projection multiplies: generator iterations, or a progressive run's images.
    assert bench.paper_schedule(configs.get("wgan_gp", "cifar10"), 320) == (
        100_000.0, "100,000 generator iterations",
    )  # fmt: skip
    steps, what = bench.paper_schedule(configs.get("pggan", "celebahq"), 3)
    assert steps == 19_000_000 / 3 and what.startswith("19,000 kimg at 3 images per step")
    assert bench.paper_schedule(configs.get("cyclegan", "horse2zebra"), 2)[0] == 200 * 1334


@pytest.mark.slow  # two smoke steps compiled and run: ~30-45 s on 2 cores
def test_the_presets_command_gives_one_row_per_preset_with_the_states_counts(tmp_path, capsys):
    specs = ["wgan_gp:smoke", "cyclegan:smoke"]
    rows_out = tmp_path / "rows.jsonl"
    rows = bench.bench_presets(specs, steps=1, rows_out=str(rows_out))

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("device: ")
    assert [line.split(" | ")[0] for line in lines[1:]] == specs
    assert [json.loads(line) for line in rows_out.read_text().splitlines()] == json.loads(
        json.dumps(rows)
    )
    mesh = parallel.make_mesh(1)  # the presets' one device
    for row, spec in zip(rows, specs):
        state = bench.build_step(bench.load_preset(spec), mesh).state  # initialised, allocated
        assert row["g_params"] == benchmark.count_params(state["g_params"]) > 0
        assert row["d_params"] == benchmark.count_params(state["d_params"]) > 0
        assert row["status"] == "ran" and row["params_check"] == "(no reference count)"
        # The program holds at least its arguments: the state and the synthetic batch.
        state_bytes = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
        assert row["needed_bytes"] >= state_bytes
        assert len(row["step_s_runs"]) == 1 and row["step_s"] == row["step_s_runs"][0] > 0
        assert row["projected_h"] == pytest.approx(row["step_s"] * 3 / 3600)  # smoke: 3 steps
        assert row["peak_bytes"] > 0 and row["gflop_per_step"] > 0


def test_a_step_that_cannot_fit_or_is_over_the_time_budget_is_compiled_but_not_run(capsys):
    """One program compiled twice (the second time from the tests' compilation cache)."""
    (row,) = bench.bench_presets(["cyclegan:smoke"], available_bytes=1000)
    assert row["needed_bytes"] > 1000
    assert row["status"] == (
        f"does not fit: needs {bench.gib(row['needed_bytes'])}, has {bench.gib(1000)}"
    )
    assert "step_s" not in row and "projected_h" not in row
    assert row["status"] in capsys.readouterr().out

    (row,) = bench.bench_presets(["cyclegan:smoke"], max_step_s=1.0, flops_per_s=1.0)
    assert row["status"].startswith("steps skipped:") and "step_s" not in row
    projected_s = row["gflop_per_step"] * 1e9 / bench.STEP_FRACTION_OF_PEAK
    assert row["projected_h"] == pytest.approx(projected_s * 3 / 3600)  # smoke: 3 iterations


def test_a_translation_batch_that_does_not_split_over_the_devices_is_refused_by_name():
    """As the Trainer refuses it (the 8 simulated devices here cannot split cyclegan:smoke's 2)."""
    with pytest.raises(errors.ConfigError, match="batch_size=2 is not divisible by the 8 devices"):
        bench.build_step(bench.load_preset("cyclegan:smoke"), parallel.make_mesh(None))
