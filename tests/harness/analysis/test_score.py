"""`harness score` with rule scorers: one score per answer and scorer, current ones skipped,
edited scorers redone alone, bad input refused before anything is written."""

from __future__ import annotations

import time

import orjson

from harness.analysis.scores import answer_digest, read_scores
from harness.ledger.lines import sealed
from tests.conftest import SIMPLE_MODEL, write_config
from tests.harness.analysis.score_project import (
    EXISTENCE,
    REFUSAL,
    answers,
    deadline,
    per_key,
    project,
    rewrite_scorers,
    score_lines,
    write_answers,
)


def expected_label(text: str) -> str:
    if "it exists" in text:
        return "claims"
    return "denies" if "cannot find" in text else "other"


def test_every_answer_gets_one_score_from_every_scorer(tmp_path, run_cli):
    config = project(tmp_path, run_cli, EXISTENCE + REFUSAL)
    out = tmp_path / "out"
    code, stdout, _ = run_cli("score", config)
    assert code == 0
    records = answers(out)
    lines = score_lines(out)
    assert len(records) == 12 and len(lines) == 24
    assert set(per_key(out).values()) == {1}
    by_key = {line["key"]: line for line in lines}
    for record in records:
        existence = by_key[f"{record['key']}|existence"]
        assert existence["label"] == expected_label(record["full_response"])
        assert existence["answer"] == answer_digest(record) and existence["input"] is None
        assert by_key[f"{record['key']}|refusal"]["label"] == "no_refusal"
    assert "existence: labels per variant and category" in stdout
    assert f"Scores: {out / 'scores.jsonl'} (24 new)" in stdout
    assert "annotate export" in stdout


def test_a_second_score_appends_nothing(tmp_path, run_cli):
    config = project(tmp_path, run_cli, EXISTENCE)
    run_cli("score", config)
    before = (tmp_path / "out" / "scores.jsonl").read_bytes()
    code, stdout, _ = run_cli("score", config)
    assert code == 0 and "(0 new)" in stdout
    assert (tmp_path / "out" / "scores.jsonl").read_bytes() == before


def test_the_table_counts_current_scores_as_well_as_new_ones(tmp_path, run_cli):
    config = project(tmp_path, run_cli, EXISTENCE)
    _, first, _ = run_cli("score", config)
    _, second, _ = run_cli("score", config)
    table = lambda text: text[: text.index("Scores:")]  # noqa: E731
    assert table(first) == table(second)


def test_an_edited_scorer_is_redone_and_the_others_are_left_alone(tmp_path, run_cli):
    config = project(tmp_path, run_cli, EXISTENCE + REFUSAL)
    out = tmp_path / "out"
    run_cli("score", config)
    rewrite_scorers(config, 'default = "other"', 'default = "unclear"')
    code, stdout, _ = run_cli("score", config)
    assert code == 0 and "(12 new)" in stdout
    counts = per_key(out)
    assert {n for k, n in counts.items() if k.endswith("|existence")} == {2}
    assert {n for k, n in counts.items() if k.endswith("|refusal")} == {1}
    latest = read_scores(out / "scores.jsonl").latest
    assert "unclear" in {line["label"] for line in latest.values()}
    assert "other" not in {line["label"] for line in latest.values()}


def test_scorers_picks_some_scorers(tmp_path, run_cli):
    config = project(tmp_path, run_cli, EXISTENCE + REFUSAL)
    code, stdout, _ = run_cli("score", config, "--scorers", "refusal")
    assert code == 0 and "refusal: labels" in stdout and "existence: labels" not in stdout
    assert {line["scorer"] for line in score_lines(tmp_path / "out")} == {"refusal"}


def test_an_answer_rerun_under_its_key_is_scored_again_alone(tmp_path, run_cli):
    config = project(tmp_path, run_cli, EXISTENCE)
    out = tmp_path / "out"
    run_cli("score", config)
    record = answers(out)[0]
    changed = {k: v for k, v in record.items() if k != "crc"} | {"full_response": "Yes, it exists."}
    with (out / "ledger.jsonl").open("ab") as ledger:
        ledger.write(sealed(changed))
    code, stdout, _ = run_cli("score", config)
    assert code == 0 and "(1 new)" in stdout
    assert per_key(out)[f"{record['key']}|existence"] == 2
    latest = read_scores(out / "scores.jsonl").latest[f"{record['key']}|existence"]
    assert latest["label"] == "claims" and latest["answer"] == answer_digest(changed)


def test_failed_answers_are_not_scored(tmp_path, run_cli):
    body = SIMPLE_MODEL + '[models.options]\nscript = ["400"]\n' + EXISTENCE
    config = write_config(tmp_path, body, prompts=3)
    assert run_cli("run", config)[0] == 1
    code, stdout, _ = run_cli("score", config)
    assert code == 0 and "(0 new)" in stdout and score_lines(tmp_path / "out") == []


def test_damaged_score_lines_are_skipped_counted_and_redone(tmp_path, run_cli):
    config = project(tmp_path, run_cli, EXISTENCE)
    out = tmp_path / "out"
    run_cli("score", config)
    path = out / "scores.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    damaged = lines[0].replace(b'"status":"ok"', b'"status":"OK"')
    path.write_bytes(damaged + b"".join(lines[1:]))
    code, stdout, _ = run_cli("score", config)
    assert code == 0 and "skipped 1 unreadable line(s)" in stdout and "(1 new)" in stdout
    key = orjson.loads(lines[0])["key"]
    assert read_scores(path).latest[key]["label"] == orjson.loads(lines[0])["label"]


RUNAWAY_RULES = """
[[scorers]]
name = "shout"
type = "rules"
[[scorers.rules]]
label = "shouts"
regex = ['(\\w+\\s?)+!']
[[scorers]]
name = "refusal"
type = "refusal"
extra_patterns = ['(\\w+\\s?)+!']
"""


def test_a_pattern_that_backtracks_in_re_scores_30_word_answers_at_once(tmp_path, run_cli):
    config = write_config(tmp_path, SIMPLE_MODEL + RUNAWAY_RULES)
    thirty_words = " ".join(f"word{n}" for n in range(30))
    write_answers(tmp_path / "out" / "ledger.jsonl", 2, (thirty_words, thirty_words + "!"))
    started = time.monotonic()
    with deadline(10):
        code, _, err = run_cli("score", config)
    assert code == 0, err
    assert time.monotonic() - started < 1.0
    labels = sorted(line["label"] for line in score_lines(tmp_path / "out"))
    assert labels == ["no_match", "no_refusal", "refusal", "shouts"]
