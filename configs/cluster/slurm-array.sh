#!/usr/bin/env bash
# One shard of a harness run per SLURM array task (see docs/scaling.md).
#
#   jobid=$(sbatch --parsable --array=0-7 configs/cluster/slurm-array.sh configs/pilot.toml)
#   sbatch --dependency=afterany:$jobid configs/cluster/slurm-merge.sh results/pilot
#
# Task K of N runs `harness run CONFIG --shard K/N` into OUTPUT/shards/K-of-N/ledger.jsonl
# (OUTPUT on storage the nodes share; else add `--output /local/dir` and copy the shard folders
# back before merging). Options after CONFIG go to `harness run` (`--models`, `--sample`, ...).
# A task requeued after preemption or a node failure resumes its own shard: SLURM sends SIGTERM,
# the run records what is in flight within grace_seconds, and the next start skips what is done.
#SBATCH --job-name=harness
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=64G
#SBATCH --time=24:00:00
#SBATCH --requeue
#SBATCH --output=harness-%A_%a.out
set -euo pipefail

config=${1:?usage: sbatch --array=0-N-1 slurm-array.sh CONFIG [run options]}
shift
# 0-based as the harness counts shards, whatever the array's first index (--array=1-8 works too).
index=$((SLURM_ARRAY_TASK_ID - ${SLURM_ARRAY_TASK_MIN:-0}))
exec "${PYTHON:-python}" -m harness run "$config" --shard "$index/$SLURM_ARRAY_TASK_COUNT" "$@"
