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

Optional KV storage model (`forward(W, ids, kv_store=...)`): qcoder stores the post-RoPE keys
and the values in its KV cache format and attention reads them back from there (a token sees
its own keys as stored too). kv_store="bf16" rounds them to bfloat16 (round to nearest even,
straight from float64); "q8"/"q4" quantize them as qcoder's q8/q4 cache does (mx.quantize's
affine rule along head_dim in groups of 64, bf16 scales/biases; kernels/reference/kv_ref.cc).
Everything else stays float64. kv_store=None (the default) keeps them in float64.

Diagnosis only (not a reference): act_int16=True rounds the input of every product with
integer-path weights (affine, mxfp4, nvfp4) per weight group to int16 levels of max|x| / 32639,
as qcoder's integer kernels do (kernels/ops.h PreparedActs), to tell that rounding's effect
apart from the rest (tests/reference/kv_gate_diagnosis.py).

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


def round_bf16(x):
    """float64 -> the nearest bfloat16 value (8 significant bits, ties to even), as float64.
    Normal numbers only (|x| in bf16's normal range), which KV rows are."""
    m, e = np.frexp(np.asarray(x, dtype=np.float64))  # x = m * 2^e, 0.5 <= |m| < 1
    return np.ldexp(np.rint(m * 256.0), e - 8)  # np.rint: round half to even


def quantize_kv(x, bits, group=64):
    """x [..., hd] float64 -> the values qcoder's q8/q4 cache stores (kv_ref.cc quantize_group,
    mx.quantize's affine rule) for groups of `group` consecutive elements: levels from the
    unrounded scale/bias, then decoded as bf16(scale) * q + bf16(bias)."""
    shp = x.shape
    g = x.reshape(shp[:-1] + (shp[-1] // group, group))
    levels = float((1 << bits) - 1)
    wmin = g.min(axis=-1, keepdims=True)
    wmax = g.max(axis=-1, keepdims=True)
    s = np.maximum((wmax - wmin) / levels, 1e-7)
    side = np.abs(wmin) > np.abs(wmax)
    s = np.where(side, s, -s)
    edge = np.where(side, wmin, wmax)
    q0 = np.rint(edge / s)
    nz = q0 != 0
    s = np.where(nz, edge / np.where(nz, q0, 1.0), s)
    bias = np.where(nz, edge, 0.0)
    q = np.clip(np.rint((g - bias) / s), 0.0, levels)
    return (round_bf16(s) * q + round_bf16(bias)).reshape(shp)


def store_kv(x, kv_store):
    """Keys/values as the KV cache format `kv_store` holds them (None: unchanged)."""
    if kv_store is None:
        return x
    if kv_store == "bf16":
        return round_bf16(x)
    if kv_store in ("q8", "q4"):
        return quantize_kv(x, 8 if kv_store == "q8" else 4)
    raise ValueError(f"unknown kv_store {kv_store!r} (None, 'bf16', 'q8', 'q4')")


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


def int16_acts(W, x, path, on):
    """x as qcoder's integer kernels see it for the product with `path`'s weights (when `on`):
    per weight group, x_hat = sx * rint(x / sx), sx = max|x| / 32639. Otherwise x itself."""
    q = W["quant"].get(path) if on else None
    if q is None or q[2] == "mxfp8":
        return x
    gs = q[0]
    g = x.reshape(x.shape[:-1] + (x.shape[-1] // gs, gs))
    sx = np.abs(g).max(axis=-1, keepdims=True) / 32639.0
    sx = np.where(sx == 0, 1.0, sx)
    return (np.rint(g / sx) * sx).reshape(x.shape)


def forward(W, ids, kv_store=None, act_int16=False):
    """ids: int sequence (length L). Returns (logits [L, V] float64,
    routes int32 [num_layers, L, top_k] sorted ascending, -1 for dense layers).
    kv_store: None, "bf16", "q8" or "q4": the KV cache format the keys/values are read from.
    act_int16: diagnosis only, see the module docstring."""
    def A(x, path):
        return int16_acts(W, x, path, act_int16)

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
        q = A(hn, p + "self_attn.q_proj") @ W[p + "self_attn.q_proj.weight"].T
        kk = A(hn, p + "self_attn.k_proj") @ W[p + "self_attn.k_proj.weight"].T
        v = A(hn, p + "self_attn.v_proj") @ W[p + "self_attn.v_proj.weight"].T
        q = rms_norm(q.reshape(L, nh, hd), W[p + "self_attn.q_norm.weight"], eps)
        kk = rms_norm(kk.reshape(L, nkv, hd), W[p + "self_attn.k_norm.weight"], eps)
        v = v.reshape(L, nkv, hd)
        q = rope(q, theta)
        kk = rope(kk, theta)
        if kv_store is not None:
            kk = store_kv(kk, kv_store)
            v = store_kv(v, kv_store)
        att = np.empty((L, nh, hd))
        for h in range(nh):
            g = h // rep
            s = (q[:, h, :] @ kk[:, g, :].T) * scale  # [L, L]
            s = np.where(causal, s, -np.inf)
            s = s - s.max(axis=-1, keepdims=True)
            e = np.exp(s)
            a = e / e.sum(axis=-1, keepdims=True)
            att[:, h, :] = a @ v[:, g, :]
        r = A(att.reshape(L, nh * hd), p + "self_attn.o_proj") @ W[p + "self_attn.o_proj.weight"].T
        h_ = x + r
        # MLP / MoE
        hn = rms_norm(h_, W[p + "post_attention_layernorm.weight"], eps)
        if is_sparse_layer(cfg, i):
            logits_r = A(hn, p + "mlp.gate") @ W[p + "mlp.gate.weight"].T  # [L, E]
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
                a = silu(A(xe, p + "mlp.switch_mlp.gate_proj") @ Wg[e_].T) * (
                    A(xe, p + "mlp.switch_mlp.up_proj") @ Wu[e_].T)
                out_e = A(a, p + "mlp.switch_mlp.down_proj") @ Wd[e_].T
                np.add.at(y, t_idx, sc[t_idx, j_idx][:, None] * out_e)
        else:
            a = silu(A(hn, p + "mlp.gate_proj") @ W[p + "mlp.gate_proj.weight"].T) * (
                A(hn, p + "mlp.up_proj") @ W[p + "mlp.up_proj.weight"].T)
            y = A(a, p + "mlp.down_proj") @ W[p + "mlp.down_proj.weight"].T
        x = h_ + y

    x = rms_norm(x, W["model.norm.weight"], eps)
    if cfg.get("tie_word_embeddings", False):
        logits = A(x, "model.embed_tokens") @ W["model.embed_tokens.weight"].T
    else:
        logits = A(x, "lm_head") @ W["lm_head.weight"].T
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
