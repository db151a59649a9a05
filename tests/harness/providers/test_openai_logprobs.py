"""Token logprobs through the openai provider, against a fake model that answers in vLLM's layout
or OpenAI's: `top` is the true top k, sorted, at every position, and byte tokens stay apart."""

from __future__ import annotations

import pytest

from harness.api.types import Message, Request, SamplingParams
from harness.providers.openai import OpenAIOptions, OpenAIProvider
from tests.conftest import results, write_config
from tests.harness.providers.layouts import FakeModel, Layout, Position, openai_text
from tests.harness.providers.servers import Loopback, fast_retries

K = 5


def run(
    tmp_path, run_cli, layout: Layout, endpoint: str, *, k=K, token_ids=None, prompts=8, spread=1.0
):
    """Every prompt at t=0 and t=0.7 through the openai provider to a fake model answering in
    `layout`; returns the exit code, the records, the requests seen and the fake model."""
    model = FakeModel(layout, spread=spread)
    with Loopback(model) as server:
        ids = "" if token_ids is None else f"token_ids = {str(token_ids).lower()}\n"
        body = f"""{fast_retries(1)}
[[models]]
name = "fake"
provider = "openai"
temperatures = [0.0, 0.7]
max_tokens = {model.length}
[models.options]
base_url = "{server.base_url}/v1"
api_key_env = ""
endpoint = "{endpoint}"
top_logprobs = {k}
{ids}"""
        code, _, _ = run_cli("run", write_config(tmp_path, body, prompts=prompts))
    return code, results(tmp_path / "out" / "ledger.jsonl"), server.seen, model


def positions(model: FakeModel, record: dict) -> list[Position]:
    """What the fake model generated for a record's prompt and temperature."""
    text = f"Does thing number {int(record['prompt_id'][1:])} exist?"
    return model.truth[text, record["sampling_params"]["temperature"]]


def outside_top_k(records: list[dict], model: FakeModel, k: int) -> int:
    """How many positions chose a token outside the k most likely."""
    return sum(
        p.chosen not in [t for t, _ in p.ranked[:k]]
        for record in records
        for p in positions(model, record)
    )


def check_true_top_k(record: dict, model: FakeModel, k: int, *, chat: bool) -> None:
    """Every position's `top` is the k most likely tokens, sorted; the chosen token is apart."""
    entries = record["token_logprobs"]
    for entry, position in zip(entries, positions(model, record), strict=True):
        true = position.ranked[:k]
        assert [lp for _, lp in entry["top"]] == [lp for _, lp in true]
        assert entry["logprob"] == position.logprob(position.chosen)
        if entry["top_ids"] is not None:
            assert entry["top_ids"] == [t.id for t, _ in true]
            assert entry["token_id"] == position.chosen.id and entry["token"] is None
        else:
            assert [text for text, _ in entry["top"]] == [openai_text(t, chat) for t, _ in true]
            assert entry["token"] == openai_text(position.chosen, chat)


@pytest.mark.parametrize(
    ("layout", "endpoint"),
    [("vllm", "chat"), ("vllm", "completions"), ("openai", "chat"), ("openai", "completions")],
)
def test_top_is_the_true_top_k_sorted_whatever_the_layout(tmp_path, run_cli, layout, endpoint):
    chat = endpoint == "chat"
    token_ids = None if layout == "vllm" else False  # OpenAI rejects the field
    code, records, seen, model = run(tmp_path, run_cli, layout, endpoint, token_ids=token_ids)
    assert code == 0 and len(records) == 16
    assert outside_top_k(records, model, K) > 50  # the case vLLM's layout gets wrong
    for record in records:
        check_true_top_k(record, model, K, chat=chat)
        assert (record["token_logprobs"][0]["top_ids"] is not None) == (layout == "vllm")
    asked = [r.body["top_logprobs"] if chat else r.body["logprobs"] for r in seen]
    assert set(asked) == {K + 1 if chat else K}
    assert {r.body.get("return_tokens_as_token_ids") for r in seen} == {
        True if layout == "vllm" else None
    }


def test_byte_tokens_and_tokens_that_decode_alike_never_merge(tmp_path, run_cli):
    code, records, _, model = run(tmp_path, run_cli, "vllm", "completions")
    assert code == 0
    greedy = [r for r in records if r["sampling_params"]["temperature"] == 0]
    for record in greedy:  # at t=0 the chosen token is the most likely, and listed first
        assert all(e["top_ids"][0] == e["token_id"] for e in record["token_logprobs"])
    shared = 0
    for record in records:
        for entry, position in zip(record["token_logprobs"], positions(model, record), strict=True):
            assert len(set(entry["top_ids"])) == K
            texts = [t.decoded for t, _ in position.ranked[:K]]
            shared += len(set(texts)) < K
    assert shared > 20  # positions whose top k hold tokens that decode alike


def test_at_20_alternatives_no_token_outside_the_top_20_is_kept(tmp_path, run_cli):
    code, records, seen, model = run(tmp_path, run_cli, "vllm", "chat", k=20, spread=0.2)
    assert code == 0 and {r.body["top_logprobs"] for r in seen} == {20}
    lengths = set()
    for record in records:
        for entry, position in zip(record["token_logprobs"], positions(model, record), strict=True):
            lengths.add(len(entry["top_ids"]))
            assert entry["top_ids"] == [t.id for t, _ in position.ranked[: len(entry["top_ids"])]]
    assert lengths == {19, 20}


def test_without_token_ids_vllm_chat_keeps_every_alternative_sorted(tmp_path, run_cli):
    code, records, seen, model = run(tmp_path, run_cli, "vllm", "chat", token_ids=False)
    assert code == 0 and all("return_tokens_as_token_ids" not in r.body for r in seen)
    for record in records:
        for entry, position in zip(record["token_logprobs"], positions(model, record), strict=True):
            true = position.ranked[:K]
            assert entry["top"] == [[t.decoded, lp] for t, lp in true]
            assert entry["top_ids"] is None and entry["token"] == position.chosen.decoded


def test_openais_own_api_is_not_asked_for_token_ids(tmp_path, run_cli):
    request = Request("r", "m", (Message("user", "hi"),), SamplingParams(0.0, 1.0, 8, 1))
    for base_url, asked in [
        ("https://api.openai.com/v1", False),
        ("https://x.openai.azure.com/openai", False),
        ("http://127.0.0.1:8000/v1", True),
    ]:
        options = OpenAIOptions(base_url=base_url, api_key_env="", top_logprobs=5)
        body = OpenAIProvider("m", options)._body(request, chat=True)
        assert body.get("return_tokens_as_token_ids", False) is asked
    code, records, _, _ = run(tmp_path, run_cli, "openai", "chat", token_ids=True, prompts=1)
    assert code == 1 and {r["error"]["status"] for r in records} == {400}
    assert all("return_tokens_as_token_ids" in r["error"]["message"] for r in records)
