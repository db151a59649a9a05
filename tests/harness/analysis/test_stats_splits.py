"""`stats --by FIELD`: rates and paired comparisons split by any field, checked against a hand
computation with statsmodels on the Parquet export of the demo."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from tests.conftest import REPO
from tests.harness.analysis.ledgers import answer, score, write_ledger, write_scores


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo run, scored, with its stats split by the probe flag and its Parquet export."""
    from harness.cli.main import main

    folder = tmp_path_factory.mktemp("demo")
    config = REPO / "configs" / "demo.toml"
    output = folder / "results"
    # The run ends with a few jobs failed for good (the demo's injected 400s); rerun brings them in.
    assert main(["run", str(config), "--output", str(output)]) == 1
    for argv in (
        ["rerun", str(config), "--output", str(output)],
        ["score", str(config), "--output", str(output)],
        ["stats", str(output), "--by", "is_synthetic_probe", "--json", str(folder / "s.json")],
        ["export", str(output), "--format", "parquet", "--to", str(folder / "a.parquet")],
    ):
        assert main(argv) == 0, argv
    stats = json.loads((folder / "s.json").read_text())
    return stats, pd.read_parquet(folder / "a.parquet")


def test_rates_by_the_probe_flag_are_those_statsmodels_gives_on_the_export(demo):
    stats, answers = demo
    assert stats["by"] == ["is_synthetic_probe"]
    rates = {
        (r["variant"], r["category"], r["label"]): r
        for r in stats["rates"]
        if r["scorer"] == "existence"
    }
    labelled = answers[answers["score.existence"].notna()]
    checked = 0
    for (variant, probe), group in labelled.groupby(["variant", "is_synthetic_probe"]):
        for label in ("claims_exists", "denies", "uncertain"):
            count, n = int((group["score.existence"] == label).sum()), len(group)
            low, high = proportion_confint(count, n, method="wilson")
            rate = rates[(variant, "true" if probe else "false", label)]
            assert (rate["n"], rate["count"]) == (n, count)
            assert rate["low"] == pytest.approx(min(low, count / n), abs=1e-12)
            assert rate["high"] == pytest.approx(max(high, count / n), abs=1e-12)
            checked += 1
    assert checked == 4 * 2 * 3


def test_paired_comparisons_run_within_each_split_on_the_items_both_variants_answered(demo):
    stats, answers = demo
    within = [
        c
        for c in stats["comparisons"]
        if c["scorer"] == "existence" and c["label"] == "claims_exists" and c["split"] == "true"
    ]
    assert len(within) == 6  # every pair of the four variants
    probes = answers[answers["is_synthetic_probe"] & answers["score.existence"].notna()]
    for c in within:
        a = probes[probes["variant"] == c["variant_a"]].set_index(["prompt_id", "sample"])
        b = probes[probes["variant"] == c["variant_b"]].set_index(["prompt_id", "sample"])
        both = a.index.intersection(b.index)
        yes_a = a.loc[both, "score.existence"] == "claims_exists"
        yes_b = b.loc[both, "score.existence"] == "claims_exists"
        table = [
            [int((yes_a & yes_b).sum()), int((yes_a & ~yes_b).sum())],
            [int((~yes_a & yes_b).sum()), int((~yes_a & ~yes_b).sum())],
        ]
        assert c["pairs"] == len(both)
        assert (c["a_only"], c["b_only"]) == (table[0][1], table[1][0])
        assert c["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue, abs=1e-12)
    assert {c["split"] for c in stats["comparisons"]} == {None, "true", "false"}


def test_the_hallucination_view_is_claims_on_probes_and_denies_on_real_items_as_on_the_export(
    demo,
):
    stats, answers = demo
    labelled = answers[answers["score.existence"].notna()]
    rates = {(r["measure"], r["variant"]): r for r in stats["hallucination"]}
    for measure, label, probe in (
        ("hallucination", "claims_exists", True),
        ("false denial", "denies", False),
    ):
        for variant, group in labelled[labelled["is_synthetic_probe"] == probe].groupby("variant"):
            count, n = int((group["score.existence"] == label).sum()), len(group)
            low, high = proportion_confint(count, n, method="wilson")
            rate = rates.pop((measure, variant))
            assert (rate["scorer"], rate["label"], rate["n"], rate["count"]) == (
                "existence",
                label,
                n,
                count,
            )
            assert (rate["low"], rate["high"]) == pytest.approx((low, high), abs=1e-12)
    assert rates == {}  # four variants, two measures, nothing else
    # its comparisons are the --by split's on the same items, BH-adjusted as families of their own
    split = {
        (c["label"], c["split"], c["variant_a"], c["variant_b"]): c
        for c in stats["comparisons"]
        if c["scorer"] == "existence"
    }
    items = {"synthetic probes": "true", "real items": "false"}
    for c in stats["hallucination_comparisons"]:
        same = split[(c["label"], items[c["split"]], c["variant_a"], c["variant_b"])]
        assert (c["pairs"], c["a_only"], c["b_only"]) == (
            same["pairs"],
            same["a_only"],
            same["b_only"],
        )
        assert c["p_value"] == same["p_value"]
    assert len(stats["hallucination_comparisons"]) == 12


def test_a_prompt_field_some_answers_lack_is_their_own_split_and_an_unknown_one_exit_2(
    tmp_path, run_cli
):
    records = [
        answer("a@t0", "p0", metadata={"source": "nvd"}),
        answer("a@t0", "p1", metadata={"source": "osv"}),
        answer("a@t0", "p2", metadata={}),
        answer("a@t0", "p3", metadata={"source": ""}),
        answer("b@t0", "p0", metadata={"source": "nvd"}),
    ]
    write_ledger(tmp_path / "ledger.jsonl", records)
    write_scores(tmp_path / "scores.jsonl", [score(r, "claims", "yes") for r in records])
    code, _, err = run_cli("stats", tmp_path, "--by", "source", "--json", tmp_path / "s.json")
    assert (code, err) == (0, "")
    splits = {
        (r["variant"], r["category"]): r["n"]
        for r in json.loads((tmp_path / "s.json").read_text())["rates"]
        if r["scorer"] == "claims"
    }
    assert splits == {
        ("a@t0", "nvd"): 1,
        ("a@t0", "osv"): 1,
        ("a@t0", "(none)"): 1,
        ("a@t0", "(empty)"): 1,
        ("a@t0", None): 4,
        ("b@t0", "nvd"): 1,
        ("b@t0", None): 1,
    }
    code, _, err = run_cli("stats", tmp_path, "--by", "sourse")
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: --by: no answer has sourse (fields: category, ")
    assert "source" in err


def test_a_prompt_field_named_like_a_record_field_splits_as_metadata_dot_its_name(
    tmp_path, run_cli
):
    records = [
        answer("a@t0", "p0", metadata={"model": "gpt"}),
        answer("a@t0", "p1", metadata={"model": "claude"}),
        answer("a@t0", "p2", metadata={"model": "gpt"}),
    ]
    write_ledger(tmp_path / "ledger.jsonl", records)
    write_scores(tmp_path / "scores.jsonl", [score(r, "claims", "yes") for r in records])

    def splits(*by: str) -> dict[str, int]:
        args = [a for name in by for a in ("--by", name)]
        code, _, err = run_cli("stats", tmp_path, *args, "--json", tmp_path / "s.json", "--force")
        assert (code, err) == (0, "")
        found = json.loads((tmp_path / "s.json").read_text())["rates"]
        return {r["category"]: r["n"] for r in found if r["scorer"] == "claims" and r["category"]}

    assert splits("metadata.model") == {"gpt": 2, "claude": 1}  # the prompt's
    assert splits("model") == {records[0]["model"]: 3}  # the record's own
    code, _, err = run_cli("stats", tmp_path, "--by", "metadata.size")
    assert code == 2 and "no answer has metadata.size" in err and "metadata.model" in err
    for own in ("seed", "prompt_id", "timestamp"):  # one split per job, prompt, answer
        code, _, err = run_cli("stats", tmp_path, "--by", own)
        assert code == 2 and f"--by: {own}: not a field to split answers by (fields: " in err
    code, _, err = run_cli("stats", tmp_path, "--by", "prompt_category")
    assert (code, err) == (2, "error: --by: prompt_category: its split is --by category\n")


def test_splits_leave_the_overall_comparisons_adjusted_p_and_any_field_name_reads(tmp_path):
    from harness.analysis.stats import compute_stats

    every = {"a@t0": 1, "b@t0": 2, "c@t0": 7}  # "yes" but every n-th
    records = [
        answer(v, f"p{i}", metadata={"$src": "abcd"[i % 4]}) for v in every for i in range(24)
    ]
    write_ledger(tmp_path / "ledger.jsonl", records)
    lines = [
        score(r, "claims", "no" if int(r["prompt_id"][1:]) % every[r["variant"]] == 0 else "yes")
        for r in records
    ]
    write_scores(tmp_path / "scores.jsonl", lines)
    paths = (tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl")
    whole = compute_stats(*paths, resamples=0)
    split = compute_stats(*paths, resamples=0, by=["$src"])

    def overall(stats):
        return [(c.variant_a, c.variant_b, c.p_adjusted) for c in stats.comparisons if not c.split]

    assert overall(split) == overall(whole) and any(p < 0.05 for *_, p in overall(whole))
    assert {c.split for c in split.comparisons} == {None, "a", "b", "c", "d"}
    assert {r.category for r in split.rates} == {None, "a", "b", "c", "d"}


def test_splits_of_numbers_come_in_the_order_of_their_values(tmp_path):
    from harness.analysis.stats import compute_stats

    values = ["10", "2", "0.5", "1", "b", "a"]
    records = [answer("a@t0", f"p{i}", metadata={"n": v}) for i, v in enumerate(values)]
    write_ledger(tmp_path / "ledger.jsonl", records)
    write_scores(tmp_path / "scores.jsonl", [score(r, "claims", "yes") for r in records])
    stats = compute_stats(
        tmp_path / "ledger.jsonl", tmp_path / "scores.jsonl", resamples=0, by=["n"]
    )
    shown = [r.category for r in stats.rates if r.scorer == "claims" and r.label == "yes"]
    assert shown == ["0.5", "1", "2", "10", "a", "b", None]
