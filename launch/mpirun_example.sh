#!/bin/bash
# ft_train on 8 GPUs of one machine (or 8 CPU ranks) with Open MPI's mpirun, no scheduler.
#
#   launch/mpirun_example.sh run.yaml [key=value ...]
#   NP=4 HOSTFILE=hosts.txt launch/mpirun_example.sh run.yaml parallel.tp=2
#
# One process per GPU: each rank drives the GPU of its local rank (its index among the ranks on
# its node). mpirun works inside a Slurm allocation too (it then starts its daemons with srun).
set -euo pipefail

CONFIG=${1:?usage: mpirun_example.sh CONFIG [key=value ...]}
shift
NP=${NP:-8}
FT_TRAIN=${FT_TRAIN:-ft_train}

# Threads per rank: the cores of the machine shared among its ranks.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(($(nproc) / NP > 0 ? $(nproc) / NP : 1))}
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}   # INFO: NCCL's topology, rings and transports

MPIRUN_ARGS=(-np "$NP"
  # Ranks in order, filling a node before the next: tensor-parallel ranks (adjacent) share a node.
  --map-by slot --bind-to none
  # mpirun passes only what -x names to ranks on other hosts.
  -x OMP_NUM_THREADS -x NCCL_DEBUG -x PATH)
for name in LD_LIBRARY_PATH NCCL_SOCKET_IFNAME NCCL_IB_HCA CUDA_VISIBLE_DEVICES; do
  if [ -n "${!name:-}" ]; then MPIRUN_ARGS+=(-x "$name"); fi
done
if [ -n "${HOSTFILE:-}" ]; then MPIRUN_ARGS+=(--hostfile "$HOSTFILE"); fi
# As root (containers, CI) Open MPI needs --allow-run-as-root; with more ranks than cores (CPU
# tests) --oversubscribe.
if [ "$(id -u)" -eq 0 ]; then MPIRUN_ARGS+=(--allow-run-as-root); fi
if [ -z "${HOSTFILE:-}" ] && [ "$NP" -gt "$(nproc)" ]; then MPIRUN_ARGS+=(--oversubscribe); fi

# A rank that fails aborts the whole job (MPI_Abort), naming its rank: "ft: rank 3 of 8: ...".
# Stopping early: `kill -USR1 <pid of mpirun>` (mpirun forwards SIGUSR1 to every rank) makes the
# ranks finish their step, save a checkpoint and exit with code 75; run again with --resume.
exec mpirun "${MPIRUN_ARGS[@]}" "$FT_TRAIN" --config "$CONFIG" "$@"
