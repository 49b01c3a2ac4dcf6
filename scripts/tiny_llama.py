"""Build a tiny random-weight Llama with a locally trained byte-level tokenizer: a model a real vLLM can serve.

Run by the vLLM venv's Python (it needs ``torch``, ``transformers`` and ``tokenizers``, which the project's venv
does not have): ``python scripts/tiny_llama.py OUT_DIR``. No download: the weights are random (seeded) and the
tokenizer is trained here on a generated corpus. Sizes are the smallest vLLM's CPU backend serves: hidden size
128 and 4 heads make the head size 32, the minimum its CPU attention supports.
"""

from __future__ import annotations

import sys
from pathlib import Path

HIDDEN_SIZE = 128
LAYERS = 2
HEADS = 4
VOCAB_SIZE = 512  # a byte-level BPE over 256 byte symbols plus merges and the special tokens
MAX_POSITIONS = 1024
SEED = 1234
SPECIAL = ("<s>", "</s>", "<pad>")
WORDS = (
    "the model serves tokens to every request while the scheduler keeps the cache warm and the queue short "
    "monitoring counts prompts generations latency errors and the engine answers health checks quickly"
)
CHAT_TEMPLATE = (
    "{% for message in messages %}<s>{{ message['role'] }}\n{{ message['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def corpus() -> list[str]:
    """A deterministic English-ish corpus, enough for a few hundred BPE merges."""
    words = WORDS.split()
    return [" ".join(words[(i * 7 + j) % len(words)] for j in range(24)) for i in range(400)]


def build(out: Path) -> None:
    """Write ``config.json``, ``model.safetensors`` and the tokenizer files into ``out``."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(corpus(), vocab_size=VOCAB_SIZE, min_frequency=2, special_tokens=list(SPECIAL))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=trainer._tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = MAX_POSITIONS
    tokenizer.save_pretrained(out)
    config = LlamaConfig(
        vocab_size=len(tokenizer),  # the model's vocabulary is exactly the tokenizer's
        hidden_size=HIDDEN_SIZE,
        intermediate_size=HIDDEN_SIZE * 2,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    torch.manual_seed(SEED)
    LlamaForCausalLM(config).to(torch.float32).save_pretrained(out, safe_serialization=True)


if __name__ == "__main__":
    build(Path(sys.argv[1]))
