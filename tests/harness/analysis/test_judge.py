"""The judge scorer: a model (here an OpenAI-compatible loopback server, or the simulated
provider) grades answers with a rubric through the run machinery; verdicts parsed, unparseable
ones recorded as such, and an edited rubric or prompt field redoing only what it changes."""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from pathlib import Path

import anyio
from aiohttp import web
from rich.console import Console

from harness.analysis.judge import JudgeRun, VerdictParser
from harness.analysis.scores import read_scores
from harness.analysis.scoring import prepare_scoring, score
from harness.config.models import ModelConfig
from harness.config.run_config import RunConfig, load_config
from harness.config.scorers import DEFAULT_VERDICT, UNPARSEABLE, JudgeScorer
from harness.run.judge_runs import judge_run
from tests.conftest import ledger_lines, results
from tests.harness.analysis.score_project import (
    EXISTENCE,
    answers,
    deadline,
    per_key,
    project,
    rewrite_scorers,
)
from tests.harness.providers.servers import Loopback, Seen, json_error

RUBRIC = (
    "Question: {prompt}\\nAnswer: {response}\\nSource: {source}\\n"
    "Does the answer claim the thing exists? End with VERDICT: one of {labels}."
)


SIM_JUDGE = """
[[scorers]]
name = "sim-judge"
type = "judge"
model = "sim"
labels = ["Yes", "No"]
verdict_pattern = "\\\\A(\\\\w+)"
template = "Grade: {response}"
"""


def judge_config(base_url: str, extra: str = "") -> str:
    return f"""
[[scorers]]
name = "grader"
type = "judge"
labels = ["exists", "denies"]
template = "{RUBRIC}"
{extra}
[scorers.model]
provider = "openai"
model = "judge-1"
max_tokens = 64
max_concurrency = 2
[scorers.model.options]
base_url = "{base_url}/v1"
api_key_env = ""
"""


def verdict_for(content: str) -> str:
    """The loopback judge's answer: by the answer's first words, a verdict, a bold one, or
    none."""
    answer = content.split("Answer: ", 1)[1]
    if answer.startswith("Yes"):
        return "The answer says it exists.\nVERDICT: exists"
    if answer.startswith("No"):
        return "It denies it.\nVERDICT: **Denies**"
    return "Hard to say; maybe."


def judge_api(outcome: str, seen: Seen) -> web.Response:
    """POST /v1/chat/completions as an OpenAI-compatible judge."""
    if outcome == "429":
        error = {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}
        return json_error(429, {"error": error}, {"retry-after": "0.05"})
    if outcome == "400":
        return json_error(400, {"error": {"message": "bad", "type": "invalid_request_error"}})
    content = seen.body["messages"][-1]["content"]
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": verdict_for(content)},
        "finish_reason": "stop",
    }
    usage = {"prompt_tokens": 50, "completion_tokens": 8, "total_tokens": 58}
    body = {"id": "j", "model": "judge-1", "choices": [choice], "usage": usage}
    return web.json_response(body)


def expected(text: str) -> str:
    if text.startswith("Yes"):
        return "exists"
    return "denies" if text.startswith("No") else UNPARSEABLE


def test_a_judge_on_a_loopback_server_labels_every_answer(tmp_path, run_cli):
    with Loopback(judge_api, script=["429"]) as server:
        config = project(tmp_path, run_cli, judge_config(server.base_url))
        code, stdout, _ = run_cli("score", config)
    assert code == 0, stdout
    out = tmp_path / "out"
    records = answers(out)
    assert len(server.seen) == len(records) + 1  # one request retried after its 429
    sent = server.seen[-1].body
    assert sent["model"] == "judge-1" and sent["temperature"] == 0.0
    assert "Source: test" in sent["messages"][0]["content"]
    assert "VERDICT: one of exists, denies" in sent["messages"][0]["content"]
    latest = read_scores(out / "scores.jsonl").latest
    for record in records:
        line = latest[f"{record['key']}|grader"]
        assert line["label"] == expected(record["full_response"])
        assert line["input"] is not None and line["status"] == "ok"
        if line["label"] == UNPARSEABLE:
            assert line["detail"] == "Hard to say; maybe."
    assert {line["label"] for line in latest.values()} == {"exists", "denies", UNPARSEABLE}
    judged = results(out / "judge" / "grader" / "ledger.jsonl")
    assert len(judged) == len(records) and all(r["status"] == "ok" for r in judged)
    assert {r["metadata"]["answer_key"] for r in judged} == {r["key"] for r in records}
    assert all("|" not in r["prompt_id"] for r in judged)
    assert "grader: labels per variant and category" in stdout and UNPARSEABLE in stdout


def test_a_second_score_sends_nothing_and_appends_nothing(tmp_path, run_cli):
    with Loopback(judge_api) as server:
        config = project(tmp_path, run_cli, judge_config(server.base_url))
        run_cli("score", config)
        sent = len(server.seen)
        code, stdout, _ = run_cli("score", config)
    assert code == 0 and "(0 new)" in stdout and len(server.seen) == sent


def test_an_edited_prompt_field_rejudges_only_that_prompts_answers(tmp_path, run_cli):
    with Loopback(judge_api) as server:
        config = project(tmp_path, run_cli, EXISTENCE + judge_config(server.base_url))
        run_cli("score", config)
        sent = len(server.seen)
        prompts = tmp_path / "prompts.json"
        prompts.write_text(prompts.read_text().replace('"source": "test"', '"source": "x"', 1))
        code, stdout, _ = run_cli("score", config)
        asked = server.seen[sent:]
    assert code == 0 and "(2 new)" in stdout  # p000 at two temperatures
    assert len(asked) == 2 and all("Source: x" in s.body["messages"][0]["content"] for s in asked)
    counts = per_key(tmp_path / "out")
    assert sorted(k for k, n in counts.items() if n == 2) == sorted(
        f"{r['key']}|grader" for r in answers(tmp_path / "out") if r["prompt_id"] == "p000"
    )


def test_an_edited_rubric_rejudges_that_scorer_only(tmp_path, run_cli):
    with Loopback(judge_api) as server:
        config = project(tmp_path, run_cli, EXISTENCE + judge_config(server.base_url))
        run_cli("score", config)
        sent = len(server.seen)
        rewrite_scorers(config, "Does the answer claim", "Does the reply claim")
        code, stdout, _ = run_cli("score", config)
        asked = len(server.seen) - sent
    assert code == 0 and asked == 12 and "(12 new)" in stdout
    counts = per_key(tmp_path / "out")
    assert {n for k, n in counts.items() if k.endswith("|grader")} == {2}
    assert {n for k, n in counts.items() if k.endswith("|existence")} == {1}


def test_a_new_verdict_parser_rescores_from_the_judges_ledger_without_asking_again(
    tmp_path, run_cli
):
    with Loopback(judge_api) as server:
        config = project(tmp_path, run_cli, judge_config(server.base_url))
        run_cli("score", config)
        sent = len(server.seen)
        rewrite_scorers(config, 'type = "judge"', 'type = "judge"\ncase_sensitive = true')
        code, stdout, _ = run_cli("score", config)
    assert code == 0 and len(server.seen) == sent and "(12 new)" in stdout
    out = tmp_path / "out"
    latest = read_scores(out / "scores.jsonl").latest
    for record in answers(out):
        label = latest[f"{record['key']}|grader"]["label"]
        assert label == ("exists" if record["full_response"].startswith("Yes") else UNPARSEABLE)


def test_failed_judge_requests_are_error_scores_retried_by_the_next_score(tmp_path, run_cli):
    with Loopback(judge_api, script=["400", "400"]) as server:
        config = project(tmp_path, run_cli, judge_config(server.base_url))
        code, stdout, _ = run_cli("score", config)
        assert code == 1
        latest = read_scores(tmp_path / "out" / "scores.jsonl").latest
        failed = [line for line in latest.values() if line["status"] == "error"]
        assert len(failed) == 2 and all(line["error"]["status"] == 400 for line in failed)
        assert all(line["label"] is None for line in failed)
        code, stdout, _ = run_cli("score", config)
    assert code == 0 and "(2 new)" in stdout
    latest = read_scores(tmp_path / "out" / "scores.jsonl").latest
    assert all(line["status"] == "ok" for line in latest.values())


def test_a_judge_on_the_simulated_provider_with_unparseable_verdicts(tmp_path, run_cli):
    config = project(tmp_path, run_cli, SIM_JUDGE, prompts=9)
    assert run_cli("score", config)[0] == 0
    out = tmp_path / "out"
    judged = {
        r["metadata"]["answer_key"]: r
        for r in results(out / "judge" / "sim-judge" / "ledger.jsonl")
    }
    latest = read_scores(out / "scores.jsonl").latest
    labels = Counter()
    for key, record in judged.items():
        line = latest[f"{key}|sim-judge"]
        first = record["full_response"].split()[0].strip(",.")
        if first in ("Yes", "No"):
            assert line["label"] == first
        else:
            assert line["label"] == UNPARSEABLE and line["detail"] == record["full_response"]
        labels[line["label"]] += 1
    assert len(judged) == 18 and set(labels) == {"Yes", "No", UNPARSEABLE}
    assert judged and all(r["variant"].startswith("sim@t0-") for r in judged.values())


# A simulated judge (`judge = true`) reads its labels from the rubric's `{labels}`.
SIM_RUBRIC = """
[[scorers]]
name = "sim-grader"
type = "judge"
labels = ["claims", "denies", "unsure"]
template = "Question: {prompt}\\nAnswer: {response}\\nEnd with VERDICT: <one of {labels}>."
[scorers.model]
provider = "simulated"
model = "judge-1"
max_tokens = 120
[scorers.model.options]
judge = true
"""


def test_a_simulated_judge_labels_every_answer_from_its_rubric_and_stats_reads_them(
    tmp_path, run_cli
):
    config = project(tmp_path, run_cli, SIM_RUBRIC, prompts=12)
    code, out, err = run_cli("score", config)
    assert code == 0, out + err
    output = tmp_path / "out"
    latest = read_scores(output / "scores.jsonl").latest
    labels = Counter(latest[f"{r['key']}|sim-grader"]["label"] for r in answers(output))
    assert sum(labels.values()) == 24 and set(labels) == {"claims", "denies", "unsure"}
    target = tmp_path / "stats.json"
    code, out, err = run_cli(
        "stats", output, "--scorer", "sim-grader", "--json", target, "--resamples", "0"
    )
    assert code == 0, err
    assert "sim-grader = claims: rate" in out
    rates = json.loads(target.read_text())["rates"]
    assert {r["label"] for r in rates if r["scorer"] == "sim-grader"} == set(labels)


def test_the_verdict_is_the_last_match_and_never_a_guess():
    scorer = JudgeScorer(
        name="j",
        model=None,  # type: ignore[arg-type]
        where="",
        template="",
        labels=("exists", "does_not_exist"),
        placeholders=(),
    )
    parse = VerdictParser(scorer)
    assert parse("VERDICT: exists").label == "exists"
    assert parse("VERDICT: exists\n...on reflection\nVERDICT: **does_not_exist**").label == (
        "does_not_exist"
    )
    assert parse("verdict: EXISTS").label == UNPARSEABLE  # the pattern's case is the pattern's
    assert parse("VERDICT: Exists").label == "exists"  # labels ignore case by default
    assert parse("VERDICT: maybe").label == UNPARSEABLE
    assert parse("It exists.").detail == "It exists."
    strict = VerdictParser(
        JudgeScorer("j", None, "", "", ("exists",), (), case_sensitive=True)  # type: ignore[arg-type]
    )
    assert strict("VERDICT: Exists").label == UNPARSEABLE
    assert DEFAULT_VERDICT.startswith("VERDICT:")


def test_a_verdict_pattern_that_backtracks_in_re_parses_a_long_answer_at_once():
    runaway = r"(?:\w+\s?)+!\s*(\w+)"  # backtracks in `re` on words without a "!"
    scorer = JudgeScorer("j", None, "", "", ("yes",), (), verdict_pattern=runaway)  # type: ignore[arg-type]
    parse = VerdictParser(scorer)
    thirty_words = " ".join(["word"] * 30)
    started = time.monotonic()
    with deadline(5):
        assert parse(thirty_words).label == UNPARSEABLE
        assert parse(thirty_words + "! yes").label == "yes"
    assert time.monotonic() - started < 0.1


def test_the_judge_keeps_its_ledger_beside_the_answers_and_resumes_it(tmp_path, run_cli):
    with Loopback(judge_api) as server:
        config = project(tmp_path, run_cli, judge_config(server.base_url))
        run_cli("score", config)
        (tmp_path / "out" / "scores.jsonl").unlink()  # the scores lost, the judge's ledger kept
        code, stdout, _ = run_cli("score", config)
        assert code == 0 and len(server.seen) == 12 and "(12 new)" in stdout
    judge_ledger = ledger_lines(tmp_path / "out" / "judge" / "grader" / "ledger.jsonl")
    run_lines = [line for line in judge_ledger if line.get("type") == "run"]
    assert len(run_lines) == 1 and run_lines[0]["command"] == "score"


def test_a_judges_budget_stops_it_and_a_larger_one_lets_it_finish(tmp_path, run_cli):
    judge = """
[[scorers]]
name = "priced"
type = "judge"
labels = ["Yes", "No"]
verdict_pattern = "\\\\A(\\\\w+)"
template = "Grade: {response}"
budget_usd = 0.005
[scorers.model]
provider = "simulated"
max_tokens = 64
max_concurrency = 1
[scorers.model.price]
input = 10.0
output = 10.0
"""
    config = project(tmp_path, run_cli, judge, prompts=10)
    code, stdout, _ = run_cli("score", config)
    judge_ledger = tmp_path / "out" / "judge" / "priced" / "ledger.jsonl"
    spent = sum(r["cost_usd"] for r in results(judge_ledger))
    assert code == 4 and "Stopped at the budget" in stdout and "not judged yet" in stdout
    assert 0 < len(results(judge_ledger)) < 20 and spent <= 0.005
    scored = len(per_key(tmp_path / "out"))
    assert scored == len(results(judge_ledger))
    rewrite_scorers(config, "budget_usd = 0.005", "budget_usd = 1.0")
    code, stdout, _ = run_cli("score", config)
    assert code == 0 and len(per_key(tmp_path / "out")) == 20
    assert len(results(judge_ledger)) == 20  # the judged ones were not asked again


def test_scoring_runs_a_judge_only_through_the_runner_it_is_given(tmp_path, run_cli):
    made: list[tuple[Path, str]] = []
    asked: list[int] = []

    class Counted:
        """The run path's judge run, counting what scoring asks of it."""

        def __init__(self, run: JudgeRun) -> None:
            self.run = run
            self.variant, self.model, self.ledger = run.variant, run.model, run.ledger
            self.key = run.key

        async def ask(self, prompts, **how):
            asked.append(len(prompts))
            return await self.run.ask(prompts, **how)

    def runner(config: RunConfig, model: ModelConfig, where: str) -> JudgeRun:
        made.append((config.output, where))
        return Counted(judge_run(config, model, where))

    config = load_config(project(tmp_path, run_cli, SIM_JUDGE, prompts=3))
    plan = prepare_scoring(config, runner)
    result = anyio.run(score, plan, Console(file=io.StringIO()))
    out = tmp_path / "out"
    assert made == [(out / "judge" / "sim-judge", "models[0]")] and asked == [6]
    assert result.code == 0 and result.tallies["sim-judge"].new == 6
    assert len(read_scores(out / "scores.jsonl").latest) == 6
