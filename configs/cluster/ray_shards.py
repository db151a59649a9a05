"""Run a config as N shards on a Ray cluster, one Ray task per shard, then merge them.

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python configs/cluster/ray_shards.py configs/pilot.toml --shards 8 --gpus 1

Each task runs `python -m harness run CONFIG --shard K/N` wherever Ray places it (with `--gpus`
GPUs reserved for it; vLLM in the task sees those), into OUTPUT/shards/K-of-N/ledger.jsonl, so
OUTPUT must be on storage every node shares (NFS, Lustre, a mounted bucket), named by an absolute
path in the config (tasks run in a copy of the working directory). A task whose worker
dies (a node lost, an OOM kill) is retried by Ray and resumes its shard's ledger; a shard that
ends with failed jobs (exit 1) is not retried: `harness rerun CONFIG --shard K/N` does that. Once
every task has ended, the shards are merged into OUTPUT/ledger.jsonl and the script exits with
the worst exit code of the shards (0 every job answered, 1 some failed, 2 bad input, ...).

The harness and its dependencies must be installed in the cluster's Python environment (for
vLLM, `pip install -e '.[vllm]'` in the image); `--working-dir .` ships the config and prompts.
Options after `--` go to every `harness run` (`--models a,b`, `--sample 1000`, ...).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import ray

from harness.config.run_config import load_config


@ray.remote(max_retries=3)
def run_shard(config: str, index: int, count: int, options: list[str]) -> int:
    """One shard, as its own `harness run` process; its exit code."""
    command = [sys.executable, "-m", "harness", "run", config, "--shard", f"{index}/{count}"]
    return subprocess.run([*command, *options], check=False).returncode


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="the run's TOML config")
    parser.add_argument("--shards", type=int, required=True, help="N: how many shards")
    parser.add_argument("--gpus", type=float, default=0, help="GPUs per shard (default 0)")
    parser.add_argument("--cpus", type=float, default=1, help="CPUs per shard (default 1)")
    cut = argv.index("--") if "--" in argv else len(argv)
    args, options = parser.parse_args(argv[:cut]), argv[cut + 1 :]
    if "--output" in options:  # every shard would write to the one ledger
        parser.error("--output: the shards go under the config's output; set `output` there")
    ray.init()  # the cluster `ray job submit` runs this on (RAY_ADDRESS), or a local one
    resources = {"num_gpus": args.gpus, "num_cpus": args.cpus}
    tasks = [
        run_shard.options(**resources).remote(args.config, index, args.shards, options)
        for index in range(args.shards)
    ]
    codes = ray.get(tasks)
    for index, code in enumerate(codes):
        print(f"shard {index}/{args.shards}: exit {code}")
    output = str(load_config(args.config).output)
    merged = subprocess.run(
        [sys.executable, "-m", "harness", "merge", output, "--into", output], check=False
    ).returncode
    return max([*codes, merged])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
