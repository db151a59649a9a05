"""What the local-model providers (vllm, transformers) share, beside their options' base
(`harness.providers.options.LocalOptions`): the weights pinned to the commit that answers, the
folder to load, what they need of the GPU, the prompt as token ids, and whether a LoRA adapter
fits."""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from harness.api.provider import DeviceNeeds
from harness.api.types import Adapter, Message
from harness.config.adapters import unchanged
from harness.errors import FatalError
from harness.providers._hub import Weights, locate, memory_needed, snapshot
from harness.providers.options import LocalOptions

log = logging.getLogger("harness.adapters")
Options = TypeVar("Options", bound=LocalOptions)


def pinned(model: str, options: Options) -> Options:
    """The options with `revision` set to the commit that will answer (a hub id's branch, tag or
    commit resolved through the cache or the hub; empty for a folder). InputError when the
    weights cannot be had."""
    weights = locate(options.path or model, options.revision)
    return dataclasses.replace(options, revision=weights.commit or "")


def device_needs(
    model: str, options: LocalOptions, max_model_len: int | None = None, share: float = 1.0
) -> DeviceNeeds:
    """The weights as found and the GPU memory they need at `dtype` and `max_model_len`, of the
    `share` of the GPU the engine takes."""
    weights = locate(options.path or model, options.revision)
    return needs_of(weights, options, max_model_len, share)


def needs_of(
    weights: Weights, options: LocalOptions, max_model_len: int | None = None, share: float = 1.0
) -> DeviceNeeds:
    """`device_needs` of weights already found."""
    needed = memory_needed(weights, options.dtype, max_model_len)
    bfloat16 = options.dtype == "bfloat16"
    return DeviceNeeds(
        weights.describe(),
        needed,
        share,
        capability=(8, 0) if bfloat16 else (0, 0),
        capability_for='dtype = "bfloat16" (float16 runs on older GPUs)' if bfloat16 else "",
    )


def weights_folder(path: str, revision: str) -> tuple[Path, str]:
    """The folder to load (downloaded first when the cache lacks it) and the name records give
    the model: `hub/id@commit`, or the folder as configured."""
    weights = locate(path, revision)
    label = f"{weights.source}@{weights.commit}" if weights.commit else weights.source
    return snapshot(weights), label


def prompt_ids(tokenizer: Any, messages: tuple[Message, ...], chat: bool) -> list[int]:
    """Chat models: the tokenizer's chat template with the generation prompt. Base models
    (`chat = false`): the turns' text alone, with the tokenizer's usual special tokens."""
    if chat:
        turns = [{"role": m.role, "content": m.content} for m in messages]
        text = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
        return list(tokenizer.encode(text, add_special_tokens=False))
    return list(tokenizer.encode("\n\n".join(m.content for m in messages)))


def adapter_fit(model: str, options: LocalOptions, adapter: Adapter) -> list[str]:
    """Whether `adapter` fits the model's weights: PEFT loads it onto the model built empty from
    its config (no memory for the weights), so a tensor of another shape, or one for a module the
    model lacks or has more of, is named before the run starts (vLLM would load such an adapter
    without a word and answer with nonsense). Checked when the weights are on disk and
    transformers knows the architecture; else the engine finds out. An adapter that names another
    base model in its config is only warned about: the same weights go by many names (a hub id,
    a copy in a folder, a cache snapshot)."""
    if importlib.util.find_spec("peft") is None:
        return ["adapters need PEFT (to be checked, and served by transformers): pip install peft"]
    weights = locate(options.path or model, options.revision)
    if not _same_model(adapter.base_model, model, weights):
        log.warning(
            "adapter %s (%s) was made for %s, not %s; serving it as configured",
            adapter.name,
            adapter.path,
            adapter.base_model,
            weights.source,
        )
    if weights.folder is None:
        return []
    empty = _empty_model(weights.folder, options.trust_remote_code)
    if empty is None:
        return []
    return _fit_problems(empty, adapter)


def verify_adapters(adapters: Sequence[Adapter]) -> None:
    """FatalError when an adapter's files changed after the run was planned: its variant id
    would name other weights than those that answer."""
    changed = [a.name for a in adapters if not unchanged(a)]
    if changed:
        raise FatalError(
            f"adapter(s) {', '.join(changed)} changed on disk after the run was planned; "
            "run again to answer with the new weights as new variants"
        )


def _same_model(base: str | None, model: str, weights: Weights) -> bool:
    """Whether an adapter's declared base model is this model by a name it goes by: its id, its
    path as configured, its hub id, or the same folder."""
    if base is None:
        return True
    names = {model, weights.source}
    if base in names:
        return True
    folder = Path(base).expanduser()
    return (
        weights.folder is not None
        and folder.is_dir()
        and folder.resolve() == weights.folder.resolve()
    )


def _empty_model(folder: Path, trust_remote_code: bool) -> Any:
    """The model built from its config on the meta device (None when transformers cannot)."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
        with init_empty_weights():
            return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except Exception:  # an architecture transformers does not know: the engine checks
        return None


def _fit_problems(empty: Any, adapter: Adapter) -> list[str]:
    from peft import LoraConfig, PeftModel
    from peft.utils import load_peft_weights, set_peft_model_state_dict

    try:
        config = LoraConfig.from_pretrained(adapter.folder)
        model = PeftModel(empty, config, low_cpu_mem_usage=True)
        tensors = load_peft_weights(str(adapter.folder), device="cpu")
        loaded = set_peft_model_state_dict(model, tensors, low_cpu_mem_usage=True)
    except Exception as exc:  # PEFT's own refusal: a shape mismatch, target modules not found
        reason = " ".join(str(exc).split())
        return [f"does not fit the model (made for another base model?): {reason[:400]}"]
    extra = loaded.unexpected_keys
    missing = [key for key in loaded.missing_keys if "lora_" in key]
    if extra:
        return [f"does not fit the model: {len(extra)} tensor(s) for modules it lacks ({extra[0]})"]
    if missing:
        return [
            f"does not fit the model: no weights for {len(missing)} of its modules ({missing[0]})"
        ]
    return []
