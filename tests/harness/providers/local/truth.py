"""The truth a record's logprobs are checked against: a teacher-forced forward pass of the same
weights in transformers (the prompt and the answer's token ids in, every position's logprobs over
the whole vocabulary out)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from harness.api.types import Message
from harness.providers._local import prompt_ids


class Truth:
    """The tiny model in transformers, float32 on the CPU, with its LoRA adapters (name ->
    folder) loaded through PEFT when given."""

    def __init__(self, path: Path, adapters: dict[str, Path] | None = None) -> None:
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        if adapters:
            from peft import PeftModel

            (first, folder), *rest = adapters.items()
            self.model = PeftModel.from_pretrained(self.model, folder, adapter_name=first)
            for name, folder in rest:
                self.model.load_adapter(folder, adapter_name=name)

    def logprobs(
        self, prompt: str, chat: bool, answer: list[int], adapter: str | None = None
    ) -> torch.Tensor:
        """[len(answer), vocabulary] logprobs of every answer position, given the ones before."""
        ids = prompt_ids(self.tokenizer, (Message("user", prompt),), chat)
        with torch.inference_mode(), self._through(adapter):
            logits = self.model(torch.tensor([ids + answer])).logits[0]
        return torch.log_softmax(logits[len(ids) - 1 : -1].float(), dim=-1)

    def greedy(self, prompt: str, max_tokens: int, adapter: str | None = None) -> list[int]:
        """The token ids `generate` answers the chat prompt with, greedily."""
        ids = prompt_ids(self.tokenizer, (Message("user", prompt),), True)
        with torch.inference_mode(), self._through(adapter):
            out = self.model.generate(
                input_ids=torch.tensor([ids]), max_new_tokens=max_tokens, do_sample=False
            )
        return out[0, len(ids) :].tolist()

    @contextmanager
    def _through(self, adapter: str | None) -> Iterator[None]:
        """`adapter` active, or every adapter off (the model itself) when None."""
        if adapter is None and hasattr(self.model, "disable_adapter"):
            with self.model.disable_adapter():
                yield
        else:
            if adapter is not None:
                self.model.set_adapter(adapter)
            yield


def top_k_error(entries: list[dict], truth: torch.Tensor, k: int) -> float:
    """Check that every entry's `top` lists k distinct ids sorted by logprob, and return the
    largest difference between a recorded logprob (chosen or top) and the truth's, counting the
    k-th largest true values against the recorded ones: a small figure says `top` is the true
    top k, whatever ties reorder."""
    worst = 0.0
    for entry, row in zip(entries, truth, strict=True):
        recorded = [lp for _, lp in entry["top"]]
        assert len(set(entry["top_ids"])) == len(recorded) == k
        assert recorded == sorted(recorded, reverse=True)
        best = row.topk(k).values.tolist()
        own = [row[i].item() for i in entry["top_ids"]]
        chosen = row[entry["token_id"]].item()
        gaps = [abs(a - b) for a, b in zip(recorded * 2, best + own, strict=True)]
        worst = max(worst, *gaps, abs(entry["logprob"] - chosen))
    return worst
