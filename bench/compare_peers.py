#!/usr/bin/env python3
"""Runs qcoder bench and the peers on the same model in the same run, and prints the ratios.

  bench/compare_peers.py --model /tmp/qbench/m30b12 [--qcoder build/apps/qcoder]
      [--gguf /tmp/qbench/m30b12-q4_0.gguf --llama-bench /tmp/llamacpp/build/bin/llama-bench]
      [--rounds 2] [--mlx-tg 32] [--mlx-pp 512] [--threads 2] [--fast]

Order per round: qcoder bench (its own bandwidth sweeps interleaved with its decode runs),
mlx-lm (MLX on CPU: the same MLX folder, one 512-token prompt, then --mlx-tg tokens decoded
one at a time), llama-bench -p 512 -n 128 on the GGUF twin if given. Peers' decode is also
stated against the bandwidth qcoder measured in the same round, with the same bytes per
token (the GGUF twin has the same shapes at the same 4.5 bits per weight). Medians over
rounds. The machine is shared and noisy: compare ratios, not absolute numbers. With --fast,
each round also runs `qcoder bench --fast` (8-bit activations in the gate/up products and the
head) right after the default one, and the ratios are given for both modes.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time


def run_qcoder(exe, model, threads, fast=False):
    out = subprocess.run([exe, "bench", "-m", model, "--json", "-t", str(threads)] + (["--fast"] if fast else []),
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_mlx(model, pp, tg):
    """mlx-lm on the MLX CPU device: prompt tok/s and decode tok/s."""
    code = f"""
import time, json, pathlib, random
import mlx.core as mx
mx.set_default_device(mx.cpu)
from mlx_lm.utils import load_model
from mlx_lm.models.cache import make_prompt_cache
model, _ = load_model(pathlib.Path({model!r}))
V = model.args.vocab_size
random.seed(1)
ids = mx.array([[random.randrange(V) for _ in range({pp})]])
mx.eval(model(ids[:, :16], cache=make_prompt_cache(model)))  # warm-up
cache = make_prompt_cache(model)
t0 = time.perf_counter(); mx.eval(model(ids, cache=cache)); pp_s = time.perf_counter() - t0
cache = make_prompt_cache(model)
y = mx.array([[1]])
t0 = time.perf_counter()
for _ in range({tg}):
    logits = model(y, cache=cache)
    y = mx.argmax(logits[:, -1, :], axis=-1, keepdims=True)
    mx.eval(y)
tg_s = time.perf_counter() - t0
print(json.dumps({{"pp_tok_s": {pp} / pp_s, "tg_tok_s": {tg} / tg_s}}))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_llama(exe, gguf, threads):
    out = subprocess.run([exe, "-m", gguf, "-t", str(threads), "-p", "512", "-n", "128", "-r", "3", "-o", "json"],
                         check=True, capture_output=True, text=True).stdout
    res = {}
    for r in json.loads(out):
        if r.get("n_prompt", 0) > 0 and r.get("n_gen", 0) == 0:
            res["pp_tok_s"] = r["avg_ts"]
        elif r.get("n_gen", 0) > 0 and r.get("n_prompt", 0) == 0:
            res["tg_tok_s"] = r["avg_ts"]
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--qcoder", default="build/apps/qcoder")
    ap.add_argument("--gguf")
    ap.add_argument("--llama-bench")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--mlx-tg", type=int, default=32, help="tokens mlx-lm decodes (it is slow on CPU)")
    ap.add_argument("--mlx-pp", type=int, default=512,
                    help="mlx-lm's prompt length (its CPU prefill runs at ~0.1 tok/s here: 64 takes ~10 min)")
    ap.add_argument("--no-mlx", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fast", action="store_true", help="also run qcoder bench --fast each round")
    a = ap.parse_args()
    rows = {"qcoder": [], "qcoder --fast": [], "mlx-lm": [], "llama.cpp": []}
    for r in range(a.rounds):
        q = run_qcoder(a.qcoder, a.model, a.threads)
        rows["qcoder"].append(q)
        print(f"round {r + 1} qcoder: {json.dumps(q)}", file=sys.stderr)
        if a.fast:
            qf = run_qcoder(a.qcoder, a.model, a.threads, fast=True)
            rows["qcoder --fast"].append(qf)
            print(f"round {r + 1} qcoder --fast: {json.dumps(qf)}", file=sys.stderr)
        # bytes per token at tg128 (as qcoder counts them), from its own roofline figure.
        bpt = q["decode_roofline_pct"] / 100 * q["read_bw_gbs"] * 1e9 / q["tg128_tok_s"]
        if not a.no_mlx:
            m = run_mlx(a.model, a.mlx_pp, a.mlx_tg)
            m["roofline_pct"] = 100 * m["tg_tok_s"] * bpt / (q["read_bw_gbs"] * 1e9)
            rows["mlx-lm"].append(m)
            print(f"round {r + 1} mlx-lm: {json.dumps(m)}", file=sys.stderr)
        if a.gguf and a.llama_bench:
            l = run_llama(a.llama_bench, a.gguf, a.threads)
            l["roofline_pct"] = 100 * l["tg_tok_s"] * bpt / (q["read_bw_gbs"] * 1e9)
            rows["llama.cpp"].append(l)
            print(f"round {r + 1} llama.cpp: {json.dumps(l)}", file=sys.stderr)
    med = lambda xs: statistics.median(xs) if xs else float("nan")
    if rows["mlx-lm"] and a.mlx_pp != 512:
        print(f"(mlx-lm's prompt: {a.mlx_pp} tokens, not 512; its tok/s is what it reached on that prompt)")
    modes = [m for m in ("qcoder", "qcoder --fast") if rows[m]]
    print(f"{'engine':<14} {'pp512 tok/s':>12} {'tg tok/s':>10} {'decode % roofline':>18}   qcoder/peer pp, tg")
    for m in modes:
        q_pp = med([x["pp512_tok_s"] for x in rows[m]])
        q_tg = med([x["tg128_tok_s"] for x in rows[m]])
        print(f"{m:<14} {q_pp:12.2f} {q_tg:10.2f} {med([x['decode_roofline_pct'] for x in rows[m]]):18.1f}")
    for name in ("mlx-lm", "llama.cpp"):
        if not rows[name]:
            continue
        pp, tg = med([x["pp_tok_s"] for x in rows[name]]), med([x["tg_tok_s"] for x in rows[name]])
        ratios = "; ".join(
            f"{m}: {med([x['pp512_tok_s'] for x in rows[m]]) / pp:.2f}x, {med([x['tg128_tok_s'] for x in rows[m]]) / tg:.2f}x"
            for m in modes)
        print(f"{name:<14} {pp:12.2f} {tg:10.2f} {med([x['roofline_pct'] for x in rows[name]]):18.1f}   {ratios}")
    print(f"median read bandwidth {med([x['read_bw_gbs'] for x in rows['qcoder']]):.1f} GB/s "
          f"(qcoder's sweeps); {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
