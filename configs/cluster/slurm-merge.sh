#!/usr/bin/env bash
# Join every shard of a run into OUTPUT/ledger.jsonl once the array has ended (see slurm-array.sh):
#
#   sbatch --dependency=afterany:$jobid configs/cluster/slurm-merge.sh results/pilot
#
# `afterany`: a task that exits 1 (some jobs failed for good) still has results to merge; rerun
# its failures later with `harness rerun CONFIG --shard K/N`. Merging again is harmless.
#SBATCH --job-name=harness-merge
#SBATCH --cpus-per-task=1
#SBATCH --mem=4G
#SBATCH --time=01:00:00
#SBATCH --output=harness-merge-%j.out
set -euo pipefail

output=${1:?usage: sbatch slurm-merge.sh OUTPUT}
exec "${PYTHON:-python}" -m harness merge "$output" --into "$output"
