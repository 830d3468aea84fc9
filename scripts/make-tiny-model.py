#!/usr/bin/env python3
"""Writes a tiny llama-architecture GGUF model with random weights.

No model can be downloaded here, yet the tests need a real llama.cpp server
generating real tokens. This model is 2 layers of width 64 with a small
SentencePiece-style vocabulary; weights are random from a fixed seed, so its
output is gibberish but deterministic under greedy sampling.

Control tokens (<unk>, <s>, </s>) and the 256 byte tokens get logits far below
the others, so generated text is always valid UTF-8 made of the vocabulary's
characters and words, and generation ends on max_tokens or a stop string.
That is done with a constant feature: dimension 0 of every token embedding is
large and no layer writes to it, so after the final norm it is always
positive, and the output rows of the unwanted tokens weigh it very negatively.

Usage: scripts/make-tiny-model.py OUTPUT.gguf [CHAT_TEMPLATE.jinja]
(needs PyPI's gguf and numpy). With a template file, the model carries that
chat template instead of its own (the tests render real models' templates).
"""

import sys

import gguf
import numpy as np

SEED = 20261122
EMBED = 64
LAYERS = 2
HEADS = 4
FEED_FORWARD = 128
CONTEXT = 2048

WORDS = [
    "the", "hearth", "hello", "home", "family", "warm", "fire", "light", "tea", "bread",
    "garden", "window", "river", "stone", "quiet", "evening", "morning", "story", "music", "friend",
    "kitchen", "table", "chair", "book", "lamp", "door", "path", "hill", "cloud", "rain",
    "and", "of", "a", "is", "in", "to", "with", "for", "on", "at",
]
CHARACTERS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?;:'-()") + ["\u2581"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def vocabulary():
    tokens, scores, types = [], [], []

    def add(text, score, kind):
        tokens.append(text)
        scores.append(score)
        types.append(kind)

    add("<unk>", 0.0, gguf.TokenType.UNKNOWN)
    add("<s>", 0.0, gguf.TokenType.CONTROL)
    add("</s>", 0.0, gguf.TokenType.CONTROL)
    for byte in range(256):
        add(f"<0x{byte:02X}>", 0.0, gguf.TokenType.BYTE)
    for character in CHARACTERS:
        add(character, -1.0, gguf.TokenType.NORMAL)
    for word in WORDS:
        add("\u2581" + word, -0.5, gguf.TokenType.NORMAL)
    return tokens, scores, types


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    template = CHAT_TEMPLATE
    context = CONTEXT
    if len(sys.argv) == 3:
        # Real templates come with real tool definitions, which this
        # vocabulary spells nearly letter by letter: room for them.
        context = 8 * CONTEXT
        with open(sys.argv[2], encoding="utf-8") as file:
            template = file.read()
    rng = np.random.default_rng(SEED)
    tokens, scores, types = vocabulary()
    vocab = len(tokens)
    unwanted = [index for index, kind in enumerate(types) if kind != gguf.TokenType.NORMAL]

    def random(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    writer = gguf.GGUFWriter(sys.argv[1], "llama")
    writer.add_name("hearth-tiny-random")
    writer.add_context_length(context)
    writer.add_embedding_length(EMBED)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(EMBED // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(template)

    embeddings = random(vocab, EMBED, scale=1.0)
    embeddings[:, 0] = 10.0  # the constant feature
    writer.add_tensor("token_embd.weight", embeddings)
    for layer in range(LAYERS):
        prefix = f"blk.{layer}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(EMBED, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v"):
            writer.add_tensor(f"{prefix}.{name}.weight", random(EMBED, EMBED))
        attention_out = random(EMBED, EMBED)
        attention_out[0, :] = 0.0  # nothing writes to the constant feature
        writer.add_tensor(f"{prefix}.attn_output.weight", attention_out)
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(EMBED, dtype=np.float32))
        writer.add_tensor(f"{prefix}.ffn_gate.weight", random(FEED_FORWARD, EMBED))
        writer.add_tensor(f"{prefix}.ffn_up.weight", random(FEED_FORWARD, EMBED))
        down = random(EMBED, FEED_FORWARD)
        down[0, :] = 0.0
        writer.add_tensor(f"{prefix}.ffn_down.weight", down)
    writer.add_tensor("output_norm.weight", np.ones(EMBED, dtype=np.float32))
    output = random(vocab, EMBED, scale=1.0)
    output[:, 0] = 0.0
    output[unwanted, 0] = -1000.0
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
