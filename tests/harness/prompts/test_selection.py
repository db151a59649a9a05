"""Run filters: categories, an ids file, the probe flag, a stratified sample, the first N."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from harness.api.types import Message
from harness.errors import InputError
from harness.ledger.lines import read_ledger
from harness.prompts.load import Prompt
from harness.prompts.selection import Selection, stratified_sample
from harness.run.summary import summarize
from tests.conftest import SIMPLE_MODEL, results, write_config


def prompt_set(sizes: dict[tuple[str, bool], int]) -> list[Prompt]:
    """Prompts in strata of the given sizes, interleaved as a real file would have them."""
    prompts = []
    for (category, probe), size in sizes.items():
        for i in range(size):
            text = f"{category} {probe} {i}"
            prompts.append(
                Prompt(
                    f"{category}-{int(probe)}-{i}", (Message("user", text),), category, probe, {}
                )
            )
    return sorted(prompts, key=lambda p: p.id[::-1])


SIZES = {
    ("cve", False): 120,
    ("cve", True): 30,
    ("package", False): 60,
    ("package", True): 15,
    ("api", False): 9,
    ("api", True): 2,
    ("rare", False): 1,
}


def strata(prompts: list[Prompt]) -> Counter:
    return Counter((p.category, p.is_synthetic_probe) for p in prompts)


def test_a_sample_covers_every_category_and_stratum_and_keeps_file_order():
    prompts = prompt_set(SIZES)
    chosen = stratified_sample(prompts, 20, seed=7)
    assert len(chosen) == 20
    assert set(strata(chosen)) == set(SIZES)  # every category and probe side appears
    order = {p.id: i for i, p in enumerate(prompts)}
    assert [order[p.id] for p in chosen] == sorted(order[p.id] for p in chosen)
    # The rest follows the strata's sizes: the largest gets the most.
    assert strata(chosen)[("cve", False)] == max(strata(chosen).values())


def test_a_sample_smaller_than_the_strata_still_covers_every_category():
    chosen = stratified_sample(prompt_set(SIZES), 4, seed=1)
    assert {p.category for p in chosen} == {"cve", "package", "api", "rare"}


def test_a_sample_is_the_same_for_the_same_seed_whatever_the_file_order():
    prompts = prompt_set(SIZES)
    first = {p.id for p in stratified_sample(prompts, 25, seed=3)}
    again = {p.id for p in stratified_sample(list(reversed(prompts)), 25, seed=3)}
    other = {p.id for p in stratified_sample(prompts, 25, seed=4)}
    assert first == again and first != other


@pytest.mark.parametrize("n", [1, 7, 8, 50, 236, 237, 500])
def test_a_sample_has_exactly_n_prompts_or_all_of_them(n):
    prompts = prompt_set(SIZES)
    chosen = stratified_sample(prompts, n, seed=0)
    assert len(chosen) == min(n, len(prompts)) and len({p.id for p in chosen}) == len(chosen)
    for stratum, count in strata(chosen).items():
        assert count <= SIZES[stratum]


def test_a_larger_sample_only_adds_prompts():
    # Strata sizes where largest-remainder quotas shrink a stratum as N grows (the Alabama
    # paradox): sample(25) was not part of sample(26).
    prompts = prompt_set(
        {
            ("c0", False): 25,
            ("c1", False): 14,
            ("c2", False): 7,
            ("c3", False): 32,
            ("c4", False): 2,
        }
    )
    for seed in (7, 8):
        previous: set[str] = set()
        for n in range(1, 81):
            drawn = {p.id for p in stratified_sample(prompts, n, seed)}
            assert previous <= drawn and len(drawn) == n
            previous = drawn


def test_an_ids_file_with_a_byte_order_mark_and_crlf_lines_reads_clean(tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_bytes(b"\xef\xbb\xbfcve-0-0\r\ncve-0-1\r\n")
    chosen = Selection(ids_file=ids).apply(prompt_set(SIZES), 0)
    assert {p.id for p in chosen} == {"cve-0-0", "cve-0-1"}


def test_ids_of_the_set_outside_the_chosen_categories_are_left_out_not_refused(tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("cve-0-0\napi-0-0\n")
    chosen = Selection(categories=("api",), ids_file=ids).apply(prompt_set(SIZES), 0)
    assert [p.id for p in chosen] == ["api-0-0"]


def test_filters_apply_in_order_then_the_limit(tmp_path):
    prompts = prompt_set(SIZES)
    ids = tmp_path / "ids.txt"
    wanted = [*[p.id for p in prompts if p.category == "api"][:5], "package-1-0"]
    ids.write_text("# chosen by hand\n" + "\n".join(wanted) + "\n\n")
    chosen = Selection(categories=("api", "package"), ids_file=ids, probes=True).apply(prompts, 0)
    assert {p.id for p in chosen} == {i for i in wanted if "-1-" in i}
    limited = Selection(categories=("cve",), probes=False, limit=3).apply(prompts, 0)
    assert limited == [p for p in prompts if p.category == "cve" and not p.is_synthetic_probe][:3]


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (Selection(categories=("cve", "nope")), "--category: no prompt in nope (have: api, cve,"),
        (Selection(categories=("rare",), probes=True), "no prompts left to run after --category"),
    ],
)
def test_a_filter_naming_what_the_set_lacks_is_bad_input(selection, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        selection.apply(prompt_set(SIZES), 0)


def test_ids_not_in_the_set_are_named(tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("cve-0-0\nghost-1\nghost-2\n")
    with pytest.raises(InputError, match="2 id\\(s\\) not in the prompt set: ghost-1, ghost-2"):
        Selection(ids_file=ids).apply(prompt_set(SIZES), 0)


def test_a_sampled_run_covers_every_category_and_records_its_selection(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=30)
    assert run_cli("run", config, "--sample", "4", "--no-probes")[0] == 0
    ledger = read_ledger(tmp_path / "out" / "ledger.jsonl")
    (run,) = ledger.runs
    assert run["prompts"]["selection"] == {
        "probes": "none",
        "sample": {"n": 4, "seed": 7, "by": ["category", "probe"]},
    }
    assert run["prompts"]["count"] == 4
    assert run["argv"][-3:] == ["--sample", "4", "--no-probes"]
    categories = {r["prompt_category"] for r in ledger.records}
    assert categories == {"a", "b"} and not any(r["is_synthetic_probe"] for r in ledger.records)
    assert len(ledger.records) == 4 * 2  # two temperatures


def test_a_rerun_hint_repeats_the_filters(tmp_path, run_cli):
    body = SIMPLE_MODEL.replace(
        'provider = "simulated"', 'provider = "simulated"\noptions = { fatal_rate = 1.0 }'
    )
    config = write_config(tmp_path, body, prompts=12)
    code, out, _ = run_cli("run", config, "--category", "a", "--probes-only")
    assert code == 1
    assert "rerun" in out and "--category a --probes-only" in out
    assert {r["prompt_category"] for r in results(tmp_path / "out" / "ledger.jsonl")} == {"a"}


def test_bad_filters_exit_2_and_write_nothing(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=6)
    for empty in ("", " , "):
        code, _, err = run_cli("run", config, "--category", empty)
        assert code == 2 and "--category: no category named" in err
    code, _, err = run_cli("run", config, "--category", "zzz")
    assert code == 2 and "--category: no prompt in zzz" in err
    code, _, err = run_cli("run", config, "--ids", tmp_path / "absent.txt")
    assert code == 2 and "--ids" in err and "cannot read" in err
    assert not (tmp_path / "out").exists()


def test_status_under_a_filter_counts_only_those_records(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=12)
    assert run_cli("run", config)[0] == 0
    ledger = tmp_path / "out" / "ledger.jsonl"
    keeps = Selection(categories=("b",), probes=False).keeps_record()
    summary = summarize(ledger, keeps=keeps)
    # Prompts 1, 5, 7 and 11 are of category b and not probes (see write_prompts).
    assert [(v.ok, v.failed, v.pending) for v in summary.variants] == [(4, 0, None)] * 2
    code, out, _ = run_cli("status", tmp_path / "out", "--category", "b", "--no-probes")
    assert code == 0 and "pending jobs are counted for whole runs" in out
    code, _, err = run_cli("status", tmp_path / "out", "--category", "nope")
    assert code == 2 and "--category: no record in nope (have: a, b)" in err


def test_plan_takes_the_same_filters(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL, prompts=30)
    code, out, _ = run_cli("plan", config, "--sample", "5", "--json")
    assert code == 0
    assert json.loads(out)["total"]["pending"] == 5 * 2
