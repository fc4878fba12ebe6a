#!/usr/bin/env python3
"""An independent reference of `mbok-run perplexity` for Hugging Face LLaMA directories.

Reads config.json and the safetensors (one file or an index and its shards; F32, F16, BF16)
with numpy alone, runs HF's LlamaForCausalLM forward in float64 (RMSNorm, rotate-half RoPE
with linear or llama3 scaling, grouped-query causal attention, SwiGLU, tied or untied head)
and prints the perplexity by mbok-run's contract: consecutive non-overlapping windows of
--context tokens, a last partial window dropped, every token after the first of a window
predicted from its prefix. Token ids are the bytes of the text: the test's tokenizer is
byte-level with no merges, whose ids are the byte values.

Also writes that tokenizer (--write-tokenizer FILE): 256 byte tokens in GPT-2's byte-to-unicode
code points, ids = byte values, and two special tokens.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def write_tokenizer(path):
    m = bytes_to_unicode()
    vocab = {m[b]: b for b in range(256)}
    specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    added = [{"id": 256 + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(specials)]
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
           "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                     "vocab": vocab, "merges": []}}
    with open(path, "w") as f:
        json.dump(tok, f)


def read_safetensors(path, out):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        raw = data[base + b:base + e]
        if t["dtype"] == "F32":
            a = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif t["dtype"] == "F16":
            a = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif t["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            raise SystemExit(f"{path}: {name}: dtype {t['dtype']} not handled by the reference")
        out[name] = a.reshape(t["shape"])


def load(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    tensors = {}
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        for s in shards:
            read_safetensors(os.path.join(model_dir, s), tensors)
    else:
        read_safetensors(os.path.join(model_dir, "model.safetensors"), tensors)
    return cfg, tensors


def inverse_frequencies(cfg, head_dim):
    theta = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    rs = cfg.get("rope_scaling")
    if rs:
        kind = rs.get("rope_type", rs.get("type"))
        if kind == "linear":
            inv = inv / rs["factor"]
        elif kind == "llama3":
            factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
            old = rs["original_max_position_embeddings"]
            wavelen = 2 * math.pi / inv
            smooth = (old / wavelen - lo) / (hi - lo)
            scaled = np.where(wavelen > old / lo, inv / factor, inv)
            mid = (wavelen <= old / lo) & (wavelen >= old / hi)
            inv = np.where(mid, (1 - smooth) * inv / factor + smooth * inv, scaled)
    return inv


def forward(cfg, w, ids):
    h, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim", h // nh)
    eps = cfg.get("rms_norm_eps", 1e-6)
    t = len(ids)

    def rms(x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g

    inv = inverse_frequencies(cfg, hd)
    ang = np.outer(np.arange(t, dtype=np.float64), inv)
    cos = np.concatenate([np.cos(ang), np.cos(ang)], axis=1)
    sin = np.concatenate([np.sin(ang), np.sin(ang)], axis=1)

    def rope(x):  # x: heads x t x hd
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + np.concatenate([-x2, x1], axis=-1) * sin

    def lin(x, name):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if name + ".bias" in w else y

    x = w["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((t, t), -np.inf), 1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        a = rms(x, w[p + "input_layernorm.weight"])
        q = rope(lin(a, p + "self_attn.q_proj").reshape(t, nh, hd).transpose(1, 0, 2))
        k = rope(lin(a, p + "self_attn.k_proj").reshape(t, nkv, hd).transpose(1, 0, 2))
        v = lin(a, p + "self_attn.v_proj").reshape(t, nkv, hd).transpose(1, 0, 2)
        rep = nh // nkv
        k, v = np.repeat(k, rep, axis=0), np.repeat(v, rep, axis=0)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd) + mask
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(t, nh * hd)
        x = x + lin(ctx, p + "self_attn.o_proj")
        b = rms(x, w[p + "post_attention_layernorm.weight"])
        g = lin(b, p + "mlp.gate_proj")
        x = x + lin(g / (1 + np.exp(-g)) * lin(b, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms(x, w["model.norm.weight"])
    head = w["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else w["lm_head.weight"]
    return x @ head.T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--write-tokenizer")
    ap.add_argument("--model")
    ap.add_argument("--text")
    ap.add_argument("--context", type=int)
    a = ap.parse_args()
    if a.write_tokenizer:
        write_tokenizer(a.write_tokenizer)
        return
    cfg, w = load(a.model)
    with open(a.text, "rb") as f:
        ids = list(f.read())
    c = a.context
    windows = len(ids) // c
    total = 0.0
    for i in range(windows):
        win = ids[i * c:(i + 1) * c]
        logits = forward(cfg, w, win)
        peak = logits.max(axis=-1, keepdims=True)
        logp = logits - peak - np.log(np.exp(logits - peak).sum(axis=-1, keepdims=True))
        total -= sum(logp[j, win[j + 1]] for j in range(c - 1))
    print(f"tokens: {len(ids)}")
    print(f"perplexity: {math.exp(total / (windows * (c - 1))):.9f}")


if __name__ == "__main__":
    sys.exit(main())
