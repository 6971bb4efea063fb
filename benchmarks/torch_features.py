"""Feature extraction the way pytorch-fid does it, to compare `python -m jaxgan.bench --features=...`.

  pip install torch pytorch-fid  # CPU build is enough; pytorch-fid for inception_v3 only
  python benchmarks/torch_features.py --features=mnist_cnn --threads=2     # 10,000 digits, batch 500
  python benchmarks/torch_features.py --features=inception_v3 --threads=2  # 500 32x32x3, batch 50

The loop is pytorch-fid's `fid_score.get_activations`: a DataLoader over the images (in order, no
drop_last), each uint8 HWC image made a float CHW tensor in [0, 1] as `ToTensor` does,
`model.eval()`, `torch.no_grad()`, the features copied to numpy batch by batch.

  mnist_cnn     jaxgan's `classifier.MnistCNN` in PyTorch (3 x [3x3 conv, ReLU, 2x2 max-pool],
                flatten in jaxgan's HWC order, Dense 128 + ReLU, Dense 10) with the shipped
                `jaxgan/assets/mnist_cnn.npz`, input 2x - 1 (jaxgan's x/127.5 - 1). When jaxgan and
                jax are importable (run from the repo root in an environment with both), its
                features of a few images are checked against jaxgan's and the difference printed.
  inception_v3  pytorch-fid's own `InceptionV3([3])` (bilinear resize to 299, 2x - 1, pool3).
                Its weights download cannot work offline, so it is built with random weights (the
                URL loader patched to return the freshly initialised state_dict, conv kernels
                He-normal so activations stay O(1) as with real weights): timing only.

Prints the same lines as jaxgan's bench: one warm-up batch (not timed), `--repeats` passes over all
images, their range, and last `features_img_per_s: <median>`.
"""

import argparse
import pathlib
import statistics
import sys
import time
from unittest import mock

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

REPO = pathlib.Path(__file__).resolve().parents[1]
MNIST_CNN_WEIGHTS = REPO / "jaxgan" / "assets" / "mnist_cnn.npz"
# name -> (default number of images, default batch size, image size, channels): jaxgan.bench's.
DEFAULTS = {"mnist_cnn": (10_000, 500, 32, 1), "inception_v3": (500, 50, 32, 3)}


class MnistCNN(nn.Module):
    """jaxgan.models.classifier.MnistCNN: x [N, 1, 32, 32] in [0, 1] -> (features [N, 128], logits)."""

    def __init__(self, widths=(16, 32, 64), feature_dim=128, num_classes=10):
        super().__init__()
        channels = (1,) + tuple(widths)
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 3, padding=1) for c_in, c_out in zip(channels, widths)
        )
        self.features = nn.Linear(widths[-1] * 4 * 4, feature_dim)
        self.logits = nn.Linear(feature_dim, num_classes)

    def forward(self, x):
        x = 2 * x - 1  # ToTensor's [0, 1] to jaxgan's [-1, 1]
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        x = x.permute(0, 2, 3, 1).flatten(1)  # jaxgan flattens NHWC: (h, w, c) order
        features = F.relu(self.features(x))
        return features, self.logits(features)


def load_mnist_cnn(path=MNIST_CNN_WEIGHTS) -> MnistCNN:
    """The shipped Flax weights (HWIO kernels, [in, out] dense) in PyTorch's layouts."""
    model = MnistCNN()
    with np.load(path, allow_pickle=False) as arrays:
        state = {}
        for i in range(len(model.convs)):
            state[f"convs.{i}.weight"] = arrays[f"Conv{i}/kernel"].transpose(3, 2, 0, 1)
            state[f"convs.{i}.bias"] = arrays[f"Conv{i}/bias"]
        for name, ours in (("features", "Features"), ("logits", "Logits")):
            state[f"{name}.weight"] = arrays[f"{ours}/kernel"].T
            state[f"{name}.bias"] = arrays[f"{ours}/bias"]
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    return model


def he_normal(state_dict):
    """Conv kernels redrawn He-normal (std sqrt(2 / fan-in)), the rest kept: activations stay O(1)
    through the 94 convs, as with real weights and jaxgan's `inception.random_params` (torchvision's
    own initialisation shrinks pool3 to ~1e-8, nearer the slow denormal range)."""
    for name, value in state_dict.items():
        if name.endswith("conv.weight"):
            fan_in = value[0].numel()
            state_dict[name] = torch.randn_like(value) * (2.0 / fan_in) ** 0.5
    return state_dict


def random_weight_inception() -> nn.Module:
    """pytorch-fid's `InceptionV3([3])`, its weights download replaced by a random initialisation.

    `fid_inception_v3` builds torchvision's network, swaps in the FID blocks, then loads the URL's
    state_dict: the patched loader hands back that very network's state_dict, He-rescaled.
    """
    from pytorch_fid import inception as fid

    built = []

    def record(*args, **kwargs):
        built.append(build(*args, **kwargs))
        return built[-1]

    build = fid._inception_v3
    random_state_dict = lambda *args, **kwargs: he_normal(built[-1].state_dict())
    with (
        mock.patch.object(fid, "_inception_v3", record),
        mock.patch.object(fid, "load_state_dict_from_url", random_state_dict),
    ):
        model = fid.InceptionV3([fid.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    return model


class ImageDataset(torch.utils.data.Dataset):
    """uint8 images [N, H, W, C] -> float CHW tensors in [0, 1] (`ToTensor`, as pytorch-fid)."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return torch.from_numpy(self.images[i]).permute(2, 0, 1).float().div(255)


def first_output(model):
    """The features a forward pass returns: mnist_cnn's penultimate layer, Inception's pool3."""
    if isinstance(model, MnistCNN):
        return lambda batch: model(batch)[0]
    return lambda batch: model(batch)[0].squeeze(3).squeeze(2)


def get_activations(images, model, batch_size, num_workers, device="cpu"):
    """pytorch-fid `get_activations`, over arrays instead of files: [N, D] numpy features
    (each batch moved to `device` as pytorch-fid does, the features copied back)."""
    model.eval()
    loader = torch.utils.data.DataLoader(
        ImageDataset(images),
        batch_size=batch_size,
        shuffle=False,
        drop_last=False,
        num_workers=num_workers,
    )
    forward = first_output(model)
    parts = []
    for batch in loader:
        with torch.no_grad():
            parts.append(forward(batch.to(device)).cpu().numpy())
    return np.concatenate(parts)


def check_against_jaxgan(model, images, device) -> str:
    """Max |torch - jaxgan| of mnist_cnn's features, or why it could not be computed."""
    sys.path.insert(0, str(REPO))
    try:  # here, not at the top: the timing needs only torch
        from jaxgan.eval import classifier_training
        from jaxgan.models import classifier
    except ImportError as e:
        return f"skipped (jaxgan not importable here: {e})"
    jax_model = classifier.get("mnist_cnn")
    params, _ = classifier.load_params(MNIST_CNN_WEIGHTS, jax_model)
    ours = classifier_training.make_predictor(jax_model, params)(images)["features"]
    theirs = get_activations(images, model, len(images), 0, device)
    diff = float(np.abs(theirs - ours).max())
    scale = float(np.abs(ours).max())
    # float32 through 5 layers (fan-in <= 1,024): rounding ~2^-24·√(fan-in) per layer, ~1e-6 of
    # the scale; 2x/255 - 1 vs x/127.5 - 1 is one more rounding. A layout mistake is O(scale).
    if diff > 1e-4 * scale:
        raise SystemExit(
            f"mnist_cnn features differ from jaxgan's by {diff:.3g} (scale {scale:.3g})"
        )
    return f"max |torch - jaxgan| {diff:.2e} over {images.shape[0]} images (features up to {scale:.2f})"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--features", choices=sorted(DEFAULTS), default="mnist_cnn")
    parser.add_argument("--num_images", type=int, default=0, help="0: 10,000 / 500")
    parser.add_argument("--batch_size", type=int, default=0, help="0: 500 / 50")
    parser.add_argument("--image_size", type=int, default=32, help="inception_v3 input size")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num_workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--threads", type=int, default=0, help="0: PyTorch's default")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    num_images, batch_size, size, channels = DEFAULTS[args.features]
    num_images, batch_size = args.num_images or num_images, args.batch_size or batch_size
    if args.features == "inception_v3":
        size = args.image_size
        model, weights = random_weight_inception(), "random weights: timing only"
    else:
        model, weights = load_mnist_cnn(), f"shipped weights ({MNIST_CNN_WEIGHTS.name})"
    model.to(args.device)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (num_images, size, size, channels), dtype=np.uint8)

    start = time.perf_counter()
    get_activations(images[:batch_size], model, batch_size, args.num_workers, args.device)
    warmup_s = time.perf_counter() - start
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        get_activations(images, model, batch_size, args.num_workers, args.device)
        rates.append(num_images / (time.perf_counter() - start))
    check = (
        check_against_jaxgan(model, images[:16], args.device)
        if args.features == "mnist_cnn"
        else None
    )

    print(f"torch: {torch.__version__}, threads: {torch.get_num_threads()}")
    print(f"network: {args.features}, {weights}")
    print(f"images: {num_images} x {size}x{size}x{channels} uint8")
    print(f"batch_size: {batch_size}, num_workers: {args.num_workers}")
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"devices: 1 ({name})")
    if check:
        print(f"check: {check}")
    print(f"warmup_s: {warmup_s:.2f} (one batch; not timed)")
    print(f"img_per_s_runs: {', '.join(f'{r:.1f}' for r in rates)}")
    print(f"features_img_per_s_range: {min(rates):.1f}-{max(rates):.1f}")
    print(f"features_img_per_s: {statistics.median(rates):.1f}")


if __name__ == "__main__":
    main()
