#!/usr/bin/env bash
# The prepared GPU check: what README's GPU table holds, measured in one run (~8 minutes on one
# H100/H200), so that GPU minutes go to measuring and not to debugging.
#
#   bash benchmarks/gpu_check.sh                 # on the GPU machine, from the repository root
#   DRY_RUN=1 bash benchmarks/gpu_check.sh       # the same commands at tiny sizes, on any CPU
#   TORCH_PYTHON=/path/to/python ...             # PyTorch from another environment (default: $PYTHON)
#
# 1. jaxgan against its PyTorch twin (`python -m jaxgan.bench --vs=torch`: eager NCHW and
#    channels_last, alternating), float32, and bfloat16 compute against PyTorch AMP: the default
#    WGAN-GP, the :cifar10 ResNet, PGGAN:cifar10 at the 32x32 fade-in, CycleGAN at 64x64.
# 2. Inception feature extraction, jaxgan against pytorch-fid's loop (random weights: timing).
# 3. The data path: 2,000 JPEGs of 300x300 prepared at 64x64, read as `prepared:` and `folder:`.
# 4. Every paper preset at its real size (`--presets=paper`): parameters, compile, step, peak
#    memory, one line each and $OUT/paper_presets.jsonl (a row per preset as it finishes, so a
#    section cut by its limit keeps the presets done).
# Without torch (or pytorch-fid) the jaxgan lines still print and each comparison says it was
# not run. Every command's output goes to stdout and to $OUT/<section>.log; each section has its
# own time limit so one hang cannot take the rest of the budget.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
TORCH_PYTHON=${TORCH_PYTHON:-$PYTHON}
OUT=${OUT:-/tmp/gpu_check}
DRY_RUN=${DRY_RUN:-0}
mkdir -p "$OUT"

if [ "$DRY_RUN" = 1 ]; then
  ROUNDS=1 STEPS=1 FEATURE_IMAGES=100 FEATURE_BATCH=50 NUM_JPEGS=64 LIMIT=600 PRESETS_LIMIT=600
  PRESETS=wgan_gp:smoke,pggan:smoke,cyclegan:smoke
  # The same code paths at tiny widths: the dry run checks commands, not speed.
  SMALL_RESNET="--config.model.g_width=8 --config.model.d_width=8"
  SMALL_PGGAN="--config.model.fmap_base=64 --config.model.fmap_max=16"
  SMALL_CYCLEGAN="--config.model.g_width=8 --config.model.d_width=8 --config.model.num_blocks=1"
else
  ROUNDS=3 STEPS=20 FEATURE_IMAGES=5000 FEATURE_BATCH=200 NUM_JPEGS=2000 LIMIT=150
  # Ten compiles and steps; what remains of the 10-minute call after sections 1-3.
  PRESETS_LIMIT=${PRESETS_LIMIT:-120} PRESETS=paper
  SMALL_RESNET="" SMALL_PGGAN="" SMALL_CYCLEGAN=""
fi

if "$TORCH_PYTHON" -c "import torch" 2>/dev/null; then
  VS="--vs=torch --rounds=$ROUNDS --torch_python=$TORCH_PYTHON"
else
  VS=""; echo "torch: not importable by $TORCH_PYTHON; the PyTorch comparisons are not run"
fi

run() {  # run NAME COMMAND...: prints and logs a section, within its time limit
  local name=$1; shift
  echo "== $name: $*"
  timeout "$LIMIT" "$@" 2>&1 | grep -v -e '^[IW][0-9]\{4\} ' | tee "$OUT/$name.log"
  local status=${PIPESTATUS[0]}
  [ "$status" = 0 ] || echo "== $name: exit $status"
}

"$PYTHON" -c "import jax; print('jax', jax.__version__, jax.devices())"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

# 1. Training steps against the twins.
BF16="--config.compute_dtype=bfloat16"
run wgan_gp_f32 "$PYTHON" -m jaxgan.bench --config=wgan_gp --steps="$STEPS" $VS
run resnet_f32 "$PYTHON" -m jaxgan.bench --config=wgan_gp:cifar10 --steps="$STEPS" $VS $SMALL_RESNET
run resnet_bf16 "$PYTHON" -m jaxgan.bench --config=wgan_gp:cifar10 --steps="$STEPS" $VS $SMALL_RESNET $BF16
run pggan_f32 "$PYTHON" -m jaxgan.bench --config=pggan:cifar10 --stage_resolution=32 \
  --stage_alpha=0.5 --steps="$STEPS" $VS $SMALL_PGGAN
run cyclegan_f32 "$PYTHON" -m jaxgan.bench --config=cyclegan --steps="$STEPS" $VS $SMALL_CYCLEGAN
run cyclegan_bf16 "$PYTHON" -m jaxgan.bench --config=cyclegan --steps="$STEPS" $VS $SMALL_CYCLEGAN $BF16

# 2. Inception features: jaxgan, then pytorch-fid's loop on the same device.
run inception_jaxgan "$PYTHON" -m jaxgan.bench --features=inception_v3 --num_images="$FEATURE_IMAGES" \
  --batch_size="$FEATURE_BATCH" --image_size=32 --repeats=3
if "$TORCH_PYTHON" -c "import torch, pytorch_fid" 2>/dev/null; then
  DEVICE=$("$TORCH_PYTHON" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
  run inception_torch "$TORCH_PYTHON" benchmarks/torch_features.py --features=inception_v3 --device="$DEVICE" \
    --num_images="$FEATURE_IMAGES" --batch_size="$FEATURE_BATCH" --image_size=32 --repeats=3
else
  echo "pytorch-fid: not importable by $TORCH_PYTHON; its Inception loop is not run"
fi

# 3. The data path: JPEGs written here (no download), prepared once, then both readers.
rm -rf "$OUT/jpg" "$OUT/prepared64"
"$PYTHON" - "$OUT/jpg" "$NUM_JPEGS" <<'EOF'
import os, sys
import numpy as np
from PIL import Image
out, count = sys.argv[1], int(sys.argv[2])
os.makedirs(out)
rng = np.random.default_rng(0)
for i in range(count):  # smooth random images: JPEG sizes like photos', not like noise's
    small = rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
    Image.fromarray(small).resize((300, 300), Image.BICUBIC).save(f"{out}/{i:05d}.jpg", quality=90)
EOF
run prepare "$PYTHON" -m jaxgan.data.prepare "folder:$OUT/jpg" --resolution=64 --out="$OUT/prepared64"
run data_prepared "$PYTHON" -m jaxgan.bench --data="prepared:$OUT/prepared64" --num_images=50000
run data_folder "$PYTHON" -m jaxgan.bench --data="folder:$OUT/jpg" --data_resolution=64 --num_images="$NUM_JPEGS"

# 4. The paper presets at their real size: every step runs (no time budget on the device).
rm -f "$OUT/paper_presets.jsonl"
LIMIT=$PRESETS_LIMIT run paper_presets "$PYTHON" -m jaxgan.bench --presets="$PRESETS" \
  --preset_max_step_s=0 --rows_out="$OUT/paper_presets.jsonl"
echo "== done; logs in $OUT"
