#!/usr/bin/env python3
"""Writes a random-weight Qwen3-MoE benchmark model in MLX format (affine, default 4-bit g64).

Default: 12 layers of Qwen3-Coder-30B-A3B shape (hidden 2048, 32/4 heads of 128, 128 experts
of 768, top-8, vocab 151,936), about 4.6 GB. `--shape480 --layers 1` gives one layer with the
real 480B dimensions (hidden 6144, 96/8 heads, 160 experts of 2560).

numpy only, so it runs anywhere; the layout is exactly what mlx_lm.convert writes (checked by
`--verify`, which loads the folder with mlx-lm's own loader and runs one forward). Weights are
random 4-bit codes with per-group bf16 scale/bias: each group spans about +-2.4 sigma, as
quantizing a Gaussian does. Router rows get a larger sigma so router logits spread by ~2.5 and
tokens route across all experts, as in a trained model (not onto a handful).

Never commit the output: write it under /tmp or build/.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


def bf16_bytes(a):
    """float32 array -> bf16 (round to nearest even) as uint16."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


class ShardWriter:
    def __init__(self, out, max_bytes):
        self.out, self.max_bytes = out, max_bytes
        self.shards, self.cur, self.cur_bytes = [], [], 0

    def add(self, name, dtype, shape, data):
        nbytes = data.nbytes
        if self.cur and self.cur_bytes + nbytes > self.max_bytes:
            self.flush()
        self.cur.append((name, dtype, list(shape), data))
        self.cur_bytes += nbytes

    def flush(self):
        if not self.cur:
            return
        self.shards.append(self.cur)
        idx = len(self.shards)
        path = os.path.join(self.out, f"model-{idx:05d}.tmp")
        header, off = {}, 0
        for name, dtype, shape, data in self.cur:
            header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + data.nbytes]}
            off += data.nbytes
        header["__metadata__"] = {"format": "mlx"}
        hb = json.dumps(header, separators=(",", ":")).encode()
        hb += b" " * ((8 - len(hb) % 8) % 8)
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(hb)))
            f.write(hb)
            for _, _, _, data in self.cur:
                f.write(memoryview(np.ascontiguousarray(data)).cast("B"))
        self.shard_names = getattr(self, "shard_names", []) + [[n for n, *_ in self.cur]]
        self.cur, self.cur_bytes = [], 0

    def finish(self):
        self.flush()
        total = len(self.shards)
        weight_map, size = {}, 0
        for i, names in enumerate(self.shard_names, 1):
            final = f"model-{i:05d}-of-{total:05d}.safetensors"
            os.replace(os.path.join(self.out, f"model-{i:05d}.tmp"), os.path.join(self.out, final))
            for n in names:
                weight_map[n] = final
        for shard in self.shards:
            size += sum(d.nbytes for *_, d in shard)
        with open(os.path.join(self.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": size}, "weight_map": dict(sorted(weight_map.items()))}, f, indent=2)
        return size


def quantized(w, rng, name, shape, sigma, bits, group):
    """Adds name.{weight,scales,biases} for a random [..., out, in] matrix."""
    *lead, out_f, in_f = shape
    words = in_f * bits // 32
    codes = rng.integers(0, 2**32, size=(*lead, out_f, words), dtype=np.uint32)
    groups = in_f // group
    levels = 2**bits - 1
    # Each group covers ~[-2.4 sigma, 2.4 sigma] with a little jitter per group.
    span = (4.8 * sigma) * (0.8 + 0.4 * rng.random((*lead, out_f, groups), dtype=np.float32))
    scale = span / levels
    bias = -0.5 * span
    w.add(name + ".weight", "U32", codes.shape, codes)
    w.add(name + ".scales", "BF16", scale.shape, bf16_bytes(scale))
    w.add(name + ".biases", "BF16", bias.shape, bf16_bytes(bias))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--shape480", action="store_true", help="real Qwen3-Coder-480B-A35B dimensions")
    ap.add_argument("--experts", type=int, default=None)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--verify", action="store_true", help="load with mlx-lm and run a forward")
    a = ap.parse_args()
    if a.shape480:
        H, nh, nkv, E, I, k = 6144, 96, 8, 160, 2560, 8
    else:
        H, nh, nkv, E, I, k = 2048, 32, 4, 128, 768, 8
    E = a.experts or E
    hd, V = 128, 151936
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    cfg = {
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
        "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
        "decoder_sparse_step": 1, "head_dim": hd, "hidden_act": "silu", "hidden_size": H,
        "intermediate_size": 6144 if not a.shape480 else 8192, "max_position_embeddings": 262144,
        "max_window_layers": a.layers, "mlp_only_layers": [], "moe_intermediate_size": I,
        "norm_topk_prob": True, "num_attention_heads": nh, "num_experts": E, "num_experts_per_tok": k,
        "num_hidden_layers": a.layers, "num_key_value_heads": nkv, "output_router_logits": False,
        "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 10000000.0,
        "router_aux_loss_coef": 0.0, "sliding_window": None, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "use_cache": True, "use_sliding_window": False, "vocab_size": V,
        "quantization": {"group_size": a.group, "bits": a.bits, "mode": "affine"},
        "quantization_config": {"group_size": a.group, "bits": a.bits, "mode": "affine"},
    }
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=4)
    w = ShardWriter(a.out, 2 << 30)
    bits, g = a.bits, a.group
    s_in = 1.0 / np.sqrt(H)
    quantized(w, rng, "model.embed_tokens", (V, H), 1.0, bits, g)
    ones = lambda n: bf16_bytes(np.ones(n, np.float32))
    for l in range(a.layers):
        p = f"model.layers.{l}"
        w.add(p + ".input_layernorm.weight", "BF16", (H,), ones(H))
        w.add(p + ".post_attention_layernorm.weight", "BF16", (H,), ones(H))
        w.add(p + ".self_attn.q_norm.weight", "BF16", (hd,), ones(hd))
        w.add(p + ".self_attn.k_norm.weight", "BF16", (hd,), ones(hd))
        quantized(w, rng, p + ".self_attn.q_proj", (nh * hd, H), s_in, bits, g)
        quantized(w, rng, p + ".self_attn.k_proj", (nkv * hd, H), s_in, bits, g)
        quantized(w, rng, p + ".self_attn.v_proj", (nkv * hd, H), s_in, bits, g)
        quantized(w, rng, p + ".self_attn.o_proj", (H, nh * hd), 1.0 / np.sqrt(nh * hd), bits, g)
        # Router: logits = h . w_e with |h| ~ sqrt(H): sigma 2.5/sqrt(H) spreads them by ~2.5.
        quantized(w, rng, p + ".mlp.gate", (E, H), 2.5 * s_in / 1.39, bits, g)
        quantized(w, rng, p + ".mlp.switch_mlp.gate_proj", (E, I, H), s_in, bits, g)
        quantized(w, rng, p + ".mlp.switch_mlp.up_proj", (E, I, H), s_in, bits, g)
        quantized(w, rng, p + ".mlp.switch_mlp.down_proj", (E, H, I), 1.0 / np.sqrt(I), bits, g)
        print(f"layer {l} done", file=sys.stderr)
    w.add("model.norm.weight", "BF16", (H,), ones(H))
    quantized(w, rng, "lm_head", (V, H), s_in, bits, g)
    size = w.finish()
    print(f"{a.out}: {size / 1e9:.2f} GB of tensors", file=sys.stderr)
    if a.verify:
        import mlx.core as mx
        from mlx_lm.utils import load_model
        mx.set_default_device(mx.cpu)
        model, _ = load_model(__import__("pathlib").Path(a.out))
        out = model(mx.array([[1, 2, 3]]))
        mx.eval(out)
        print(f"mlx-lm loaded it: logits {out.shape}, finite={bool(mx.isfinite(out).all())}", file=sys.stderr)


if __name__ == "__main__":
    main()
