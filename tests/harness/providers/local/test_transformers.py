"""The transformers backend on the same tiny Llama: batched, top-5 logprobs, resumable."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import Counter

import anyio
import pytest

from harness.run.jobs import job_seed
from tests.conftest import crash, harness_process, results, write_config
from tests.harness.providers.local.conftest import local_model
from tests.harness.run.test_crash import count_records, wait_for_records

pytest.importorskip("transformers")
pytest.importorskip("torch")

from harness.api.types import Message, Request, SamplingParams, TokenLogprob
from harness.errors import FatalError
from harness.providers import transformers as transformers_provider
from harness.providers.transformers import TransformersOptions, TransformersProvider
from tests.harness.providers.local.truth import Truth, top_k_error


def hf_model(name: str, path, *, chat: bool = True, temperatures="[0.0, 0.7]") -> str:
    body = local_model(name, path, chat=chat, temperatures=temperatures)
    body = body.replace('provider = "vllm"', 'provider = "transformers"')
    for line in ("max_model_len = 256\n", "enforce_eager = true\n"):
        body = body.replace(line, "")
    return body


def test_records_carry_top5_logprobs_exact_counts_and_reproduce(tmp_path, run_cli, tiny_llama):
    body = hf_model("hf", tiny_llama) + hf_model(
        "hf-raw", tiny_llama, chat=False, temperatures="[0.0]"
    )
    config = write_config(tmp_path, body, prompts=6)
    assert run_cli("run", config)[0] == 0
    first = {r["key"]: r for r in results(tmp_path / "out" / "ledger.jsonl")}
    assert len(first) == 18

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    truth, alike = Truth(tiny_llama), 0
    for record in first.values():
        entries = record["token_logprobs"]
        assert len(entries) == record["tokens"]["output"] <= 12
        assert all(len(entry["top"]) == 5 for entry in entries)
        text = f"Does thing number {record['prompt_id'][1:].lstrip('0') or '0'} exist?"
        if record["variant"].startswith("hf-raw@"):
            assert record["tokens"]["input"] == len(tokenizer.encode(text))
        else:
            chat = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
            )
            assert record["tokens"]["input"] == len(
                tokenizer.encode(chat, add_special_tokens=False)
            )
        greedy = record["sampling_params"]["temperature"] == 0
        if greedy:  # the chosen token is the most likely one
            assert all(entry["top_ids"][0] == entry["token_id"] for entry in entries)
        answer = [entry["token_id"] for entry in entries]
        rows = truth.logprobs(text, not record["variant"].startswith("hf-raw@"), answer)
        assert top_k_error(entries, rows, 5) < 1e-4
        alike += sum(len({t for t, _ in entry["top"]}) < 5 for entry in entries)
    assert alike > 0  # byte tokens that decode alike, kept apart by their ids

    assert run_cli("run", config, "--fresh")[0] == 0
    again = {r["key"]: r for r in results(tmp_path / "out" / "ledger.jsonl")}
    assert {k: r["full_response"] for k, r in again.items()} == {
        k: r["full_response"] for k, r in first.items()
    }


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_gives_one_success_per_key(tmp_path, tiny_llama):
    body = hf_model("hf", tiny_llama).replace("max_tokens = 12", "max_tokens = 64")
    body = body.replace("max_concurrency = 64", "max_concurrency = 4")
    config = write_config(tmp_path, body, prompts=60)
    ledger = tmp_path / "out" / "ledger.jsonl"
    process = harness_process("run", str(config))
    wait_for_records(ledger, 8, process, deadline=120)
    killed = process.poll() is None
    crash(process)
    assert killed and 0 < count_records(ledger) < 120
    process = harness_process("run", str(config))
    assert process.wait(timeout=300) == 0
    ok = Counter(r["key"] for r in results(ledger) if r["status"] == "ok")
    assert len(ok) == 120 and set(ok.values()) == {1}


def tiny_provider(path, **options) -> TransformersProvider:
    options = {"path": str(path), "dtype": "float32", "top_logprobs": 0, **options}
    return TransformersProvider("tiny", TransformersOptions(**options))


def request(prompt: int, seed: int, *, max_tokens: int = 12) -> Request:
    text = f"Does thing number {prompt} exist?"
    sampling = SamplingParams(0.7, 1.0, max_tokens, seed)
    return Request(f"{prompt}-{seed}", "tiny", (Message("user", text),), sampling)


def watch_batches(provider: TransformersProvider, hold: threading.Event | None = None) -> list[int]:
    """The rows of every batch the model starts, in order; the first waits for `hold` if given."""
    rows: list[int] = []

    def on_forward(module, args, kwargs):
        ids = kwargs["input_ids"]
        if ids.shape[1] > 1:  # the prompt's pass, once per batch
            rows.append(ids.shape[0])
            if hold is not None and len(rows) == 1:
                hold.wait(30)

    provider._model.register_forward_pre_hook(on_forward, with_kwargs=True)
    return rows


async def together(provider: TransformersProvider, requests: list[Request]) -> list[str]:
    texts = [""] * len(requests)

    async def one(index: int) -> None:
        texts[index] = (await provider.generate(requests[index])).text

    async with anyio.create_task_group() as group:
        for index in range(len(requests)):
            group.start_soon(one, index)
    return texts


def test_a_sampled_request_gives_the_same_text_whatever_its_batch(tiny_llama):
    async def scenario() -> tuple[list[str], list[int]]:
        provider = tiny_provider(tiny_llama)
        await provider.start()
        rows = watch_batches(provider)
        alone = (await provider.generate(request(0, 7))).text
        in_4 = await together(provider, [request(0, 7)] + [request(i, 50 + i) for i in (1, 2, 3)])
        in_16 = await together(
            provider, [request(i, 80 + i) for i in range(1, 16)] + [request(0, 7)]
        )
        others = [(await provider.generate(request(0, seed))).text for seed in (8, 9)]
        await provider.aclose()
        return [alone, in_4[0], in_16[-1], *others], rows

    texts, rows = anyio.run(scenario)
    assert rows == [1, 4, 16, 1, 1]
    assert texts[0] == texts[1] == texts[2] and texts[0]
    assert len({texts[0], texts[3], texts[4]}) == 3  # other seeds, other texts


def test_records_name_the_seed_each_sample_was_drawn_with(tmp_path, run_cli, tiny_llama):
    body = "samples = 3\n" + hf_model("hf", tiny_llama, temperatures="[0.7]")
    assert run_cli("run", write_config(tmp_path, body, prompts=4))[0] == 0
    records = results(tmp_path / "out" / "ledger.jsonl")

    seeds = {(r["prompt_id"], r["sample"]): r["sampling_params"]["seed"] for r in records}

    async def alone() -> dict[int, str]:
        provider = tiny_provider(tiny_llama)
        texts = {}
        for (prompt_id, _), seed in seeds.items():
            texts[seed] = (await provider.generate(request(int(prompt_id[1:]), seed))).text
        await provider.aclose()
        return texts

    texts = anyio.run(alone)
    assert len(records) == 12 and len(set(texts.values())) > 1
    for record in records:
        seed = record["sampling_params"]["seed"]
        assert seed == job_seed(7, record["prompt_id"], record["sample"])
        assert record["full_response"] == texts[seed]


def test_a_request_cancelled_while_queued_never_runs(tiny_llama):
    async def scenario() -> tuple[str, list[int]]:
        provider = tiny_provider(tiny_llama)
        await provider.start()
        hold = threading.Event()
        rows = watch_batches(provider, hold)
        async with anyio.create_task_group() as group:
            group.start_soon(provider.generate, request(1, 1))  # its batch waits for `hold`
            while not rows:
                await anyio.sleep(0.01)
            with anyio.move_on_after(0.2):
                await provider.generate(request(2, 2))  # queued behind it, then cancelled
            hold.set()
            answer = await provider.generate(request(3, 3))
        await provider.aclose()
        return answer.text, rows

    text, rows = anyio.run(scenario)
    assert rows == [1, 1] and text  # the cancelled request never joined a batch


def test_cancelling_the_request_that_runs_a_batch_still_answers_the_rest(tiny_llama):
    async def scenario() -> tuple[list[str], list[int]]:
        provider = tiny_provider(tiny_llama)
        await provider.start()
        hold = threading.Event()
        rows = watch_batches(provider, hold)
        runner, answers = anyio.CancelScope(), []

        async def first() -> None:
            with runner:
                await provider.generate(request(1, 1))

        async def second() -> None:
            answers.append((await provider.generate(request(2, 2))).text)

        async with anyio.create_task_group() as group:
            group.start_soon(first)
            group.start_soon(second)
            while not rows:  # both are in the batch the first one runs, held
                await anyio.sleep(0.01)
            runner.cancel()
            await anyio.sleep(0.1)
            hold.set()
        await provider.aclose()
        return answers, rows

    answers, rows = anyio.run(scenario)
    assert rows == [2] and answers[0]


def test_nucleus_keeps_the_smallest_set_reaching_top_p():
    import torch

    from harness.providers.transformers import _nucleus

    probs = torch.tensor([[0.15, 0.5, 0.05, 0.3]])
    assert _nucleus(probs, 0.8)[0].tolist() == pytest.approx([0.0, 0.5, 0.0, 0.3])
    assert _nucleus(probs, 0.0)[0].tolist() == [0.0, 0.5, 0.0, 0.0]


def test_logprobs_rounded_at_once_are_those_pythons_round_gives_each():
    import numpy as np
    import torch

    from harness.providers.transformers import _rounded

    found = np.random.default_rng(0)
    bits = found.integers(0, 0x7F800000, 500_000, dtype=np.uint32)  # every finite float32
    values = np.concatenate([bits.view(np.float32), -bits.view(np.float32)])
    halves = np.arange(-2_000_000, 2_000_000, dtype=np.float64) / 1e6 + 5e-7  # x.xxxxxx5
    values = np.concatenate([values, halves.astype(np.float32), [0.0, -0.0, -1e-7]])
    values = values.astype(np.float32)
    rounded = _rounded(torch.from_numpy(values)).tolist()
    expected = [round(v, 6) for v in values.astype(np.float64).tolist()]
    assert rounded == expected
    assert [math.copysign(1, v) for v in rounded[-3:]] == [1, -1, -1]  # -0.0 kept


def test_requests_arriving_over_a_few_milliseconds_share_a_batch_until_it_is_full(tiny_llama):
    async def scenario() -> list[int]:
        provider = tiny_provider(tiny_llama, batch_size=16)
        await provider.start()
        rows = watch_batches(provider)

        async def one(index: int) -> None:
            await anyio.sleep(index // 6 * 0.001)  # four waves, a millisecond apart
            await provider.generate(request(index, index))

        async with anyio.create_task_group() as group:
            for index in range(24):
                group.start_soon(one, index)
        await provider.aclose()
        return rows

    assert anyio.run(scenario) == [16, 8]


def test_a_batch_is_answered_while_the_next_one_generates(tiny_llama):
    async def scenario() -> tuple[list[int], list[int]]:
        provider = tiny_provider(tiny_llama, batch_size=2, top_logprobs=5)
        await provider.start()
        rows = watch_batches(provider)
        seen: list[int] = []
        answer = provider._completions

        def slow_answer(batch, generated):  # the first batch's answers wait for the second batch
            if not seen:
                for _ in range(1000):
                    if len(rows) >= 2:
                        break
                    threading.Event().wait(0.01)
            seen.append(len(rows))
            return answer(batch, generated)

        provider._completions = slow_answer
        await together(provider, [request(i, i) for i in range(4)])
        await provider.aclose()
        return rows, seen

    rows, seen = anyio.run(scenario)
    assert rows == [2, 2] and seen[0] == 2  # the second batch began before the first was answered


def test_each_token_is_decoded_once_per_tokenizer(tiny_llama):
    async def scenario() -> tuple[list[int], list[str]]:
        provider = tiny_provider(tiny_llama, top_logprobs=5)
        await provider.start()
        asked: list[int] = []
        decode = provider._tokenizer.batch_decode

        def counted(rows, *args, **kwargs):
            asked.extend(row[0] for row in rows)
            return decode(rows, *args, **kwargs)

        provider._tokenizer.batch_decode = counted
        texts = [(await provider.generate(request(1, 1))).token_logprobs for _ in range(2)]
        await provider.aclose()
        return asked, [entry.token for entry in texts[1]]

    asked, tokens = anyio.run(scenario)
    assert asked and len(asked) == len(set(asked))  # the second answer decoded nothing again
    assert all(isinstance(token, str) for token in tokens)


def test_the_default_batch_fits_the_free_memory_at_the_requests_max_tokens():
    from harness.providers._hub import MemoryShape
    from harness.providers.transformers import CPU_BATCH, LARGEST_BATCH, batch_fitting

    shape = MemoryShape(layers=22, kv_width=256, vocab=32_000, context=2048, number_bytes=2)
    per_token = 2 * 22 * 256 * 2  # key and value, every layer, bf16
    gib = 1 << 30
    short = batch_fitting(shape, 2 * gib, 512, 64, logprobs=False)
    assert short == int(2 * gib * 0.8) // (per_token * (512 + 64)) < LARGEST_BATCH
    assert batch_fitting(shape, 2 * gib, 512, 1024, logprobs=False) < short
    with_logprobs = batch_fitting(shape, 2 * gib, 512, 64, logprobs=True)
    assert with_logprobs == int(2 * gib * 0.8) // (per_token * (512 + 64) + 64 * 32_000 * 4)
    assert batch_fitting(shape, 1000 * gib, 512, 64, logprobs=True) == LARGEST_BATCH
    assert batch_fitting(shape, 1 << 20, 512, 64, logprobs=True) == 1
    assert batch_fitting(None, 10 * gib, 512, 64, logprobs=True) == CPU_BATCH


def test_a_batch_holds_as_many_as_fit_with_its_longest_prompt():
    from harness.providers._hub import MemoryShape
    from harness.providers.transformers import _Pending, batch_fitting

    provider = tiny_provider("unused")
    provider._free = 1 << 30
    provider._shape = MemoryShape(layers=8, kv_width=1024, vocab=1000, context=4096, number_bytes=2)
    short, long = [1] * 10, [1] * 3000
    provider._queue.extend(_Pending(request(i, i), short) for i in range(300))
    fits_short = batch_fitting(provider._shape, 1 << 30, 10, 12, False)
    taken = provider._fitting(provider._of(_group_of(provider)), 12)
    assert len(taken) == min(fits_short, 300)
    provider._queue.appendleft(_Pending(request(999, 999), long))  # the oldest, and long
    taken = provider._fitting(provider._of(_group_of(provider)), 12)
    assert len(taken) == batch_fitting(provider._shape, 1 << 30, 3000, 12, False) < fits_short


def _group_of(provider):
    from harness.providers.transformers import _group

    return _group(provider._queue[0].request)


def test_a_batch_that_runs_out_of_memory_is_run_again_in_halves(tiny_llama):
    import torch

    async def scenario() -> tuple[list[int], list[str]]:
        provider = tiny_provider(tiny_llama, batch_size=8)
        await provider.start()
        tried: list[int] = []
        generate = provider._generate_batch

        def small_only(batch, sampling):
            tried.append(len(batch))
            if len(batch) > 2:
                raise torch.OutOfMemoryError("CUDA out of memory (as a GPU would say)")
            return generate(batch, sampling)

        provider._generate_batch = small_only
        texts = await together(provider, [request(i, i) for i in range(8)])
        await provider.aclose()
        return tried, texts

    tried, texts = anyio.run(scenario)
    assert tried == [8, 4, 2, 2, 2, 2] and all(texts)


def test_no_position_asked_for_gives_empty_logprobs(tiny_llama):
    async def scenario():
        provider = tiny_provider(tiny_llama, top_logprobs=5, max_logprob_tokens=0)
        answer = await provider.generate(request(1, 1))
        await provider.aclose()
        return answer

    answer = anyio.run(scenario)
    assert answer.text and answer.token_logprobs == ()


def test_every_torch_call_runs_in_the_models_own_thread(tiny_llama):
    threads: set[int] = set()

    async def scenario() -> None:
        provider = tiny_provider(tiny_llama, batch_size=2, top_logprobs=5)
        load = provider._load

        def noted_load():
            threads.add(threading.get_ident())
            return load()

        provider._load = noted_load
        await provider.start()
        provider._model.register_forward_pre_hook(
            lambda module, args: threads.add(threading.get_ident())
        )
        await together(provider, [request(i, i) for i in range(6)])  # three batches
        await provider.aclose()

    free = transformers_provider._free_memory

    def noted_free():
        threads.add(threading.get_ident())
        free()

    transformers_provider._free_memory = noted_free
    try:
        anyio.run(scenario)
    finally:
        transformers_provider._free_memory = free
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_positions_made_without_their_own_checks_are_those_the_checks_pass(tiny_llama):
    finite: list[bool] = []

    async def scenario():
        provider = tiny_provider(tiny_llama, top_logprobs=5)
        generate = provider._generate_batch

        def noted(batch, sampling):
            generated = generate(batch, sampling)
            finite.append(generated.finite)
            return generated

        provider._generate_batch = noted
        answer = await provider.generate(request(1, 1))
        await provider.aclose()
        return answer

    positions = anyio.run(scenario).token_logprobs
    assert positions and finite == [True]  # made without the checks
    for p in positions:  # the checking constructor takes each as it is, and equals it
        assert TokenLogprob(p.token, p.logprob, p.top, p.token_id, p.top_ids) == p


def test_a_batch_whose_logits_are_not_finite_fails_its_requests_as_malformed(tiny_llama):
    import torch

    async def scenario():
        provider = tiny_provider(tiny_llama, top_logprobs=5)
        await provider.start()
        provider._model.lm_head.register_forward_hook(
            lambda module, args, out: torch.full_like(out, math.nan)
        )
        greedy = request(1, 1)
        greedy = dataclasses.replace(
            greedy, sampling=dataclasses.replace(greedy.sampling, temperature=0.0)
        )
        with pytest.raises(FatalError) as failed:
            await provider.generate(greedy)
        await provider.aclose()
        return str(failed.value)

    message = anyio.run(scenario)
    assert "MalformedResponse" in message and "token_logprobs: logprob" in message
