"""Shards: every job in exactly one part of N, the same part always, parts of even size; the
`--shard` option, its folder, its run line, and what a shard skips."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import pytest

from harness.errors import InputError
from harness.ledger.index import OpenBatch, ResumeIndex
from harness.ledger.shards import Shard, part_of
from harness.run.batch_lane import reattachable
from harness.run.prepare import Overrides, prepare
from tests.conftest import SIMPLE_MODEL, ledger_lines, results, write_config


def random_keys(rng: random.Random, count: int) -> set[str]:
    """Keys shaped as the harness makes them, with variant ids, prompt ids and samples of many
    forms (unicode, pipes inside prompt ids, long ids)."""
    alphabet = "abcxyz0129_-.é漢|"
    keys = set()
    while len(keys) < count:
        variant = f"m{rng.randrange(50)}@t0.{rng.randrange(10)}-{rng.randrange(16**6):06x}"
        prompt = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40)))
        keys.add(f"{variant}|{prompt}|{rng.randrange(8)}")
    return keys


@pytest.mark.parametrize("count", [1, 2, 3, 7, 8, 16, 100])
def test_the_shards_of_n_are_disjoint_and_their_union_is_every_job(count):
    rng = random.Random(20261124 + count)
    for _ in range(5):
        keys = random_keys(rng, rng.randrange(1, 3000))
        parts = [{k for k in keys if Shard(index, count).holds(k)} for index in range(count)]
        assert set().union(*parts) == keys
        assert sum(len(part) for part in parts) == len(keys)


def test_a_keys_shard_is_the_documented_hash_and_never_changes():
    key = "sim@t0.7-4b0874|cve_002|3"
    digest = hashlib.sha256(key.encode()).digest()
    assert part_of(key, 8) == int.from_bytes(digest[:8], "big") % 8
    # Pinned (from `printf %s KEY | sha256sum`): a change would move done jobs to other shards.
    assert [part_of(key, n) for n in (2, 3, 8, 1000)] == [1, 2, 3, 499]


def test_shards_are_balanced_for_every_variant_and_sample():
    keys = [f"v{v}|p{p:05d}|{s}" for v in range(4) for p in range(6000) for s in range(4)]
    count = 8
    per_part = Counter(part_of(key, count) for key in keys)
    expected = len(keys) / count
    assert all(abs(n - expected) / expected < 0.03 for n in per_part.values()), per_part
    per_variant = Counter((key[:2], part_of(key, count)) for key in keys)
    assert all(abs(n - expected / 4) / (expected / 4) < 0.06 for n in per_variant.values())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8/8", "--shard 8/8: K must be from 0 to 7 (0-based, as $SLURM_ARRAY_TASK_ID with "
         "--array=0-7), got 8"),
        ("1/0", "--shard 1/0: N must be from 1 to 1,000,000, got 0"),
        ("-1/4", "--shard -1/4: expected K/N"),
        ("3", "--shard 3: expected K/N"),
        ("a/b", "--shard a/b: expected K/N"),
    ],
)  # fmt: skip
def test_a_bad_shard_is_one_line_naming_it(text, message):
    with pytest.raises(InputError) as raised:
        Shard.parse(text)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_a_bad_shard_exits_2_with_one_line_and_writes_nothing(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL)
    for verb in ("run", "rerun", "plan"):
        code, _out, err = run_cli(verb, config, "--shard", "4/4")
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: --shard 4/4: K")
    assert not (tmp_path / "out").exists()


def test_the_jobs_of_every_shard_together_are_the_plan_each_once(tmp_path):
    config = write_config(tmp_path, SIMPLE_MODEL.replace("[0.0, 0.5]", "[0.0, 0.5, 1.0]"))
    config.write_text(config.read_text().replace("seed = 7", "seed = 7\nsamples = 3"), "utf-8")
    whole = prepare(config)
    every = [job.key for job in whole.jobs(lambda key, prompt_hash: True)]
    assert len(every) == len(set(every)) == 6 * 3 * 3
    for count in (1, 2, 5, 13, 60):
        shards = [prepare(config, Overrides(shard=Shard(k, count))) for k in range(count)]
        keys = [job.key for s in shards for job in s.jobs(lambda key, prompt_hash: True)]
        assert sorted(keys) == sorted(every)
        totals = Counter()
        for shard in shards:
            totals.update(shard.totals())
        assert dict(totals) == whole.totals()


def test_a_shard_never_depends_on_which_jobs_are_done(tmp_path):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=30)
    shard = prepare(config, Overrides(shard=Shard(1, 3)))
    mine = {job.key for job in shard.jobs(lambda key, prompt_hash: True)}
    rng = random.Random(7)
    for _ in range(5):
        done = {key for key in mine if rng.random() < 0.5}
        wanted = {job.key for job in shard.jobs(lambda key, _, done=done: key not in done)}
        assert wanted == mine - done


def test_a_shard_writes_under_shards_k_of_n_and_its_run_line_says_which(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=12)
    code, out, err = run_cli("run", config, "--shard", "1/3")
    assert code == 0, err
    ledger = tmp_path / "out" / "shards" / "1-of-3" / "ledger.jsonl"
    run = ledger_lines(ledger)[0]
    assert run["shard"]["index"] == 1 and run["shard"]["count"] == 3
    assert run["shard"]["plan_unsharded"] == {v: 12 for v in run["plan"]}
    keys = {r["key"] for r in results(ledger)}
    assert keys and all(part_of(key, 3) == 1 for key in keys)
    assert sum(run["plan"].values()) == len(keys)
    assert "merge" in out and str(tmp_path / "out") in out
    assert not (tmp_path / "out" / "ledger.jsonl").exists()


def test_output_puts_a_shards_ledger_elsewhere(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL)
    code, _, err = run_cli("run", config, "--shard", "0/2", "--output", tmp_path / "node0")
    assert code == 0, err
    assert results(tmp_path / "node0" / "ledger.jsonl")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("verb", ["run", "plan", "rerun"])
def test_a_shard_given_an_output_reads_that_output_alone(tmp_path, run_cli, verb):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=20)
    assert run_cli("run", config)[0] == 0  # every job done in the config's output
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ("--json",) if verb == "plan" else ()
    code, out, err = run_cli(verb, config, "--shard", "0/2", "--output", empty, *args)
    if verb == "rerun":  # no failure in the output given, nor any ledger: nothing is made
        assert code == 2 and f"{empty / 'ledger.jsonl'}: no such ledger" in err
        assert not any(empty.iterdir())
        return
    assert code == 0, err
    if verb == "plan":  # nothing done in the output given: every job of the shard pending
        assert '"pending": 0' not in out
        assert not (empty / "ledger.jsonl").exists()
        return
    ran = {r["key"] for r in results(empty / "ledger.jsonl")}
    assert ran and all(part_of(key, 2) == 0 for key in ran)
    assert "nothing to do" not in out + err


def test_a_shard_skips_what_the_merged_ledger_already_holds(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=20)
    assert run_cli("run", config, "--limit", "10")[0] == 0
    done = {r["key"] for r in results(tmp_path / "out" / "ledger.jsonl")}
    code, _, err = run_cli("run", config, "--shard", "0/2")
    assert code == 0, err
    ran = {r["key"] for r in results(tmp_path / "out" / "shards" / "0-of-2" / "ledger.jsonl")}
    assert ran and not ran & done
    assert all(part_of(key, 2) == 0 for key in ran)


def test_a_run_without_a_shard_skips_what_every_shard_did(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=20)
    assert run_cli("run", config, "--shard", "1/2")[0] == 0
    code, _, err = run_cli("run", config)
    assert code == 0, err
    whole = {r["key"] for r in results(tmp_path / "out" / "ledger.jsonl")}
    shard = {r["key"] for r in results(tmp_path / "out" / "shards" / "1-of-2" / "ledger.jsonl")}
    assert len(whole) + len(shard) == 40 and not whole & shard
    code, out, _ = run_cli("run", config)
    assert code == 0 and out.startswith("nothing to do: 40 jobs already done")


def test_a_shard_cut_another_way_is_named_and_not_skipped(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=10)
    assert run_cli("run", config, "--shard", "0/2")[0] == 0
    code, out, _ = run_cli("run", config, "--shard", "0/3")
    assert code == 0
    assert "0-of-2: a shard cut another way; its jobs are not skipped here until merged" in out


def test_plan_counts_a_shards_jobs_only(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=30)
    pending = 0
    for k in range(3):
        code, out, _ = run_cli("plan", config, "--shard", f"{k}/3", "--json")
        assert code == 0
        plan = __import__("json").loads(out)
        pending += sum(v["pending"] for v in plan["variants"])
    assert pending == 60


def test_a_shard_collects_its_own_open_batches_and_leaves_other_shards_alone(tmp_path):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=12)
    whole = prepare(config)
    keys = [job.key for job in whole.jobs(lambda key, prompt_hash: True)]
    index = ResumeIndex()
    for k in range(2):
        mine = [key for key in keys if part_of(key, 2) == k]
        batch = OpenBatch(f"b{k}", "sim", "anthropic", "r", "2026-11-24T00:00:00.000Z", mine,
                          [whole.prompts[0].hash] * len(mine), f"id{k}")  # fmt: skip
        index.batches[batch.label] = batch
        index.awaiting.update(dict.fromkeys(mine, batch.label))
    for k in range(2):
        shard = prepare(config, Overrides(shard=Shard(k, 2)))
        found = reattachable(index, shard.variants, shard.prompts, 1, holds=shard.holds)
        assert [r.batch.label for r in found.by_model["sim"]] == [f"b{k}"] and not found.left
    found = reattachable(index, whole.variants, whole.prompts, 1)
    assert len(found.by_model["sim"]) == 2
