#!/usr/bin/env python3
"""Writes tests/fixtures/sampling/sampling_refs.json: mlx-lm's own sampling building blocks
(mlx_lm.sample_utils, 0.32.2) run on assorted logit rows, for tests/sampling/.

Run with the pinned peer venv (tests/reference/requirements.txt):
    .venv/bin/python tests/reference/make_sampling_refs.py

Encoding: every float32 vector is one hex string, 8 lowercase hex digits per element giving
the IEEE-754 bits (so -inf and exact values survive JSON). A "kept" mask is a string of '0'/'1',
'1' where the filter's output is not -inf.

Layout:
  meta: versions and the generator seed.
  rows[]: {name, dtype ("float32"|"bfloat16"), vocab, logits, logprobs (generate_step's
           logits - logsumexp), argmax (greedy_sampler on logprobs),
           filters[]: {op, params..., kept, boundary_tie}}
      op "top_p" {top_p}; "min_p" {min_p, min_tokens_to_keep}; "top_k" {top_k};
      "xtc" {threshold, special} (xtc_probability = 1, so it always applies);
      "chain" {top_p, min_p, top_k, temp, scaled}: make_sampler's filters in order, then
      categorical_sampling's input `logits * (1.0 / temp)` as `scaled`.
      All filters take the row's mlx logprobs as input. boundary_tie: the filter keeps some but
      not all of a set of equal values (mlx argpartition order), so only the kept multiset is
      defined.
  processors[]: {name, dtype, vocab, logits, history, params, out}: make_logits_processors(
      **params) applied in order to `logits` with `history` as the tokens, output `out`.
"""

import argparse
import json
import os

import mlx.core as mx
import mlx_lm
import numpy as np
from mlx_lm import sample_utils as su

SEED = 20240611


def hexf(a):
    a = np.asarray(a, dtype=np.float32).reshape(-1)
    return a.view(np.uint32).astype(">u4").tobytes().hex()


def to_np(x):
    return np.array(x.astype(mx.float32)).reshape(-1)


def kept_mask(x):
    return "".join("1" if v != -np.inf else "0" for v in to_np(x))


def boundary_tie(inp, out):
    """True when some value is kept at one index and masked at another."""
    i, o = to_np(inp), to_np(out)
    kept_vals = set(i[o != -np.inf].tolist())
    dropped_vals = set(i[(o == -np.inf) & (i != -np.inf)].tolist())
    return bool(kept_vals & dropped_vals)


def make_rows(rng):
    rows = []

    def add(name, values, dtype="float32"):
        rows.append((name, np.asarray(values, dtype=np.float32), dtype))

    for v in (50, 1000):
        add(f"v{v}_normal_s1", rng.normal(0, 1, v))
        add(f"v{v}_normal_s3", rng.normal(0, 3, v))
        add(f"v{v}_ties", np.round(rng.normal(0, 2, v) * 2) / 2)
        x = rng.normal(0, 2, v)
        x[rng.random(v) < 0.3] = -np.inf
        add(f"v{v}_neginf", x)
        add(f"v{v}_offset_large", 3.0e4 + rng.normal(0, 5, v))
        add(f"v{v}_bf16", rng.normal(0, 2, v), "bfloat16")
    add("v50_spread_large", rng.normal(0, 40, 50))
    add("v50_peaked", np.concatenate([[12.0], rng.normal(0, 1, 49)]))
    x = np.full(50, -np.inf)
    x[17] = 1.5
    add("v50_single_finite", x)
    add("v50_all_equal", np.zeros(50))
    add("v50_bf16_ties", np.round(rng.normal(0, 2, 50) * 2) / 2, "bfloat16")
    x = np.zeros(1000)
    x[:3] = [0.498, 0.5, 0.49]
    add("v1000_bf16_flat_neartie", x, "bfloat16")
    x = rng.normal(0, 1, 1000)
    x[:3] = [9.0, 9.0, 8.5]
    add("v1000_f32_top_tie", x)
    return rows


def filter_configs(vocab):
    top_p = [0.05, 0.3, 0.5, 0.8, 0.9, 0.95, 0.99]
    min_p = [(0.01, 1), (0.05, 1), (0.1, 1), (0.3, 1), (1.0, 1), (0.2, 5), (0.5, 3)]
    top_k = [1, 2, 5, 20, vocab - 1]
    xtc = [(0.05, []), (0.1, []), (0.2, [0, 1, 2])]
    chain = [(0.9, 0.05, 20, 0.7), (0.0, 0.0, 0, 1.3), (0.95, 0.0, 40, 1.0), (0.8, 0.1, 0, 0.3)]
    if vocab > 100:  # keep the file small
        top_p = [0.3, 0.9, 0.99]
        min_p = [(0.05, 1), (0.3, 1), (0.2, 5)]
        top_k = [1, 20, vocab - 1]
        xtc = [(0.1, [])]
        chain = [(0.9, 0.05, 20, 0.7)]
    return top_p, min_p, top_k, xtc, chain


def run_row(name, values, dtype):
    mdt = mx.bfloat16 if dtype == "bfloat16" else mx.float32
    logits = mx.array(values[None, :]).astype(mdt)
    # generate_step: logprobs = logits - mx.logsumexp(logits, keepdims=True)
    logprobs = logits - mx.logsumexp(logits, keepdims=True)
    vocab = values.shape[0]
    row = {
        "name": name,
        "dtype": dtype,
        "vocab": vocab,
        "logits": hexf(to_np(logits)),
        "logprobs": hexf(to_np(logprobs)),
        "argmax": int(su.greedy_sampler(logprobs).item()),
        "filters": [],
    }
    top_p, min_p, top_k, xtc, chain = filter_configs(vocab)

    def add(op, out, **params):
        mx.eval(out)
        row["filters"].append(
            {"op": op, **params, "kept": kept_mask(out), "boundary_tie": boundary_tie(logprobs, out)}
        )

    for p in top_p:
        add("top_p", su.apply_top_p(logprobs, p), top_p=p)
    for p, m in min_p:
        add("min_p", su.apply_min_p(logprobs, p, m), min_p=p, min_tokens_to_keep=m)
    for k in top_k:
        add("top_k", su.apply_top_k(logprobs, k), top_k=k)
    for thr, special in xtc:
        add("xtc", su.apply_xtc(logprobs, 1.0, thr, special), threshold=thr, special=special)
    for p, mp, k, temp in chain:
        # make_sampler's chain, minus the final random draw.
        x = logprobs
        if 0 < p < 1.0:
            x = su.apply_top_p(x, p)
        if mp != 0.0:
            x = su.apply_min_p(x, mp, 1)
        if k > 0:
            x = su.apply_top_k(x, k)
        scaled = x * (1.0 / temp)  # categorical_sampling's argument
        mx.eval(x, scaled)
        row["filters"].append(
            {
                "op": "chain",
                "top_p": p,
                "min_p": mp,
                "top_k": k,
                "temp": temp,
                "kept": kept_mask(x),
                "boundary_tie": boundary_tie(logprobs, x),
                "scaled": hexf(to_np(scaled)),
            }
        )
    return row


def processor_cases(rng):
    cases = []
    hist_short = [3, 7, 3, 11, 3, 0, 49]
    hist_long = rng.integers(0, 12, 45).tolist()  # many repeats, longer than 20
    for v in (50, 1000):
        base = rng.normal(0, 3, v)
        cases += [
            (f"v{v}_bias", base, [], dict(logit_bias={0: 2.5, 5: -1.25, v - 1: -np.inf})),
            (f"v{v}_rep13", base, hist_short, dict(repetition_penalty=1.3)),
            (f"v{v}_rep07_ctx5", base, hist_long, dict(repetition_penalty=0.7,
                                                      repetition_context_size=5)),
            (f"v{v}_rep_long", base, hist_long, dict(repetition_penalty=1.5)),
            (f"v{v}_presence", base, hist_long, dict(presence_penalty=0.5)),
            (f"v{v}_presence_neg", base, hist_short, dict(presence_penalty=-0.75)),
            (f"v{v}_frequency", base, hist_long, dict(frequency_penalty=0.4)),
            (f"v{v}_frequency_ctx0", base, hist_long, dict(frequency_penalty=0.3,
                                                           frequency_context_size=0)),
            (f"v{v}_all", base, hist_long, dict(logit_bias={3: 1.0, 4: -2.0},
                                                repetition_penalty=1.2,
                                                repetition_context_size=10,
                                                presence_penalty=0.25,
                                                presence_context_size=30,
                                                frequency_penalty=0.15,
                                                frequency_context_size=0)),
            (f"v{v}_empty_history", base, [], dict(repetition_penalty=1.3,
                                                   presence_penalty=0.5,
                                                   frequency_penalty=0.5)),
        ]
    out = []
    for name, base, hist, params in cases:
        for dtype in ("float32", "bfloat16"):
            mdt = mx.bfloat16 if dtype == "bfloat16" else mx.float32
            logits = mx.array(np.asarray(base, np.float32)[None, :]).astype(mdt)
            original = to_np(logits).copy()  # the processors write into logits in place
            tokens = mx.array(hist, dtype=mx.int32)
            for proc in su.make_logits_processors(**params):
                logits = proc(tokens, logits)
            mx.eval(logits)
            jparams = dict(params)
            if "logit_bias" in jparams:
                jparams["logit_bias"] = [
                    [int(k), None if v == -np.inf else float(v)]
                    for k, v in jparams["logit_bias"].items()
                ]
            out.append(
                {
                    "name": f"{name}_{dtype}",
                    "dtype": dtype,
                    "vocab": len(base),
                    "logits": hexf(original),
                    "history": [int(t) for t in hist],
                    "params": jparams,
                    "out": hexf(to_np(logits)),
                }
            )
    return out


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument(
        "--out", default=os.path.join(here, "..", "fixtures", "sampling", "sampling_refs.json")
    )
    args = ap.parse_args()
    mx.set_default_device(mx.cpu)
    rng = np.random.default_rng(SEED)
    doc = {
        "meta": {
            "generator": "tests/reference/make_sampling_refs.py",
            "mlx_version": mx.__version__,
            "mlx_lm_version": mlx_lm.__version__,
            "numpy_version": np.__version__,
            "seed": SEED,
        },
        "rows": [run_row(n, v, d) for n, v, d in make_rows(rng)],
        "processors": processor_cases(rng),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
