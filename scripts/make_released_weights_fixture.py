"""Builds the files the CycleGAN and NICE-GAN reference code saves, small, for `jaxgan.import_weights`.

The networks are the PyTorch ones of scripts/make_cyclegan_fixture.py (junyanz
`ResnetGenerator`, `NLayerDiscriminator`) and scripts/make_nicegan_fixture.py (alpc91
`ResnetGenerator`, `Discriminator`), imported from there, with those scripts' deterministic
weights (N(0, 1/n) weights, N(0, 0.1²) biases, float32-exact). The files are written as the
reference writes them, by `torch.save` of float32 modules:

  cyclegan/latest_net_{G_A,G_B,D_A,D_B}.pth
      `BaseModel.save_networks`: `torch.save(net.cpu().state_dict(), path)` for each network.
      G: ngf 2, resnet with 2 blocks; D: ndf 2, n_layers 2. G_B is in torch's legacy (pre-1.6,
      non-zip) format, the format of the released pretrained generators (`horse2zebra.pth` is
      one such generator, A -> B); the others in the zip format of torch >= 1.6.
  nicegan/cat2dog_params_0000100.pt
      `NICE.save`: `torch.save({'gen2B', 'gen2A', 'disA', 'disB' state_dicts, 'D_optimizer',
      'G_optimizer' Adam state_dicts, 'start_iter': 100}, dataset + '_params_%07d.pt' % step)`.
      ch 1, n_res 2, light, n_dis 6, in torch's legacy format (NICE-GAN's README names
      PyTorch 1.1). G_optimizer holds one update's moments (their values do not matter to an
      import, their structure does); D_optimizer is left as created, without moments, to keep
      the file small. The spectral-norm vectors u and v are
      the power iteration's fixed point, as after training (NICE calls each discriminator four
      times an iteration, one power iteration each), rounded to float32 as the file stores them.

  expected.npz
      pixels/A, pixels/B   uint8 [2, 3, 8, 12]: the test images of each domain (NCHW)
      cyclegan/AtoB        float64 [2, 3, 8, 12]: G_A(pixels/A / 127.5 - 1) in float64
      cyclegan/BtoA        float64: G_B(pixels/B ...)
      nicegan/AtoB         float64: `NICE.test()`: networks in eval mode, gen2B(disA(x)[4])
      nicegan/BtoA         float64: gen2A(disB(x)[4])
  (The translations of the images as the reference computes them: the state_dicts loaded into
  float64 copies of the modules. NICE's discriminator is run up to z, the code its forward
  returns as [4], since its global branch needs inputs of at least 48²; `main` checks on a 48²
  input that this is the full forward's z.)

Recipe (PyTorch stays out of jaxgan's dependencies):

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
    cd /work/main && /tmp/torchenv/bin/python scripts/make_released_weights_fixture.py

Seconds on 2 CPU cores; about 190 KB. Re-run (and commit the outputs) only if the networks change.
"""

from __future__ import annotations

import copy
import pathlib

import make_cyclegan_fixture as cyclegan_ref
import make_nicegan_fixture as nicegan_ref
import numpy as np
import torch
from torch.nn.utils.spectral_norm import SpectralNorm

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "released_weights"
NICE_STEP = 100
POWER_ITERATIONS = 2000  # far past convergence at these sizes (checked below)


def _float32_copy(net: torch.nn.Module) -> torch.nn.Module:
    """The module as the reference holds it when it saves: float32."""
    return copy.deepcopy(net).float()


def _to_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW -> float64 in [-1, 1]: ToTensor then Normalize(0.5, 0.5)."""
    return pixels.double() / 127.5 - 1


# ----------------------------------------------------------------------------------------------
# CycleGAN.
# ----------------------------------------------------------------------------------------------


def cyclegan(generator: torch.Generator, pixels: dict, expected: dict) -> None:
    out = OUT / "cyclegan"
    out.mkdir(parents=True, exist_ok=True)
    nets = {n: cyclegan_ref.resnet_generator(3, 3, width=2, num_blocks=2) for n in ("G_A", "G_B")}
    nets.update({n: cyclegan_ref.n_layer_discriminator(3, 2, 2) for n in ("D_A", "D_B")})
    for name, net in nets.items():
        net = net.double()
        cyclegan_ref._set_deterministic_weights(net, generator)
        nets[name] = net
        legacy = name == "G_B"  # the released pretrained generators' format
        torch.save(
            _float32_copy(net).cpu().state_dict(),
            out / f"latest_net_{name}.pth",
            _use_new_zipfile_serialization=not legacy,
        )
    with torch.no_grad():
        expected["cyclegan/AtoB"] = nets["G_A"](_to_float(pixels["A"])).numpy()
        expected["cyclegan/BtoA"] = nets["G_B"](_to_float(pixels["B"])).numpy()


# ----------------------------------------------------------------------------------------------
# NICE-GAN.
# ----------------------------------------------------------------------------------------------


def _spectral_norms(net: torch.nn.Module):
    for module in net.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, SpectralNorm):
                yield module, hook


def converge_power_iteration(net: torch.nn.Module) -> float:
    """Runs the reference's own power iteration (the spectral-norm hook, training mode) until u
    and v stop moving, then rounds them to float32 as the saved file holds them. Returns the
    largest change of u in the last iteration."""
    net.train()
    change = 0.0
    for module, hook in _spectral_norms(net):
        with torch.no_grad():  # the hook's normalised weight stays a leaf (deepcopy-able)
            for _ in range(POWER_ITERATIONS):
                before = getattr(module, hook.name + "_u").clone()
                hook(module, None)
            change = max(change, (getattr(module, hook.name + "_u") - before).abs().max().item())
            for vector in ("_u", "_v"):
                buffer = getattr(module, hook.name + vector)
                buffer.copy_(buffer.float().double())
    return change


def _encode(d: nicegan_ref.Discriminator, x: torch.Tensor) -> torch.Tensor:
    """`Discriminator.forward` up to z, line for line (its [4] output)."""
    x = d.model(x)
    x_0 = x
    gap = torch.nn.functional.adaptive_avg_pool2d(x, 1)
    gmp = torch.nn.functional.adaptive_max_pool2d(x, 1)
    x = torch.cat([x, x], 1)
    cam_logit = torch.cat([gap, gmp], 1)
    d.fc(cam_logit.view(cam_logit.shape[0], -1))
    weight = list(d.fc.parameters())[0]
    x = x * weight.unsqueeze(2).unsqueeze(3)
    x = d.conv1x1(x)
    x = d.lamda * x + x_0
    return d.leaky_relu(x)


def _fake_adam_state(optimizer: torch.optim.Optimizer, generator: torch.Generator) -> None:
    """One Adam update on random gradients, the parameters put back: the optimizer's state_dict
    then has the structure of a trained one's (step, exp_avg, exp_avg_sq per parameter)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    kept = [p.detach().clone() for p in params]
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator, dtype=p.dtype)
    optimizer.step()
    with torch.no_grad():
        for p, value in zip(params, kept):
            p.copy_(value)


def nicegan(generator: torch.Generator, pixels: dict, expected: dict) -> None:
    out = OUT / "nicegan"
    out.mkdir(parents=True, exist_ok=True)
    nets = {n: nicegan_ref.Discriminator(3, ndf=1, n_layers=6) for n in ("disA", "disB")}
    nets.update(
        {n: nicegan_ref.ResnetGenerator(2, 3, 1, 2, 48, light=True) for n in ("gen2A", "gen2B")}
    )
    for name, net in nets.items():
        net = net.double()
        nicegan_ref._set_deterministic_weights(net, generator)
        nets[name] = net
    change = max(converge_power_iteration(nets[n]) for n in ("disA", "disB"))
    print(f"NICE-GAN spectral norms: u moved at most {change:.1e} in the last power iteration")

    saved = {n: _float32_copy(net) for n, net in nets.items()}
    adam = dict(lr=1e-4, betas=(0.5, 0.999), weight_decay=1e-4)  # NICE.py's optimizers
    g_optim = torch.optim.Adam([*saved["gen2B"].parameters(), *saved["gen2A"].parameters()], **adam)
    d_optim = torch.optim.Adam([*saved["disA"].parameters(), *saved["disB"].parameters()], **adam)
    _fake_adam_state(g_optim, generator)
    params = {n: saved[n].state_dict() for n in ("gen2B", "gen2A", "disA", "disB")}
    params["D_optimizer"] = d_optim.state_dict()
    params["G_optimizer"] = g_optim.state_dict()
    params["start_iter"] = NICE_STEP
    path = out / f"cat2dog_params_{NICE_STEP:07d}.pt"
    torch.save(params, path, _use_new_zipfile_serialization=False)

    for net in nets.values():
        net.eval()  # NICE.test(): the stored u and v, no power iteration
    with torch.no_grad():
        square = _to_float(torch.randint(0, 256, (1, 3, 48, 48), generator=generator))
        assert torch.equal(_encode(nets["disA"], square), nets["disA"](square)[4])
        expected["nicegan/AtoB"] = nets["gen2B"](_encode(nets["disA"], _to_float(pixels["A"])))
        expected["nicegan/BtoA"] = nets["gen2A"](_encode(nets["disB"], _to_float(pixels["B"])))
    expected["nicegan/AtoB"] = expected["nicegan/AtoB"].numpy()
    expected["nicegan/BtoA"] = expected["nicegan/BtoA"].numpy()


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    pixels = {d: torch.randint(0, 256, (2, 3, 8, 12), generator=generator).to(torch.uint8)
              for d in "AB"}  # fmt: skip
    expected = {f"pixels/{d}": p.numpy() for d, p in pixels.items()}
    cyclegan(generator, pixels, expected)
    nicegan(generator, pixels, expected)
    np.savez_compressed(OUT / "expected.npz", **expected)
    sizes = {p.relative_to(OUT): p.stat().st_size for p in sorted(OUT.rglob("*")) if p.is_file()}
    for path, size in sizes.items():
        print(f"{str(path):40s} {size:8,d} bytes")
    print(f"{'total':40s} {sum(sizes.values()):8,d} bytes")


if __name__ == "__main__":
    main()
