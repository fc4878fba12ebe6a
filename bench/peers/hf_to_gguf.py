#!/usr/bin/python3
"""Writes a Hugging Face LLaMA checkpoint directory (config.json, model.safetensors or its index
and shards; F32, F16 or BF16) as an F16 GGUF file of the llama.cpp family, so that
llama.cpp-family engines run the same weights as mbok-run. Uses the engine's own `gguf` Python
package (pass its folder with --gguf-py) and numpy; nothing else.

The conversion follows the engines' LLaMA convention: tensor names token_embd / blk.N.* /
output_norm / output, and the rows of the query and key projections permuted from Hugging
Face's rotate-half order to the engines' interleaved rotary order. The vocabulary is a
placeholder of SentencePiece form (<unk>, <s>, </s>, the 256 byte tokens, then numbered
pieces), enough for benchmarks on token ids; a checkpoint's own tokenizer is not carried over.

Usage: hf_to_gguf.py --gguf-py DIR MODEL_DIR OUT.gguf
"""

import argparse
import json
import os
import struct
import sys

import numpy as np


def read_safetensors_header(path):
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(size)), 8 + size


def tensor_index(model_dir):
    """name -> (file, dtype, shape, begin, end) for every tensor of the checkpoint."""
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for name in files:
        path = os.path.join(model_dir, name)
        header, data_start = read_safetensors_header(path)
        for key, info in header.items():
            if key == "__metadata__":
                continue
            begin, end = info["data_offsets"]
            out[key] = (path, info["dtype"], info["shape"], data_start + begin, data_start + end)
    return out


def load_f16(entry):
    """One tensor as float16 (BF16 widened through float32)."""
    path, dtype, shape, begin, end = entry
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=begin, shape=(end - begin,))
    if dtype == "F16":
        return np.array(raw.view(np.float16)).reshape(shape)
    if dtype == "F32":
        return raw.view(np.float32).astype(np.float16).reshape(shape)
    if dtype == "BF16":
        wide = raw.view(np.uint16).astype(np.uint32) << 16
        return wide.view(np.float32).astype(np.float16).reshape(shape)
    raise SystemExit(f"hf_to_gguf: tensor dtype {dtype} is not supported")


def permute_rotary(w, heads):
    """Rows of a query/key projection from rotate-half to interleaved rotary order."""
    rows = w.shape[0]
    return (w.reshape(heads, 2, rows // heads // 2, *w.shape[1:])
             .swapaxes(1, 2).reshape(w.shape))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf-py", required=True, help="the engine's gguf-py folder")
    ap.add_argument("model_dir")
    ap.add_argument("out")
    args = ap.parse_args()
    sys.path.insert(0, args.gguf_py)
    import gguf  # noqa: E402  (the engine's own writer)

    with open(os.path.join(args.model_dir, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("model_type") not in ("llama", "mistral"):
        raise SystemExit(f"hf_to_gguf: model_type {cfg.get('model_type')!r} is not LLaMA-family")
    heads, kv_heads = cfg["num_attention_heads"], cfg.get("num_key_value_heads",
                                                         cfg["num_attention_heads"])
    hidden, layers, vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    head_dim = cfg.get("head_dim", hidden // heads)
    tensors = tensor_index(args.model_dir)

    names = {"model.embed_tokens.weight": "token_embd.weight",
             "model.norm.weight": "output_norm.weight"}
    if not cfg.get("tie_word_embeddings", False):
        names["lm_head.weight"] = "output.weight"
    block = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
             "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(layers):
        for hf, gg in block.items():
            names[f"model.layers.{i}.{hf}.weight"] = f"blk.{i}.{gg}.weight"
    missing = [n for n in names if n not in tensors]
    if missing:
        raise SystemExit(f"hf_to_gguf: missing tensors, e.g. {missing[0]}")

    w = gguf.GGUFWriter(args.out + ".tmp", "llama")
    w.add_name("random-llama")
    w.add_context_length(cfg.get("max_position_embeddings", 4096))
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-5)))
    w.add_vocab_size(vocab)
    w.add_file_type(1)  # mostly F16
    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    pieces += [f"\u2581t{i}" for i in range(vocab - len(pieces))]
    types = [2, 3, 3] + [6] * 256 + [1] * (vocab - 259)
    w.add_tokenizer_model("llama")
    w.add_token_list(pieces)
    w.add_token_scores([-float(i) for i in range(vocab)])
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    # Norms stay F32 as the engines' converters write them; matrices go F16.
    def converted(hf):
        t = load_f16(tensors[hf])
        if ".q_proj." in hf:
            t = permute_rotary(t, heads)
        elif ".k_proj." in hf:
            t = permute_rotary(t, kv_heads)
        return t.astype(np.float32) if t.ndim == 1 else t

    for hf, gg in names.items():
        _, _, shape, begin, end = tensors[hf]
        dtype = np.float32 if len(shape) == 1 else np.float16
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        w.add_tensor_info(gg, shape, np.dtype(dtype), nbytes)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for n, hf in enumerate(names):
        w.write_tensor_data(converted(hf))
        print(f"\r{n + 1}/{len(names)} tensors", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    w.close()
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
