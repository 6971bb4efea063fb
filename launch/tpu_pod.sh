#!/usr/bin/env bash
# Run the same training command on every host of a Cloud TPU pod slice.
#
#   launch/tpu_pod.sh TPU_NAME ZONE --config=wgan_gp:cifar10 --workdir=gs://bucket/runs/x
#
# Every host runs `python -m jaxgan.main` with JAXGAN_DISTRIBUTED=1, so JAX's own runtime
# (`jax.distributed.initialize()`, which discovers the pod's coordinator by itself) joins them into
# one program: one `data` mesh over all chips, each host reading its own slice of every batch.
# The workdir must be visible to every host (a GCS bucket): Orbax saves and restores from all hosts.
# A module other than jaxgan.main may come first, e.g. the evaluator on every host (process 0
# writes its rows):  launch/tpu_pod.sh TPU_NAME ZONE jaxgan.evaluate --workdir=gs://bucket/runs/x
# Assumes the repository is at ~/jaxgan on the hosts (clone it there first, e.g. with
# `gcloud compute tpus tpu-vm ssh $TPU_NAME --zone=$ZONE --worker=all --command="git clone ... ~/jaxgan"`).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 TPU_NAME ZONE --config=... --workdir=gs://..." >&2
  exit 2
fi
tpu_name=$1 zone=$2
shift 2
module=jaxgan.main
if [[ $1 != -* ]]; then
  module=$1
  shift
fi
args=$(printf '%q ' "$@")
gcloud compute tpus tpu-vm ssh "$tpu_name" --zone="$zone" --worker=all --command="
  set -e; cd ~/jaxgan
  python3 -m pip install -q -e '.[tpu]'
  JAXGAN_DISTRIBUTED=1 python3 -m $module $args"
