#!/usr/bin/env python3
"""Writes a tiny random-weight qwen3_moe model with the real Qwen3-Coder vocabulary (151,936
rows) in MLX's folder layout, plus the tokenizer and chat template files, for the server
tests. Random weights give random tokens: tests force what they need (logit_bias, tool_choice).

usage: make_tiny_model.py OUT_DIR [--shared DIR] [--layers N] [--hidden N] [--ctx N]
Idempotent: does nothing when OUT_DIR/.stamp matches the arguments.
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

VOCAB = 151936


def bf16_bytes(a):
    """float32 array -> bfloat16 bytes (round to nearest even)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16).tobytes()


def write_safetensors(path, tensors):
    header, blobs, off = {"__metadata__": {"format": "mlx"}}, [], 0
    for name, arr in tensors:
        data = bf16_bytes(arr)
        header[name] = {"dtype": "BF16", "shape": list(arr.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    here = os.path.dirname(os.path.abspath(__file__))
    # The committed copy of ../shared/data/qwen3-coder (byte-identical), so the server tests do
    # not depend on where the checkout sits.
    ap.add_argument("--shared", default=os.path.join(here, "..", "tokenizer", "fixtures", "qwen3-coder"))
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=8192)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--tied", action="store_true", help="tie lm_head to the embeddings (smaller file)")
    args = ap.parse_args()

    stamp = json.dumps(vars(args), sort_keys=True)
    stamp_path = os.path.join(args.out, ".stamp")
    if os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        return 0
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if not os.path.exists(os.path.join(args.shared, f)):
            sys.exit(f"make_tiny_model: {args.shared}/{f} not found (pass --shared)")
    os.makedirs(args.out, exist_ok=True)
    H, L, E = args.hidden, args.layers, args.experts
    heads, kv_heads, head_dim, moe_w = 2, 1, 32, 32
    rng = np.random.default_rng(args.seed)
    t = [("model.embed_tokens.weight", rng.standard_normal((VOCAB, H), dtype=np.float32))]
    for i in range(L):
        p = f"model.layers.{i}."
        s = 1.0 / np.sqrt(H)
        t += [
            (p + "input_layernorm.weight", np.ones(H, np.float32)),
            (p + "post_attention_layernorm.weight", np.ones(H, np.float32)),
            (p + "self_attn.q_proj.weight", rng.standard_normal((heads * head_dim, H), dtype=np.float32) * s),
            (p + "self_attn.k_proj.weight", rng.standard_normal((kv_heads * head_dim, H), dtype=np.float32) * s),
            (p + "self_attn.v_proj.weight", rng.standard_normal((kv_heads * head_dim, H), dtype=np.float32) * s),
            (p + "self_attn.o_proj.weight", rng.standard_normal((H, heads * head_dim), dtype=np.float32) * s),
            (p + "self_attn.q_norm.weight", np.ones(head_dim, np.float32)),
            (p + "self_attn.k_norm.weight", np.ones(head_dim, np.float32)),
            (p + "mlp.gate.weight", rng.standard_normal((E, H), dtype=np.float32) * 3 * s),
            (p + "mlp.switch_mlp.gate_proj.weight", rng.standard_normal((E, moe_w, H), dtype=np.float32) * s),
            (p + "mlp.switch_mlp.up_proj.weight", rng.standard_normal((E, moe_w, H), dtype=np.float32) * s),
            (p + "mlp.switch_mlp.down_proj.weight", rng.standard_normal((E, H, moe_w), dtype=np.float32) / np.sqrt(moe_w)),
        ]
    t.append(("model.norm.weight", np.ones(H, np.float32)))
    if not args.tied:  # an untied head makes greedy output depend on the whole context
        t.append(("lm_head.weight", rng.standard_normal((VOCAB, H), dtype=np.float32)))
    write_safetensors(os.path.join(args.out, "model.safetensors"), t)
    config = {
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "vocab_size": VOCAB,
        "hidden_size": H, "num_hidden_layers": L, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
        "head_dim": head_dim, "intermediate_size": 4 * H, "moe_intermediate_size": moe_w, "num_experts": E,
        "num_experts_per_tok": 2, "decoder_sparse_step": 1, "mlp_only_layers": [], "norm_topk_prob": True,
        "rms_norm_eps": 1e-6, "rope_theta": 10000000.0, "max_position_embeddings": args.ctx,
        "tie_word_embeddings": bool(args.tied), "bos_token_id": 151643, "eos_token_id": 151645, "torch_dtype": "bfloat16",
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": [151645, 151643], "temperature": 0.7, "top_p": 0.8, "top_k": 20,
                   "repetition_penalty": 1.05}, f, indent=2)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copyfile(os.path.join(args.shared, f), os.path.join(args.out, f))
    with open(stamp_path, "w") as f:
        f.write(stamp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
