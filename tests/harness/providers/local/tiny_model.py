"""A tiny Llama made on the spot: a byte-level BPE tokenizer trained on a few sentences, a chat
template, and a randomly initialised 2-layer model. No hub, no download; about a second on a CPU.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}</s>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL = ["<s>", "</s>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>"]
CORPUS = [
    "Does CVE-2021-44228 exist? Yes, it is Log4Shell in Apache Log4j 2.",
    "Is requests a real package on PyPI? Yes, it is an HTTP library for Python.",
    "Is fastapi-jwt-shieldx on PyPI? I cannot find any package with that name.",
    "What does the nmap flag -sV do? It probes open ports for service versions.",
    "CWE-79 is cross-site scripting; CWE-89 is SQL injection.",
] * 20


def build_tiny_llama(folder: Path, *, seed: int = 0) -> Path:
    """Write tokenizer, config and weights of a tiny random Llama to `folder`; returns it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).to(torch.float32).save_pretrained(folder)
    return folder


def build_tiny_adapter(
    model: Path,
    folder: Path,
    *,
    seed: int,
    rank: int = 8,
    targets: tuple[str, ...] = ("q_proj", "v_proj", "o_proj", "down_proj"),
    use_dora: bool = False,
    hidden_size: int | None = None,
) -> Path:
    """Save a LoRA adapter of the tiny Llama in `model` to `folder`, made with PEFT, its weights
    drawn from `seed` and large enough that its answers differ from the model's. `hidden_size`
    makes it for a Llama of another width instead (an adapter that does not fit)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaForCausalLM

    if hidden_size is None:
        base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    else:
        config = AutoConfig.from_pretrained(model)
        config.hidden_size, config.intermediate_size = hidden_size, 2 * hidden_size
        base = LlamaForCausalLM(config)
    lora = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=list(targets),
        init_lora_weights=False,
        use_dora=use_dora,
    )
    adapted = get_peft_model(base, lora)
    draws = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, weights in adapted.named_parameters():
            if "lora_" in name:
                weights.copy_(torch.randn(weights.shape, generator=draws) * 0.5)
    adapted.save_pretrained(folder)
    return folder
