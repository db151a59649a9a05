"""The simulated provider: reproducible answers, failures at the configured rates, logprobs."""

from __future__ import annotations

import math
from collections import Counter

import anyio
import pytest

from harness.analysis.judge import VerdictParser
from harness.api.types import Message, Request, SamplingParams
from harness.config.scorers import JudgeScorer
from harness.errors import FatalError, MalformedResponse, ProviderError, RateLimited, ServerError
from harness.providers import provider_class
from harness.providers.simulated import SimulatedOptions, SimulatedProvider
from tests.conftest import results, write_config


def request(
    text: str = "Is CVE-2021-44228 real?",
    *,
    temperature=0.0,
    seed=1,
    attempt=1,
    max_tokens=1024,
    id="k",
) -> Request:
    sampling = SamplingParams(temperature=temperature, top_p=1.0, max_tokens=max_tokens, seed=seed)
    return Request(id, "sim-1", (Message("user", text),), sampling, attempt)


def answer(provider: SimulatedProvider, req: Request):
    return anyio.run(provider.generate, req)


def test_registered_by_name():
    assert provider_class("simulated") is SimulatedProvider


def test_greedy_answers_ignore_the_seed_and_sampled_ones_follow_it():
    provider = SimulatedProvider("sim-1", SimulatedOptions())
    assert answer(provider, request(seed=1)).text == answer(provider, request(seed=2)).text
    hot = [answer(provider, request(temperature=0.7, seed=s)).text for s in (1, 1, 2)]
    assert hot[0] == hot[1] != hot[2]


def test_max_tokens_cuts_the_answer_with_finish_reason_length():
    provider = SimulatedProvider("sim-1", SimulatedOptions(output_tokens=100))
    completion = answer(provider, request(max_tokens=5))
    assert completion.usage.output == 5 and completion.finish_reason == "length"
    assert len(completion.text.split()) >= 5


def test_top_logprobs_give_k_alternatives_per_token_best_first():
    provider = SimulatedProvider("sim-1", SimulatedOptions(top_logprobs=5, output_tokens=12))
    completion = answer(provider, request())
    assert len(completion.token_logprobs) == completion.usage.output
    for entry in completion.token_logprobs:
        assert len(entry.top) == 5 and entry.top[0] == (entry.token, entry.logprob)
        assert [lp for _, lp in entry.top] == sorted((lp for _, lp in entry.top), reverse=True)
        assert sum(math.exp(lp) for _, lp in entry.top) < 1  # a share of one distribution


def test_failures_come_at_the_configured_rates_and_differ_per_attempt():
    options = SimulatedOptions(rate_limit_rate=0.2, server_error_rate=0.1, fatal_rate=0.05)
    provider = SimulatedProvider("sim-1", options)
    outcomes = Counter()
    for i in range(4000):
        try:
            answer(provider, request(id=f"k{i}", attempt=1 + i % 3))
            outcomes["ok"] += 1
        except ProviderError as error:
            outcomes[(type(error), error.status)] += 1
    assert outcomes[(RateLimited, 429)] == pytest.approx(800, rel=0.15)
    assert outcomes[(ServerError, 500)] + outcomes[(ServerError, 503)] == pytest.approx(
        400, rel=0.2
    )
    assert outcomes[(ServerError, 503)] > 100 and outcomes[(ServerError, 500)] > 100
    assert outcomes[(FatalError, 400)] == pytest.approx(200, rel=0.25)


def test_a_rate_limit_carries_its_retry_after():
    provider = SimulatedProvider("sim-1", SimulatedOptions(script=("429",), retry_after=2.5))
    with pytest.raises(RateLimited) as caught:
        answer(provider, request())
    assert caught.value.retry_after == 2.5 and caught.value.status == 429
    assert answer(provider, request(attempt=2)).text


def test_a_scripted_malformed_answer_is_refused_by_the_completion_itself():
    provider = SimulatedProvider("sim-1", SimulatedOptions(script=("malformed",)))
    with pytest.raises(MalformedResponse, match="text: expected a string, got list") as caught:
        answer(provider, request())
    assert caught.value.retryable
    assert answer(provider, request(attempt=2)).text


def test_a_malformed_answer_is_retried_then_recorded_as_malformed_never_ok(tmp_path, run_cli):
    body = """
[retry]
max_attempts = 2
initial_wait = 0.0
max_wait = 0.0
[[models]]
name = "sim"
provider = "simulated"
temperatures = [0.0]
[models.options]
script = ["malformed", "malformed"]
"""
    code, out, _ = run_cli("run", write_config(tmp_path, body, prompts=2))
    records = results(tmp_path / "out" / "ledger.jsonl")
    assert code == 1 and len(records) == 2 and {r["status"] for r in records} == {"error"}
    assert {r["error"]["type"] for r in records} == {"MalformedResponse"}
    assert all(r["retry_count"] == 1 for r in records) and "--error-type MalformedResponse" in out
    config = tmp_path / "run.toml"
    config.write_text(config.read_text().replace('"malformed", "malformed"', '"malformed"'))
    assert run_cli("rerun", config, "--error-type", "MalformedResponse")[0] == 0
    latest = {r["key"]: r for r in results(tmp_path / "out" / "ledger.jsonl")}
    assert {(r["status"], r["retry_count"]) for r in latest.values()} == {("ok", 1)}


FLAKY = """
[retry]
max_attempts = 1
[[models]]
name = "flaky"
provider = "simulated"
temperatures = [0.0]
[models.options]
fatal_rate = 0.5
"""


def failed_keys(ledger) -> set[str]:
    return {key for key, r in latest(ledger).items() if r["status"] == "error"}


def latest(ledger) -> dict[str, dict]:
    return {r["key"]: r for r in results(ledger)}


def test_a_rerun_draws_its_failures_afresh_so_jobs_failed_for_good_come_in(tmp_path, run_cli):
    config = write_config(tmp_path, FLAKY, prompts=20)
    ledger = tmp_path / "out" / "ledger.jsonl"
    assert run_cli("run", config)[0] == 1
    first = failed_keys(ledger)
    assert 5 <= len(first) <= 15
    run_cli("rerun", config)
    second = failed_keys(ledger)
    assert second < first and second  # some came in, each drawn again
    run_cli("rerun", config)
    assert failed_keys(ledger) < second


def test_a_run_and_its_reruns_draw_the_same_from_the_same_seed_and_ledger(tmp_path, run_cli):
    config = write_config(tmp_path, FLAKY, prompts=20)
    outcomes = []
    for output in (tmp_path / "one", tmp_path / "two"):
        assert run_cli("run", config, "--output", output)[0] == 1
        run_cli("rerun", config, "--output", output)
        outcomes.append({k: r["status"] for k, r in latest(output / "ledger.jsonl").items()})
    assert outcomes[0] == outcomes[1]


JUDGED = (
    "Question: Does CVE-2021-44228 exist?\nAnswer: {answer}\n"
    "Does the answer claim it exists? End with VERDICT: <one of claims, denies, unsure>."
)


def test_a_simulated_judge_ends_with_a_verdict_of_the_labels_its_prompt_lists_last():
    provider = SimulatedProvider("judge-1", SimulatedOptions(judge=True))
    parser = VerdictParser(_scorer(("claims", "denies", "unsure")))
    verdicts = Counter()
    for i in range(30):
        text = JUDGED.format(answer=f"Yes, it exists: thing {i}, in release {i}.")
        completion = answer(provider, request(text))
        assert completion.text == answer(provider, request(text)).text
        assert completion.text.split()[-2] == "VERDICT:" and completion.finish_reason == "stop"
        verdicts[parser(completion.text).label] += 1
    assert set(verdicts) == {"claims", "denies", "unsure"}


def test_a_simulated_judge_gives_no_verdict_where_none_is_listed_or_max_tokens_cuts_it():
    provider = SimulatedProvider("judge-1", SimulatedOptions(judge=True, output_tokens=10))
    unlisted = answer(provider, request("Grade this answer: yes"))
    assert "VERDICT" not in unlisted.text and unlisted.finish_reason == "stop"
    cut = answer(provider, request(JUDGED.format(answer="No."), max_tokens=5))
    assert "VERDICT" not in cut.text and cut.finish_reason == "length"
    assert cut.usage.output == 5


def test_a_model_that_is_no_judge_answers_a_judges_prompt_as_any_other():
    provider = SimulatedProvider("judge-1", SimulatedOptions())
    assert "VERDICT" not in answer(provider, request(JUDGED.format(answer="No."))).text


def _scorer(labels: tuple[str, ...]) -> JudgeScorer:
    return JudgeScorer(
        name="j",
        model=None,
        where="",
        template="",
        labels=labels,
        placeholders=(),  # type: ignore[arg-type]
    )
