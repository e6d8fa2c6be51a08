"""Independent float64 numpy forward pass for qwen3_moe MLX checkpoints.

Reads the checkpoint folder exactly as stored (config.json + model*.safetensors),
dequantizes every quantized tensor with mx.dequantize after upcasting the
scales/biases to float32 (so the dequantized weights are not rounded to bf16),
and then runs the whole model in float64 with numpy:

  embedding lookup (dequantized table) -> per layer:
    x + Attn(RMSNorm(x)), then h + MLP(RMSNorm(h))
  Attn: q/k/v proj, per-head q_norm/k_norm (RMSNorm over head_dim) before RoPE,
        rotate-half RoPE (pairs i, i + hd/2, theta from config), GQA causal
        attention with scale 1/sqrt(head_dim), o_proj.
  MoE:  softmax over all experts -> top-k (ties: higher expert index wins) ->
        renormalise if norm_topk_prob -> sum_j w_j * down(silu(gate(x)) * up(x)).
  Dense MLP (layers that are not sparse): down(silu(gate(x)) * up(x)).
  final RMSNorm -> lm_head (or the tied embedding table).

Usage as a library: `W = load_weights(folder)`, `logits, routes = forward(W, ids)`.
"""

import glob
import json
import os

import mlx.core as mx
import numpy as np


def _to_f64(a):
    if a.dtype in (mx.bfloat16, mx.float16):
        a = a.astype(mx.float32)
    return np.array(a, copy=True).astype(np.float64)


def quant_params_for(path, qcfg):
    """(group_size, bits, mode) that config["quantization"] assigns to `path`."""
    entry = qcfg.get(path, None)
    if isinstance(entry, dict):
        return (entry["group_size"], entry["bits"], entry.get("mode", "affine"))
    return (qcfg["group_size"], qcfg["bits"], qcfg.get("mode", "affine"))


def load_weights(folder):
    """Returns {"config": cfg, "<module path>.weight": float64 ndarray, ...}."""
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    raw = {}
    for fn in sorted(glob.glob(os.path.join(folder, "model*.safetensors"))):
        raw.update(mx.load(fn))
    qcfg = cfg.get("quantization", None)
    out = {"config": cfg, "quant": {}}
    for name, arr in raw.items():
        if name.endswith(".scales") or name.endswith(".biases"):
            continue
        if name.endswith(".weight") and (name[: -len(".weight")] + ".scales") in raw:
            path = name[: -len(".weight")]
            assert qcfg is not None, f"{path} is quantized but config has no quantization"
            entry = qcfg.get(path, None)
            assert entry is not False, f"{path} is marked false but has scales"
            gs, bits, mode = quant_params_for(path, qcfg)
            scales = raw[path + ".scales"]
            biases = raw.get(path + ".biases", None)
            # cross-check the config against the shapes
            in_dims = scales.shape[-1] * gs
            assert arr.shape[-1] * 32 == in_dims * bits, (path, arr.shape, scales.shape, gs, bits)
            if mode == "affine":
                assert biases is not None and scales.dtype != mx.uint8, path
                scales = scales.astype(mx.float32)
                biases = biases.astype(mx.float32)
            else:
                assert biases is None and scales.dtype == mx.uint8, path
            w = mx.dequantize(
                arr, scales, biases, group_size=gs, bits=bits, mode=mode, dtype=mx.float32
            )
            out[name] = _to_f64(w)
            out["quant"][path] = (gs, bits, mode)
        else:
            out[name] = _to_f64(arr)
    return out


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def rope(x, theta):
    """x: [L, heads, hd]; rotate-half with positions 0..L-1."""
    L, _, hd = x.shape
    half = hd // 2
    inv_freq = theta ** (-np.arange(0, half, dtype=np.float64) * 2.0 / hd)
    ang = np.arange(L, dtype=np.float64)[:, None] * inv_freq[None, :]  # [L, half]
    cos = np.cos(ang)[:, None, :]
    sin = np.sin(ang)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)


def is_sparse_layer(cfg, i):
    return (
        i not in cfg.get("mlp_only_layers", [])
        and cfg["num_experts"] > 0
        and (i + 1) % cfg["decoder_sparse_step"] == 0
    )


def topk_higher_index_wins(p, k):
    """p: [L, E] -> indices [L, k] of the k largest, ties broken towards the
    higher index (stable ascending sort, take the last k), sorted ascending."""
    order = np.argsort(p, axis=-1, kind="stable")
    return np.sort(order[:, -k:], axis=-1)


def forward(W, ids):
    """ids: int sequence (length L). Returns (logits [L, V] float64,
    routes int32 [num_layers, L, top_k] sorted ascending, -1 for dense layers)."""
    cfg = W["config"]
    ids = np.asarray(ids, dtype=np.int64)
    L = ids.shape[0]
    eps = cfg["rms_norm_eps"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", cfg["hidden_size"] // nh)
    theta = cfg["rope_theta"]
    k = cfg["num_experts_per_tok"]
    nl = cfg["num_hidden_layers"]
    rep = nh // nkv

    x = W["model.embed_tokens.weight"][ids]  # [L, H]
    routes = np.full((nl, L, k), -1, dtype=np.int32)
    causal = np.tril(np.ones((L, L), dtype=bool))
    scale = 1.0 / np.sqrt(hd)

    for i in range(nl):
        p = f"model.layers.{i}."
        # attention
        hn = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        q = hn @ W[p + "self_attn.q_proj.weight"].T
        kk = hn @ W[p + "self_attn.k_proj.weight"].T
        v = hn @ W[p + "self_attn.v_proj.weight"].T
        q = rms_norm(q.reshape(L, nh, hd), W[p + "self_attn.q_norm.weight"], eps)
        kk = rms_norm(kk.reshape(L, nkv, hd), W[p + "self_attn.k_norm.weight"], eps)
        v = v.reshape(L, nkv, hd)
        q = rope(q, theta)
        kk = rope(kk, theta)
        att = np.empty((L, nh, hd))
        for h in range(nh):
            g = h // rep
            s = (q[:, h, :] @ kk[:, g, :].T) * scale  # [L, L]
            s = np.where(causal, s, -np.inf)
            s = s - s.max(axis=-1, keepdims=True)
            e = np.exp(s)
            a = e / e.sum(axis=-1, keepdims=True)
            att[:, h, :] = a @ v[:, g, :]
        r = att.reshape(L, nh * hd) @ W[p + "self_attn.o_proj.weight"].T
        h_ = x + r
        # MLP / MoE
        hn = rms_norm(h_, W[p + "post_attention_layernorm.weight"], eps)
        if is_sparse_layer(cfg, i):
            logits_r = hn @ W[p + "mlp.gate.weight"].T  # [L, E]
            z = logits_r - logits_r.max(axis=-1, keepdims=True)
            pr = np.exp(z)
            pr = pr / pr.sum(axis=-1, keepdims=True)
            inds = topk_higher_index_wins(pr, k)  # [L, k]
            routes[i] = inds
            sc = np.take_along_axis(pr, inds, axis=-1)
            if cfg["norm_topk_prob"]:
                sc = sc / sc.sum(axis=-1, keepdims=True)
            Wg = W[p + "mlp.switch_mlp.gate_proj.weight"]  # [E, I, H]
            Wu = W[p + "mlp.switch_mlp.up_proj.weight"]
            Wd = W[p + "mlp.switch_mlp.down_proj.weight"]  # [E, H, I]
            y = np.zeros_like(hn)
            for e_ in range(Wg.shape[0]):
                t_idx, j_idx = np.nonzero(inds == e_)
                if t_idx.size == 0:
                    continue
                xe = hn[t_idx]  # [n, H]
                a = silu(xe @ Wg[e_].T) * (xe @ Wu[e_].T)
                np.add.at(y, t_idx, sc[t_idx, j_idx][:, None] * (a @ Wd[e_].T))
        else:
            a = silu(hn @ W[p + "mlp.gate_proj.weight"].T) * (hn @ W[p + "mlp.up_proj.weight"].T)
            y = a @ W[p + "mlp.down_proj.weight"].T
        x = h_ + y

    x = rms_norm(x, W["model.norm.weight"], eps)
    if cfg.get("tie_word_embeddings", False):
        logits = x @ W["model.embed_tokens.weight"].T
    else:
        logits = x @ W["lm_head.weight"].T
    return logits, routes


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("ids", nargs="+", type=int)
    a = ap.parse_args()
    lg, rt = forward(load_weights(a.folder), a.ids)
    np.set_printoptions(precision=5, suppress=True)
    print("argmax per position:", lg.argmax(-1))
    print("routes:", rt)
