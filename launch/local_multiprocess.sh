#!/usr/bin/env bash
# N processes on this machine, each with its own CPU devices, joined by JAX's distributed runtime:
# a cheap rehearsal of a multi-host run (every process reads its slice of each batch, Orbax saves
# from all of them). SIGTERM to this script is passed to every process, as a cluster's preemption
# notice reaches every host: they agree on a step, checkpoint it and exit 0.
#
# A module other than jaxgan.main may come first: the evaluator runs on every process alike, and
# process 0 writes its rows.
#
#   launch/local_multiprocess.sh 2 --config=wgan_gp:smoke --workdir=/tmp/mp
#   launch/local_multiprocess.sh 2 jaxgan.evaluate --workdir=/tmp/mp --metrics=fid
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 NUM_PROCESSES [MODULE] --flag=... (MODULE: jaxgan.main unless given)" >&2
  exit 2
fi
num_processes=$1
shift
module=jaxgan.main
if [[ $1 != -* ]]; then
  module=$1
  shift
fi
port=$((20000 + RANDOM % 20000))
pids=()
for ((i = 0; i < num_processes; i++)); do
  JAX_PLATFORMS=cpu JAXGAN_DISTRIBUTED=1 JAX_COORDINATOR_ADDRESS="127.0.0.1:$port" \
    JAX_NUM_PROCESSES="$num_processes" JAX_PROCESS_ID="$i" \
    "${JAXGAN_PYTHON:-python3}" -m "$module" "$@" &
  pids+=($!)
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' TERM INT
status=0
for pid in "${pids[@]}"; do
  # `wait` returns early (status > 128) when a trapped signal arrives: wait again until it exits.
  while true; do
    wait "$pid" && code=0 || code=$?
    if [ "$code" -le 128 ] || ! kill -0 "$pid" 2>/dev/null; then break; fi
  done
  [ "$code" -eq 0 ] || status=$code
done
exit $status
