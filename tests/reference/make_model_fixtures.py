"""Build the qwen3_moe model-parity fixtures (see tests/reference/FIXTURES.md).

Each fixture is a random-weight model built with mlx-lm's own model class,
cast to bfloat16 (except "f32") and quantized exactly as `mlx_lm.convert` does
(mlx_lm.utils.quantize_model), saved with mlx_lm.utils.save_model/save_config,
loaded back with mlx_lm.utils.load_model, and then run:

  * greedy continuation with mlx_lm.generate.generate_step (argmax sampler),
  * one no-cache forward call on seq = ids ++ greedy[:G-1] for logits + routes,
  * tests/reference/f64_forward.py (float64 numpy) on the dequantized weights.

Usage:
  python tests/reference/make_model_fixtures.py --out tests/fixtures/models
  python tests/reference/make_model_fixtures.py --only bigvocab --out build/fixtures
"""

import argparse
import json
import os
import shutil
import sys
import time
import zlib
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten, tree_map_with_path, tree_unflatten

import mlx_lm
from mlx_lm.generate import generate_step
from mlx_lm.models import qwen3_moe
from mlx_lm.utils import load_model, quantize_model, save_config, save_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import f64_forward  # noqa: E402

G_DEFAULT = 32
PROMPT_SEED = 20250822
WEIGHT_SEED = 1234

BASE = dict(
    vocab_size=512,
    hidden_size=128,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=64,
    num_experts=8,
    num_experts_per_tok=2,
    moe_intermediate_size=128,
    intermediate_size=256,
    rope_theta=10000000.0,
    rms_norm_eps=1e-06,
    norm_topk_prob=True,
    max_position_embeddings=4096,
    tie_word_embeddings=False,
    decoder_sparse_step=1,
    mlp_only_layers=[],
)


def _router_follows_global(path, module):
    # Everything quantizable is quantized with the global settings (the router
    # included), i.e. what mlx-lm < 0.26.3 did and what the mlx-community
    # Qwen3-Coder-480B quants most likely are.
    return True


def _mixed_predicate(path, module):
    if path.endswith("mlp.gate"):
        return {"group_size": 64, "bits": 8}  # = qwen3_moe's own quant_predicate
    if path == "model.layers.1.self_attn.v_proj":
        return {"group_size": 64, "bits": 6}
    if path == "lm_head":
        return False
    return True


def _fx(name, quant=None, shape=None, dtype="bfloat16", prompts=(1, 6, 40, 300), **kw):
    d = dict(name=name, quant=quant, shape=dict(BASE, **(shape or {})), dtype=dtype,
             prompts=list(prompts), G=G_DEFAULT, last_only=False, embed_std=0.5,
             committed=True)
    d.update(kw)
    return d


# Size budget: the committed total should stay small (~20 MB). The reference
# logits cost ~4 KB per checked row (2 x 512 x F32) and a base-shape model is
# 1.6 M parameters, so the quant-format-only fixtures use 2 layers and three
# prompts, and the unquantized ones use a slimmer MoE (they are byte-heavy).
SHORT = (1, 6, 40)
FMT = dict(num_hidden_layers=2)
SLIM = dict(num_hidden_layers=2, moe_intermediate_size=32, intermediate_size=64)


def _aff(gs, bits, predicate=_router_follows_global, **kw):
    return dict(group_size=gs, bits=bits, mode="affine", predicate=predicate, **kw)


# quant = dict(group_size, bits, mode, predicate) ; predicate None = model's own
FIXTURES = [
    _fx("q4_g64", _aff(64, 4),
        generation_config={"eos_token_id": [151645, 151643], "temperature": 0.7,
                           "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}),
    _fx("q8_g64", _aff(64, 8), shape=FMT, prompts=SHORT),
    _fx("q3_g32", _aff(32, 3), shape=FMT, prompts=SHORT),
    _fx("q6_g128", _aff(128, 6), shape=FMT, prompts=SHORT),
    _fx("q2_g64", _aff(64, 2), shape=FMT, prompts=SHORT),
    _fx("q5_g64", _aff(64, 5), shape=FMT, prompts=SHORT),
    # mxfp4 keeps mlx-lm's default behaviour (qwen3_moe.quant_predicate: router
    # affine 8-bit g64 via per-path entries), like real mxfp4 qwen3_moe quants.
    _fx("mxfp4", dict(group_size=32, bits=4, mode="mxfp4", predicate=None),
        shape=FMT, prompts=SHORT),
    _fx("mxfp8", dict(group_size=32, bits=8, mode="mxfp8", predicate=_router_follows_global),
        shape=FMT, prompts=SHORT),
    _fx("nvfp4", dict(group_size=16, bits=4, mode="nvfp4", predicate=_router_follows_global),
        shape=FMT, prompts=SHORT),
    _fx("mixed", _aff(64, 4, _mixed_predicate, false_paths=["lm_head"]), prompts=SHORT),
    _fx("bf16", None, shape=SLIM, prompts=SHORT),
    _fx("f32", None, shape=SLIM, dtype="float32"),
    _fx("shape480", _aff(64, 4),
        shape=dict(head_dim=128, num_attention_heads=24, num_key_value_heads=2,
                   num_experts=16, num_experts_per_tok=8, num_hidden_layers=2)),
    _fx("dense", _aff(64, 4), prompts=SHORT,
        shape=dict(num_hidden_layers=4, decoder_sparse_step=2, mlp_only_layers=[2])),
    _fx("tied", _aff(64, 4), prompts=SHORT, shape=dict(tie_word_embeddings=True),
        embed_std=0.2),
    _fx("bigvocab", _aff(64, 4), shape=dict(vocab_size=151936, num_hidden_layers=1),
        prompts=(1, 20), G=4, last_only=True, committed=False, embed_std=0.2),
]
BY_NAME = {f["name"]: f for f in FIXTURES}


# ----------------------------------------------------------------------------
# model construction
# ----------------------------------------------------------------------------

def hf_config(fx):
    s = fx["shape"]
    cfg = dict(s)
    cfg.update(
        architectures=["Qwen3MoeForCausalLM"],
        model_type="qwen3_moe",
        hidden_act="silu",
        attention_bias=False,
        attention_dropout=0.0,
        rope_scaling=None,
        use_sliding_window=False,
        sliding_window=None,
        max_window_layers=s["num_hidden_layers"],
        initializer_range=0.02,
        output_router_logits=False,
        router_aux_loss_coef=0.0,
        bos_token_id=151643,
        eos_token_id=151645,
        use_cache=True,
        torch_dtype=fx["dtype"],
        transformers_version="4.51.0",
    )
    return cfg


def gen_param(name, shape, fx):
    """Deterministic float32 values for one parameter (independent of order)."""
    s = fx["shape"]
    rng = np.random.default_rng([WEIGHT_SEED, zlib.crc32(name.encode())])
    H = s["hidden_size"]
    if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    if name == "model.embed_tokens.weight":
        std = fx["embed_std"]
    elif name == "lm_head.weight":
        std = 0.2  # logits std ~ 0.2 * sqrt(128) ~ 2.3
    elif name.endswith("mlp.gate.weight"):
        std = 0.25  # router logits std ~ 2.8 -> well separated top-k
    elif name.endswith("o_proj.weight"):
        std = 1.0 / np.sqrt(s["num_attention_heads"] * s["head_dim"])
    elif name.endswith("switch_mlp.down_proj.weight"):
        std = 1.0 / np.sqrt(s["moe_intermediate_size"])
    elif name.endswith("mlp.down_proj.weight"):
        std = 1.0 / np.sqrt(s["intermediate_size"])
    else:  # q/k/v, expert and dense gate/up projections
        std = 1.0 / np.sqrt(H)
    return (std * rng.standard_normal(shape)).astype(np.float32)


def build_and_save(fx, folder):
    config = hf_config(fx)
    args = qwen3_moe.ModelArgs.from_dict(config)
    model = qwen3_moe.Model(args)
    flat = tree_flatten(model.parameters())
    model.update(tree_unflatten([(k, mx.array(gen_param(k, v.shape, fx))) for k, v in flat]))

    # as mlx_lm.convert: cast every float parameter to config["torch_dtype"]
    dtype = getattr(mx, fx["dtype"])
    cast_predicate = getattr(model, "cast_predicate", lambda _: True)

    def set_dtype(k, v):
        if cast_predicate(k) and mx.issubdtype(v.dtype, mx.floating):
            return v.astype(dtype)
        return v

    model.update(tree_map_with_path(set_dtype, model.parameters()))

    q = fx["quant"]
    if q is not None:
        model, config = quantize_model(
            model, config, q["group_size"], q["bits"], mode=q["mode"],
            quant_predicate=q["predicate"],
        )
        # mlx-lm (>= 0.26.3) never writes `false` entries itself (v0.26.0 did);
        # add them as an older converter would. quantization_config is the same
        # dict object, and save_config re-copies it anyway.
        for p in q.get("false_paths", []):
            config["quantization"][p] = False
    mx.eval(model.parameters())
    folder.mkdir(parents=True, exist_ok=True)
    save_model(folder, model)
    save_config(config, config_path=folder / "config.json")
    if fx.get("generation_config"):
        with open(folder / "generation_config.json", "w") as f:
            json.dump(fx["generation_config"], f, indent=2)


# ----------------------------------------------------------------------------
# running mlx-lm
# ----------------------------------------------------------------------------

class RouteRecorder:
    """Wraps Qwen3MoeSparseMoeBlock.__call__ to capture argpartition's result."""

    def __init__(self, model):
        self.layer_of = {}
        for i, layer in enumerate(model.model.layers):
            if isinstance(layer.mlp, qwen3_moe.Qwen3MoeSparseMoeBlock):
                self.layer_of[id(layer.mlp)] = i
        self.records = {}  # layer -> (inds [B,L,k] ascending, gates bf16 as f32)
        self.orig = qwen3_moe.Qwen3MoeSparseMoeBlock.__call__

    def __enter__(self):
        rec = self
        orig = self.orig

        def patched(block, x):
            seen = []
            real = mx.argpartition

            def ap(a, *args, **kw):
                r = real(a, *args, **kw)
                seen.append((a, r))
                return r

            mx.argpartition = ap
            try:
                y = orig(block, x)
            finally:
                mx.argpartition = real
            assert len(seen) == 1
            gates, part = seen[0]
            rec.records[rec.layer_of[id(block)]] = (part[..., -block.top_k:], gates)
            return y

        qwen3_moe.Qwen3MoeSparseMoeBlock.__call__ = patched
        return self

    def __exit__(self, *exc):
        qwen3_moe.Qwen3MoeSparseMoeBlock.__call__ = self.orig


class Float32Accumulation:
    """Run mx.gather_mm / mx.quantized_matmul / mx.gather_qmm on float32 copies
    of their bf16 inputs and round the result to bf16.

    Why: on MLX's CPU backend (the only one here) the quantized matmuls
    accumulate in the activation dtype, so with bf16 activations every
    quantized Linear is off by ~8-20% of its output std (measured), and an
    unquantized bf16 MoE cannot run at all ("[GatherMM::eval] Currently only
    supports float32"). The Metal kernels -- what mlx-lm normally runs on --
    accumulate in float32 and round the output to bf16, which this emulates
    exactly up to summation order. Everything else (norms, RoPE, attention,
    softmax, routing, residuals, sampling) stays mlx-lm's own bf16 code.
    Disabled with --cpu-native-accumulation (gather_mm for bf16 still needs it)."""

    NAMES = ("gather_mm", "quantized_matmul", "gather_qmm")

    def __init__(self, names=NAMES):
        self.names = names

    def __enter__(self):
        self.real = {n: getattr(mx, n) for n in self.names}

        def wrap(real):
            def f(*args, **kw):
                low = [False]

                def up(v):
                    if isinstance(v, mx.array) and v.dtype in (mx.bfloat16, mx.float16):
                        low[0] = v.dtype
                        return v.astype(mx.float32)
                    return v

                args = [up(v) for v in args]
                kw = {k: up(v) for k, v in kw.items()}
                out = real(*args, **kw)
                return out.astype(low[0]) if low[0] else out

            return f

        for n, r in self.real.items():
            setattr(mx, n, wrap(r))
        return self

    def __exit__(self, *exc):
        for n, r in self.real.items():
            setattr(mx, n, r)


def mlx_greedy(model, ids, G):
    rec = []

    def proc(tokens, logits):
        rec.append(logits)
        return logits

    sampler = lambda logprobs: mx.argmax(logprobs, axis=-1)
    toks = []
    for tok, _ in generate_step(mx.array(ids, dtype=mx.int32), model, max_tokens=G,
                                sampler=sampler, logits_processors=[proc]):
        toks.append(tok)
    margins = []
    for lg in rec[:G]:
        v = np.sort(np.array(lg.astype(mx.float32)).reshape(-1))
        margins.append(v[-1] - v[-2])
    return np.array(toks, dtype=np.int32), np.array(margins, dtype=np.float32)


def mlx_forward(model, seq, num_layers, k):
    with RouteRecorder(model) as rr:
        logits = model(mx.array(seq, dtype=mx.int32)[None])
        mx.eval(logits)
    L = len(seq)
    routes = np.full((num_layers, L, k), -1, dtype=np.int32)
    ties = 0
    tie_high = 0
    for i, (inds, gates) in rr.records.items():
        inds = np.array(inds)[0]
        g = np.array(gates.astype(mx.float32))[0]  # exact bf16 values
        routes[i] = np.sort(inds, axis=-1)
        # boundary ties in the bf16 probabilities
        srt = np.sort(g, axis=-1)
        kth, nxt = srt[:, -k], srt[:, -k - 1]
        for t in np.nonzero(kth == nxt)[0]:
            ties += 1
            tied = np.nonzero(g[t] == kth[t])[0]
            chosen_tied = sorted(set(inds[t].tolist()) & set(tied.tolist()))
            n_ch = len(chosen_tied)
            if chosen_tied == sorted(tied.tolist())[-n_ch:]:
                tie_high += 1
    return np.array(logits.astype(mx.float32))[0], routes, (ties, tie_high)


def checked_positions(n, G, last_only):
    if last_only:
        return np.array([n - 1], dtype=np.int32)
    start = 0 if n <= 8 else n - 8
    return np.arange(start, n - 1 + G, dtype=np.int32)


def prompt_ids(n, vocab):
    rng = np.random.default_rng([PROMPT_SEED, n])
    return rng.integers(0, vocab, size=n, dtype=np.int64).astype(np.int32)


# ----------------------------------------------------------------------------

def make_fixture(fx, out_root, cpu_native=False):
    accum_names = ("gather_mm",) if cpu_native else Float32Accumulation.NAMES
    t0 = time.time()
    folder = Path(out_root) / fx["name"]
    if folder.exists():
        shutil.rmtree(folder)
    build_and_save(fx, folder)

    model, config = load_model(folder)
    cfg_saved = json.load(open(folder / "config.json"))
    s = fx["shape"]
    V, NL, K, G = s["vocab_size"], s["num_hidden_layers"], s["num_experts_per_tok"], fx["G"]

    W = f64_forward.load_weights(str(folder))
    # check the loader rebuilt exactly the layers that were saved quantized
    loaded_q = {p: (m.group_size, m.bits, m.mode) for p, m in model.named_modules()
                if hasattr(m, "scales")}
    assert loaded_q == W["quant"], (sorted(loaded_q.items()), sorted(W["quant"].items()))

    tensors = {}
    prompts_meta = []
    row_err = []
    stats = {"max_absdiff_over_std": 0.0, "top1_agree": 0, "rows": 0,
             "route_agree": 0, "route_rows": 0, "bf16_boundary_ties": 0,
             "ties_higher_index_won": 0, "min_margin": float("inf")}
    for pi, n in enumerate(fx["prompts"]):
        key = f"p{pi}"
        ids = prompt_ids(n, V)
        patch = lambda: Float32Accumulation(accum_names)
        with patch():
            greedy, margin = mlx_greedy(model, ids.tolist(), G)
        seq = np.concatenate([ids, greedy[: G - 1]]).astype(np.int32)
        pos = checked_positions(n, G, fx["last_only"])
        with patch():
            mlx_lg, mlx_rt, (ties, tie_high) = mlx_forward(model, seq.tolist(), NL, K)
        f64_lg, f64_rt = f64_forward.forward(W, seq)
        mlx_lg, f64_lg = mlx_lg[pos], f64_lg[pos]
        mlx_rt, f64_rt = mlx_rt[:, pos], f64_rt[:, pos]

        tensors[f"{key}.ids"] = mx.array(ids, dtype=mx.int32)
        tensors[f"{key}.greedy"] = mx.array(greedy, dtype=mx.int32)
        tensors[f"{key}.greedy_margin"] = mx.array(margin, dtype=mx.float32)
        tensors[f"{key}.positions"] = mx.array(pos, dtype=mx.int32)
        tensors[f"{key}.mlx_logits"] = mx.array(mlx_lg.astype(np.float32))
        tensors[f"{key}.f64_logits"] = mx.array(f64_lg.astype(np.float32))
        tensors[f"{key}.mlx_routes"] = mx.array(mlx_rt.astype(np.int32))
        tensors[f"{key}.f64_routes"] = mx.array(f64_rt.astype(np.int32))
        prompts_meta.append({"key": key, "n_prompt": int(n), "n_greedy": int(G)})

        sd = f64_lg.std(axis=-1, keepdims=True)
        row_err.extend((np.abs(mlx_lg - f64_lg) / sd).max(-1).tolist())
        stats["max_absdiff_over_std"] = max(stats["max_absdiff_over_std"],
                                            float((np.abs(mlx_lg - f64_lg) / sd).max()))
        stats["top1_agree"] += int((mlx_lg.argmax(-1) == f64_lg.argmax(-1)).sum())
        stats["rows"] += len(pos)
        sparse = [i for i in range(NL) if f64_forward.is_sparse_layer(cfg_saved, i)]
        stats["route_agree"] += int(np.all(mlx_rt[sparse] == f64_rt[sparse], axis=-1).sum())
        stats["route_rows"] += len(sparse) * len(pos)
        stats["bf16_boundary_ties"] += ties
        stats["ties_higher_index_won"] += tie_high
        stats["min_margin"] = min(stats["min_margin"], float(margin.min()))
        # the greedy tokens must be reproduced by the single no-cache forward
        cont = pos >= n - 1
        stats.setdefault("greedy_vs_forward_argmax", 0)
        gi = pos[cont] - (n - 1)
        stats["greedy_vs_forward_argmax"] += int(
            (mlx_lg[cont].argmax(-1) == greedy[gi]).sum())
        stats.setdefault("logit_std", []).append(float(f64_lg.std()))

    stats["logit_std"] = float(np.mean(stats["logit_std"]))
    stats["median_row_absdiff_over_std"] = float(np.median(row_err))
    # References live in ref/ so the model folder holds only what a checkpoint holds.
    (folder / "ref").mkdir(exist_ok=True)
    mx.save_safetensors(str(folder / "ref" / "reference.safetensors"), tensors)
    ref = {
        "name": fx["name"],
        "mlx_version": mx.__version__,
        "mlx_lm_version": mlx_lm.__version__,
        "compute_dtype": fx["dtype"],
        "vocab_size": V,
        "num_layers": NL,
        "top_k": K,
        "prompts": prompts_meta,
        "notes": (
            "Generated by tests/reference/make_model_fixtures.py on the MLX CPU backend. "
            "Random weights (numpy seed %d), cast to %s as mlx_lm.convert does, "
            "quantized with mlx_lm.utils.quantize_model %s; loaded back with "
            "mlx_lm.utils.load_model. mlx_logits: one no-cache forward on "
            "ids ++ greedy[:G-1]; greedy: generate_step with an argmax sampler; "
            "f64: tests/reference/f64_forward.py. mlx_routes sorted ascending; "
            "-1 rows for dense layers. 'stats' compares mlx-lm to f64 over the "
            "checked rows (row error = max |mlx-f64| / std(f64 row)). %s"
            % (WEIGHT_SEED, fx["dtype"],
               "(%s)" % json.dumps({k: v for k, v in fx["quant"].items()
                                    if k in ("group_size", "bits", "mode")})
               if fx["quant"] else "(not quantized)",
               ("mlx_lm ran with CPU-native matmul accumulation (except bf16 gather_mm). "
                if cpu_native else "")
               + " ".join(Float32Accumulation.__doc__.split()))
        ),
        "mlx_matmul_accumulation": ("cpu-native" if cpu_native
                                    else "float32 (Metal-like, emulated on CPU)"),
        "stats": stats,
    }
    with open(folder / "ref" / "reference.json", "w") as f:
        json.dump(ref, f, indent=2)
    dt = time.time() - t0
    print(
        f"{fx['name']:9s} rows={stats['rows']:4d}  |mlx-f64|/std max={stats['max_absdiff_over_std']:.2e} "
        f"median-row={stats['median_row_absdiff_over_std']:.2e}  "
        f"top1 {stats['top1_agree']}/{stats['rows']}  routes {stats['route_agree']}/{stats['route_rows']}  "
        f"bf16-ties {stats['bf16_boundary_ties']} (higher idx won {stats['ties_higher_index_won']})  "
        f"greedy==fwd-argmax {stats['greedy_vs_forward_argmax']}  min-margin {stats['min_margin']:.3g}  "
        f"logit-std {stats['logit_std']:.2f}  [{dt:.1f}s]",
        flush=True,
    )
    return stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output root (one folder per fixture)")
    ap.add_argument("--only", default=None,
                    help="comma-separated fixture names (default: all committed ones)")
    ap.add_argument("--cpu-native-accumulation", action="store_true",
                    help="record mlx-lm with the CPU backend's own bf16-accumulating "
                         "quantized matmuls instead of the Metal-like float32 emulation")
    a = ap.parse_args()
    mx.set_default_device(mx.cpu)
    if a.only:
        names = [n.strip() for n in a.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            ap.error(f"unknown fixture(s) {unknown}; known: {list(BY_NAME)}")
    else:
        names = [f["name"] for f in FIXTURES if f["committed"]]
    for n in names:
        make_fixture(BY_NAME[n], a.out, cpu_native=a.cpu_native_accumulation)


if __name__ == "__main__":
    main()
