#!/usr/bin/env python3
"""Writes the benchmark model's twin for llama.cpp: a GGUF (qwen3moe) of the same shapes with
random Q4_0 weights (4.5 bits per weight, what `llama-quantize --pure Q4_0` makes; the router
stays F32 as llama-quantize always keeps ffn_gate_inp). Random 4-bit codes with a bf16-ish
scale per block of 32, like bench/make_bench_model.py. Needs the `gguf` Python package (PyPI,
or llama.cpp's gguf-py on PYTHONPATH) and numpy. Write it outside the repo.
"""
import argparse
import sys

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("make_bench_gguf.py: needs the gguf package (pip install gguf, or PYTHONPATH=llama.cpp/gguf-py)")


def q4_0(rng, rows, cols, sigma):
    """Random Q4_0 blocks for a [rows, cols] matrix: per 32 values an f16 scale + 16 code bytes."""
    nb = rows * cols // 32
    blocks = np.empty((nb, 18), dtype=np.uint8)
    d = (sigma * 2.4 / 8.0 * (0.8 + 0.4 * rng.random(nb))).astype(np.float16)
    blocks[:, :2] = d.view(np.uint8).reshape(nb, 2)
    blocks[:, 2:] = rng.integers(0, 256, size=(nb, 16), dtype=np.uint8)
    return blocks.reshape(rows, cols // 32 * 18)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--shape480", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.shape480:
        H, nh, nkv, E, I, k = 6144, 96, 8, 160, 2560, 8
    else:
        H, nh, nkv, E, I, k = 2048, 32, 4, 128, 768, 8
    hd, V = 128, 151936
    rng = np.random.default_rng(a.seed)
    w = gguf.GGUFWriter(a.out, "qwen3moe")
    w.add_name("qcoder-bench")
    w.add_block_count(a.layers)
    w.add_context_length(262144)
    w.add_embedding_length(H)
    w.add_feed_forward_length(6144)
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_rope_freq_base(1e7)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_expert_count(E)
    w.add_expert_used_count(k)
    w.add_expert_feed_forward_length(I)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    # A dummy SentencePiece-style vocabulary of V tokens (llama-bench feeds random ids).
    w.add_tokenizer_model("llama")
    w.add_token_list([f"<t{i}>".encode() for i in range(V)])
    w.add_token_scores([0.0] * V)
    w.add_token_types([gguf.TokenType.NORMAL] * V)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    Q = gguf.GGMLQuantizationType.Q4_0
    F32 = gguf.GGMLQuantizationType.F32

    def add_q(name, shape, sigma):
        *lead, rows, cols = shape
        n = int(np.prod(lead)) if lead else 1
        data = q4_0(rng, n * rows, cols, sigma).reshape(*lead, rows, cols // 32 * 18)
        w.add_tensor(name, data, raw_shape=data.shape, raw_dtype=Q)

    ones = lambda n: np.ones(n, dtype=np.float32)
    s_in = 1.0 / np.sqrt(H)
    add_q("token_embd.weight", (V, H), 1.0)
    for l in range(a.layers):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", ones(H), raw_dtype=F32)
        w.add_tensor(p + "ffn_norm.weight", ones(H), raw_dtype=F32)
        w.add_tensor(p + "attn_q_norm.weight", ones(hd), raw_dtype=F32)
        w.add_tensor(p + "attn_k_norm.weight", ones(hd), raw_dtype=F32)
        add_q(p + "attn_q.weight", (nh * hd, H), s_in)
        add_q(p + "attn_k.weight", (nkv * hd, H), s_in)
        add_q(p + "attn_v.weight", (nkv * hd, H), s_in)
        add_q(p + "attn_output.weight", (H, nh * hd), 1.0 / np.sqrt(nh * hd))
        w.add_tensor(p + "ffn_gate_inp.weight", (rng.standard_normal((E, H)) * 2.5 * s_in).astype(np.float32), raw_dtype=F32)
        add_q(p + "ffn_gate_exps.weight", (E, I, H), s_in)
        add_q(p + "ffn_up_exps.weight", (E, I, H), s_in)
        add_q(p + "ffn_down_exps.weight", (E, H, I), 1.0 / np.sqrt(I))
    w.add_tensor("output_norm.weight", ones(H), raw_dtype=F32)
    add_q("output.weight", (V, H), s_in)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=False)
    w.close()
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
