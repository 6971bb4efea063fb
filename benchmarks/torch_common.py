"""What every PyTorch twin shares: the flags, the device and memory layout, and the timed loop.

A twin builds its networks and one training iteration; `run` times it the way
`python -m jaxgan.bench` times jaxgan's step (untimed warm-up iterations first, then `--steps`
iterations, the device synchronised before the clock stops) and prints `name: value` lines that
`jaxgan.bench --vs=torch` reads: the setup, `g_params`, `d_params`, `step_ms`, `train_img_per_s`.
"""

import argparse
import contextlib
import time

import torch


def parser(description: str) -> argparse.ArgumentParser:
    """An ArgumentParser with the flags every twin takes; a twin adds its networks' flags."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--steps", type=int, default=10, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--channels_last", action="store_true", help="models and inputs in channels_last memory"
    )
    parser.add_argument(
        "--amp", action="store_true", help="autocast the networks to bfloat16 (AMP; for GPUs)"
    )
    return parser


def setup(args) -> tuple[torch.device, torch.memory_format]:
    """Threads and seed set; (the device, the memory format networks and images are put in)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device=cuda: this PyTorch sees no CUDA device.")
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    return torch.device(args.device), layout


def autocast(args):
    """The networks' forward passes run under this: bfloat16 AMP with --amp, else unchanged."""
    if not args.amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=args.device, dtype=torch.bfloat16)


def count(*networks) -> int:
    """Trainable parameters (buffers such as BatchNorm's running statistics excluded)."""
    return sum(p.numel() for net in networks for p in net.parameters())


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(args, iteration, images_per_iteration: int, generators, critics, device) -> None:
    """Times `iteration()` and prints the lines `jaxgan.bench --vs=torch` parses."""
    for _ in range(args.warmup):
        iteration()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        iteration()
    synchronize(device)
    seconds = time.perf_counter() - start
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch: {torch.__version__}, threads: {torch.get_num_threads()}, device: {name}")
    print(f"memory_format: {'channels_last' if args.channels_last else 'NCHW'}")
    print(f"amp: {'bfloat16' if args.amp else 'off'}")
    print(f"g_params: {count(*generators)}")
    print(f"d_params: {count(*critics)}")
    print(f"step_ms: {1e3 * seconds / args.steps:.2f}")
    print(f"train_img_per_s: {args.steps * images_per_iteration / seconds:.1f}")
