"""`python -m benchmarks.local_direct MODE MODEL PROMPTS MAX_TOKENS [DTYPE]`: generate without
the harness and print {"seconds": ...} for generation alone, top-5 logprobs included, on the GPU
when there is one. MODE: `vllm` (every prompt submitted at once), `hf-batch-N` (transformers,
batches of N, each step's log-softmax and top 5 taken on the device), `hf-sequential` (one
prompt at a time, the legacy way). DTYPE: float32 unless given.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


def chat_ids(tokenizer, index: int) -> list[int]:
    turns = [{"role": "user", "content": f"Does package number {index} exist on PyPI?"}]
    text = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
    return tokenizer.encode(text, add_special_tokens=False)


def vllm_seconds(model: str, prompts: int, max_tokens: int, dtype: str) -> float:
    from vllm import SamplingParams
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.sampling_params import RequestOutputKind
    from vllm.v1.engine.async_llm import AsyncLLM

    async def main() -> float:
        args = AsyncEngineArgs(
            model=model, dtype=dtype, max_model_len=256, enforce_eager=True, max_logprobs=5
        )
        engine = AsyncLLM.from_engine_args(args)
        tokenizer = engine.get_tokenizer()
        params = SamplingParams(
            temperature=0.0,
            max_tokens=max_tokens,
            seed=0,
            logprobs=5,
            output_kind=RequestOutputKind.FINAL_ONLY,
        )

        async def one(index: int) -> None:
            ids = chat_ids(tokenizer, index)
            async for _ in engine.generate({"prompt_token_ids": ids}, params, f"r{index}"):
                pass

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(prompts)))
        seconds = time.perf_counter() - started
        engine.shutdown()
        return seconds

    return asyncio.run(main())


def hf_seconds(model: str, prompts: int, max_tokens: int, batch: int, dtype: str) -> float:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.padding_side = "left"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    lm = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype)).to(device).eval()
    started = time.perf_counter()
    for start in range(0, prompts, batch):
        rows = [chat_ids(tokenizer, i) for i in range(start, min(prompts, start + batch))]
        width = max(map(len, rows))
        ids = torch.tensor([[tokenizer.eos_token_id] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        with torch.inference_mode():
            out = lm.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=tokenizer.eos_token_id,
                output_logits=True,
                return_dict_in_generate=True,
            )
            chosen = out.sequences[:, width:]
            for step, logits in enumerate(out.logits):
                logprobs = torch.log_softmax(logits.float(), dim=-1)
                logprobs.topk(5, dim=-1)
                logprobs.gather(1, chosen[:, step : step + 1])
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


if __name__ == "__main__":
    mode, model, count, tokens = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    dtype = sys.argv[5] if len(sys.argv) > 5 else "float32"
    if mode == "vllm":
        seconds = vllm_seconds(model, count, tokens, dtype)
    elif mode.startswith("hf-batch-"):
        seconds = hf_seconds(model, count, tokens, int(mode.removeprefix("hf-batch-")), dtype)
    else:
        seconds = hf_seconds(model, count, tokens, 1, dtype)
    print(json.dumps({"seconds": seconds}))
