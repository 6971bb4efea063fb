#!/usr/bin/env bash
# A multi-node GPU run under SLURM: one process per node, all local GPUs per process.
#
#   sbatch --nodes=4 --gpus-per-node=8 launch/slurm_gpu.sh --config=wgan_gp:cifar10 --workdir=/shared/runs/x
#
#   sbatch --nodes=4 --gpus-per-node=8 launch/slurm_gpu.sh jaxgan.evaluate --workdir=/shared/runs/x
#
# A module other than jaxgan.main may come first (the evaluator: every node scores alike on its
# own GPUs, process 0 writes the rows).
# `jax.distributed.initialize()` reads the SLURM environment to find the coordinator, the process
# count and this process's id. The workdir must be on a filesystem every node sees.
#SBATCH --ntasks-per-node=1
#SBATCH --job-name=jaxgan
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
export JAXGAN_DISTRIBUTED=1
module=jaxgan.main
if [[ $# -gt 0 && $1 != -* ]]; then
  module=$1
  shift
fi
srun python3 -m "$module" "$@"
